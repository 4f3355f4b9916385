"""Hugging Face causal language models (text generation): a folder with a
``config.json`` whose architecture is a ``...ForCausalLM`` or ``...LMHeadModel``,
safetensors weights and a tokenizer.

Served behind the OpenAI-compatible ``/v1/chat/completions`` and ``/v1/completions``
(many requests decoded together, see ``serving/generation.py``), and through V2 as
texts in (``text``, BYTES ``[-1]``), greedy continuations out (``text``, BYTES ``[-1]``).
The upload is loaded once and asked for one token, so a folder that cannot serve is
refused at upload rather than at its first request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelport.errors import InvalidInputError
from modelport.runtimes.base import InspectedArtifact
from modelport.runtimes.hf_causal_lm import CausalLanguageModel
from modelport.runtimes.hf_folder import (
    architectures,
    check_frameworks,
    check_no_custom_code,
    check_safe_weights,
    has_tokenizer,
    read_config,
)
from modelport.runtimes.plugins import InspectOptions, LoadOptions
from modelport.runtimes.signatures import signature_for_upload
from modelport.types import Datatype, Signature, TensorSpec

FORMAT = "hf-text-generation"
WHAT = "a Hugging Face causal language model (text generation)"
CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


def generation_signature() -> Signature:
    return Signature(
        inputs=[TensorSpec(name="text", datatype=Datatype.BYTES, shape=[-1])],
        outputs=[TensorSpec(name="text", datatype=Datatype.BYTES, shape=[-1])],
    )


def is_causal(config: dict[str, Any]) -> bool:
    return any(name.endswith(CAUSAL_SUFFIXES) for name in architectures(config))


class HFGenerationRuntime:
    """Causal language models from Hugging Face folders, served with torch on the CPU."""

    name = "huggingface-generation"
    folder_formats: tuple[str, ...] = (FORMAT,)

    def detect_folder(self, folder: Path) -> str | None:
        # A causal config is enough to claim the folder: a missing tokenizer or pickled
        # weights then get this runtime's precise refusal, not "unrecognised folder".
        if not (folder / "config.json").is_file():
            return None
        return FORMAT if is_causal(read_config(folder)) else None

    def inspect(self, path: Path, fmt: str, options: InspectOptions) -> InspectedArtifact:
        check_folder(path)
        import transformers

        model = CausalLanguageModel(path, generation_signature(), threads=None)
        try:
            model.continue_greedy("Hello", 1)  # the weights, tokenizer and code agree
            params: dict[str, Any] = {
                "architecture": type(model.model).__name__,
                "model_type": model.model_type,
                "context_length": model.context_length,
                "vocabulary": len(model.tokenizer),
                "chat_template": model.has_chat_template,
                "parameters": int(sum(p.numel() for p in model.model.parameters())),
            }
        finally:
            model.unload()
        return InspectedArtifact(
            format=FORMAT,
            framework="transformers",
            framework_version=transformers.__version__,
            signature=signature_for_upload(options.signature, generation_signature()),
            params=params,
        )

    def load(
        self, path: Path, fmt: str, signature: Signature, options: LoadOptions
    ) -> CausalLanguageModel:
        check_folder(path)
        return CausalLanguageModel(path, signature, options.threads)


def check_folder(folder: Path) -> None:
    """Every refusal a folder can earn before any weights are read."""
    check_frameworks(WHAT)
    config = read_config(folder)
    check_no_custom_code(folder, config)
    check_safe_weights(folder)
    if not has_tokenizer(folder):
        raise InvalidInputError(
            "this causal language model folder has no tokenizer (tokenizer.json, or the "
            "vocabulary files of a slow tokenizer); save it beside the model: "
            "tokenizer.save_pretrained(folder)"
        )


__all__ = ["FORMAT", "HFGenerationRuntime", "generation_signature"]
