"""What every Hugging Face model folder must pass before ModelPort loads it: a readable
``config.json``, weights in safetensors only (pickled ``pytorch_model.bin`` checkpoints can
run code when loaded), no custom code (``auto_map``: ModelPort never sets
``trust_remote_code``) and the frameworks installed. Framework-free: nothing here imports
torch or transformers."""

from __future__ import annotations

import importlib.util
from pathlib import Path, PurePosixPath
from typing import Any

from modelport.errors import InvalidInputError
from modelport.runtimes import folder_json
from modelport.runtimes.plugins import missing_framework

MAX_JSON_BYTES = 16 * 1024 * 1024
"""Configuration files are small; anything larger is not one."""

GENERATIVE_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")
"""Architectures that generate text (served by the text-generation runtime instead)."""

TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)
PICKLED_WEIGHTS = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
SAFE_SERIALIZATION_HINT = (
    "save it again with safetensors weights: model.save_pretrained(folder, "
    "safe_serialization=True) (sentence-transformers: model.save(folder, "
    "safe_serialization=True))"
)


def read_json(path: Path, what: str) -> Any:
    """A small JSON file of the folder, or a clear error."""
    return folder_json.read_json(path, what, MAX_JSON_BYTES)


def read_config(folder: Path) -> dict[str, Any]:
    config = read_json(folder / "config.json", "config.json")
    if not isinstance(config, dict):
        raise InvalidInputError("config.json must hold a JSON object")
    return config


def architectures(config: dict[str, Any]) -> list[str]:
    names = config.get("architectures") or []
    return [name for name in names if isinstance(name, str)] if isinstance(names, list) else []


def is_generative(config: dict[str, Any]) -> bool:
    """Whether the config describes a causal or sequence-to-sequence language model."""
    return any(name.endswith(GENERATIVE_SUFFIXES) for name in architectures(config))


def has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


def check_safe_weights(folder: Path) -> None:
    """Refuse a folder whose weights are not safetensors, or whose safetensors index or
    ``transformers_weights`` setting names anything but a safetensors file inside it."""
    files = [path.name for path in folder.iterdir() if path.is_file()]
    safe = [name for name in files if name.endswith(".safetensors")]
    if not safe:
        pickled = sorted(name for name in files if name.endswith(PICKLED_WEIGHTS))
        if pickled:
            raise InvalidInputError(
                f"this Hugging Face folder holds its weights as {', '.join(pickled[:3])}, a "
                "pickle, which can run code when loaded; ModelPort loads safetensors "
                f"weights only: {SAFE_SERIALIZATION_HINT}"
            )
        raise InvalidInputError(
            "this Hugging Face folder has no weights (model.safetensors); "
            + SAFE_SERIALIZATION_HINT
        )
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        document = read_json(index, index.name)
        weight_map = document.get("weight_map", {}) if isinstance(document, dict) else None
        if not isinstance(weight_map, dict):
            raise InvalidInputError(
                f'{index.name} must be an object with a "weight_map" from tensor names to '
                ".safetensors shards"
            )
        shards = set(weight_map.values())
        for shard in shards:
            if not _is_plain_file_name(shard, ".safetensors"):
                raise InvalidInputError(
                    f"{index.name} names the shard {str(shard)[:80]!r}: shards must be "
                    ".safetensors files inside the folder"
                )


def _is_plain_file_name(name: object, suffix: str) -> bool:
    return (
        isinstance(name, str)
        and name.endswith(suffix)
        and len(PurePosixPath(name).parts) == 1
        and name not in (".", "..")
        and "\\" not in name
    )


def check_no_custom_code(folder: Path, config: dict[str, Any]) -> None:
    """Refuse models that need Python code shipped with them (``auto_map``)."""
    for name, document in (("config.json", config), ("tokenizer_config.json", None)):
        if document is None:
            path = folder / name
            document = read_json(path, name) if path.is_file() else {}
        if isinstance(document, dict) and "auto_map" in document:
            raise InvalidInputError(
                f"{name} has an 'auto_map': this model needs custom Python code shipped with "
                "it, which ModelPort never runs (trust_remote_code is never enabled); use a "
                "model whose architecture is built into transformers"
            )
    weights = config.get("transformers_weights")
    if weights is not None and not _is_plain_file_name(weights, ".safetensors"):
        raise InvalidInputError(
            "config.json's 'transformers_weights' must name a .safetensors file inside the "
            f"folder, not {str(weights)[:80]!r}"
        )


def check_frameworks(what: str) -> None:
    """Refuse a model whose frameworks (torch, transformers) the server lacks."""
    for package in ("torch", "transformers", "tokenizers", "safetensors"):
        if importlib.util.find_spec(package) is None:
            raise missing_framework(package, "huggingface", what)


def inside(folder: Path, relative: str) -> Path:
    """``folder / relative``, refusing a path that would leave ``folder``."""
    target = (folder / relative).resolve()
    if not target.is_relative_to(folder.resolve()):
        raise InvalidInputError(f"the path {relative[:80]!r} leaves the model folder")
    return target
