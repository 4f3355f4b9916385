"""How a sentence-transformers folder turns token vectors into one embedding, read from its
own files (``modules.json``, ``1_Pooling/config.json``, ``sentence_bert_config.json``,
``config_sentence_transformers.json``) so that serving needs no sentence-transformers
package and runs none of its code. A plain feature-extraction folder (no ``modules.json``)
gets what ``SentenceTransformer(folder)`` would give it: mean pooling, no normalization."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelport.errors import InvalidInputError
from modelport.runtimes.hf_folder import inside, read_json

POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
"""In the order sentence-transformers concatenates them."""

_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_MODULE_KINDS = ("Transformer", "Pooling", "Normalize")


@dataclass(frozen=True)
class SentenceConfig:
    """The embedding pipeline of one folder."""

    transformer_dir: Path
    pooling: tuple[str, ...] = ("mean",)
    normalize: bool = False
    max_seq_length: int | None = None
    lowercase: bool = False
    prompt: str = ""


def is_sentence_transformers(folder: Path) -> bool:
    return (folder / "modules.json").is_file()


def transformer_dir_of(folder: Path) -> Path:
    """The folder holding ``config.json``: the root, or the Transformer module's own
    folder (older sentence-transformers layouts, e.g. ``0_Transformer/``)."""
    if not is_sentence_transformers(folder):
        return folder
    for kind, path in _modules(folder):
        if kind == "Transformer":
            return inside(folder, path)
    return folder


def read_sentence_config(folder: Path) -> SentenceConfig:
    """The pipeline ``SentenceTransformer(folder).encode`` would run, or a clear refusal
    when it holds a module ModelPort does not implement."""
    if not is_sentence_transformers(folder):
        return SentenceConfig(transformer_dir=folder)
    modules = _modules(folder)
    kinds = [kind for kind, _ in modules]
    if kinds[:1] != ["Transformer"] or kinds.count("Transformer") != 1:
        raise InvalidInputError(
            "modules.json must start with one sentence_transformers Transformer module"
        )
    if "Pooling" not in kinds:
        raise InvalidInputError(
            "modules.json has no Pooling module: this folder gives token vectors, not one "
            "embedding per text"
        )
    paths = dict(modules)
    transformer_dir = inside(folder, paths["Transformer"])
    pooling = _pooling(inside(folder, paths["Pooling"]) / "config.json")
    settings = _optional_json(transformer_dir / "sentence_bert_config.json")
    if not settings:
        settings = _optional_json(folder / "sentence_bert_config.json")
    max_seq_length = settings.get("max_seq_length")
    if max_seq_length is not None and (not isinstance(max_seq_length, int) or max_seq_length < 1):
        raise InvalidInputError("sentence_bert_config.json: max_seq_length must be an integer >= 1")
    prompt = _default_prompt(folder)
    if prompt and not pooling[1]:
        raise InvalidInputError(
            "this model pools without its prompt tokens (include_prompt: false), which "
            "ModelPort does not implement; save it without a default prompt"
        )
    return SentenceConfig(
        transformer_dir=transformer_dir,
        pooling=pooling[0],
        normalize="Normalize" in kinds,
        max_seq_length=max_seq_length,
        lowercase=bool(settings.get("do_lower_case", False)),
        prompt=prompt,
    )


def _modules(folder: Path) -> list[tuple[str, str]]:
    """``(kind, path)`` of each module listed in modules.json, in order."""
    listed = read_json(folder / "modules.json", "modules.json")
    if not isinstance(listed, list) or not listed:
        raise InvalidInputError("modules.json must be a non-empty list of modules")
    modules = []
    for entry in listed:
        kind = entry.get("type") if isinstance(entry, dict) else None
        path = entry.get("path", "") if isinstance(entry, dict) else None
        name = kind.rsplit(".", 1)[-1] if isinstance(kind, str) else ""
        if not (isinstance(kind, str) and kind.startswith("sentence_transformers.")):
            raise InvalidInputError(
                f"modules.json lists the module {str(kind)[:80]!r}: custom modules are code, "
                "which ModelPort never runs"
            )
        if name not in _MODULE_KINDS or not isinstance(path, str):
            raise InvalidInputError(
                f"modules.json lists a {name} module; ModelPort serves sentence-transformers "
                f"models made of {', '.join(_MODULE_KINDS)} modules"
            )
        modules.append((name, path))
    return modules


def _pooling(path: Path) -> tuple[tuple[str, ...], bool]:
    """The pooling modes (in concatenation order) and whether prompt tokens are pooled."""
    if not path.is_file():
        return ("mean",), True
    config = read_json(path, "the Pooling module's config.json")
    if not isinstance(config, dict):
        raise InvalidInputError("the Pooling module's config.json must hold a JSON object")
    declared = config.get("pooling_mode")
    if declared is None:
        modes: tuple[Any, ...] = tuple(
            mode for key, mode in _LEGACY_POOLING_KEYS.items() if config.get(key)
        )
    else:
        modes = (declared,) if isinstance(declared, str) else tuple(declared)
    unknown = [mode for mode in modes if mode not in POOLING_MODES]
    if unknown:
        raise InvalidInputError(
            f"unknown pooling mode {str(unknown[0])[:40]!r}; known: {', '.join(POOLING_MODES)}"
        )
    return modes or ("mean",), bool(config.get("include_prompt", True))


def _default_prompt(folder: Path) -> str:
    """The prompt encode() prepends by default (``default_prompt_name``), if any."""
    settings = _optional_json(folder / "config_sentence_transformers.json")
    name = settings.get("default_prompt_name")
    if not name:
        return ""
    prompts = settings.get("prompts")
    prompt = prompts.get(name) if isinstance(prompts, dict) else None
    if not isinstance(prompt, str):
        raise InvalidInputError(
            f"config_sentence_transformers.json: the default prompt {str(name)[:40]!r} is not "
            "among its prompts"
        )
    return prompt


def _optional_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    document = read_json(path, path.name)
    return document if isinstance(document, dict) else {}
