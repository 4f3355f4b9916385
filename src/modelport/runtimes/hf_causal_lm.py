"""A Hugging Face causal language model in memory, with its tokenizer.

It answers two callers. The V2 data plane (``/predict``, ``/v2``) sends texts (input
``text``, BYTES ``[-1]``) and gets greedy continuations of a few tokens (output ``text``).
The generation scheduler (``serving/generation.py``) drives the model a token at a time
for many requests at once, through ``encode``/``decode``/``chat_prompt`` and a
:class:`~modelport.runtimes.hf_decoding.CacheBatch` from ``new_batch``.

Loading reads safetensors only, from local files, never remote code.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelport.errors import InvalidInputError
from modelport.runtimes.base import Tensors
from modelport.runtimes.hf_decoding import CacheBatch
from modelport.types import Signature

PREDICT_MAX_NEW_TOKENS = 16
"""Tokens a V2 ``predict`` generates per text (greedy); the OpenAI endpoints take any
``max_tokens``."""
FALLBACK_CONTEXT = 2048
"""Context length of a model whose config and tokenizer do not say."""
MAX_ERROR_CHARS = 400


class CausalLanguageModel:
    """A causal language model and its tokenizer, ready to generate."""

    finite_inputs_only = False

    def __init__(self, folder: Path, signature: Signature, threads: int | None) -> None:
        self.signature = signature
        self.default_outputs = [spec.name for spec in signature.outputs]
        self.model, self.tokenizer = load_pretrained(folder, threads)
        config = self.model.config
        self.model_type = str(getattr(config, "model_type", ""))
        self.context_length = context_length_of(config, self.tokenizer)
        self.end_tokens = end_tokens_of(self.model, self.tokenizer)
        self.has_chat_template = bool(getattr(self.tokenizer, "chat_template", None))
        parameters = inspect.signature(self.model.forward).parameters
        # transformers 5 names the cache argument ``cache``; 4.x ``past_key_values``.
        self._cache_keyword = "cache" if "cache" in parameters else "past_key_values"
        self._tokenizer_lock = threading.Lock()
        """Fast tokenizers may refuse concurrent use from several threads."""

    # The generation interface (see serving/generation.py ``TextGenerator``).

    def encode(self, text: str, special_tokens: bool = True) -> list[int]:
        with self._tokenizer_lock:
            ids: list[int] = self.tokenizer.encode(text, add_special_tokens=special_tokens)
        return ids

    def decode(self, tokens: Sequence[int]) -> str:
        with self._tokenizer_lock:
            text: str = self.tokenizer.decode(list(tokens), skip_special_tokens=True)
        return text

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        """The prompt the tokenizer's chat template makes of ``messages``, ready for the
        assistant's turn."""
        if not self.has_chat_template:
            raise InvalidInputError(
                "this model's tokenizer has no chat template, so it cannot take chat "
                "messages; use /v1/completions with a plain prompt"
            )
        try:
            with self._tokenizer_lock:
                rendered = self.tokenizer.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True
                )
        except Exception as exc:  # jinja's errors, and templates that raise on bad input
            raise InvalidInputError(
                f"the model's chat template refused the messages: {_short(exc)}"
            ) from None
        if not isinstance(rendered, str):
            raise InvalidInputError("the model's chat template did not render text")
        return rendered

    def new_batch(self) -> CacheBatch:
        return CacheBatch(self.model, self._cache_keyword)

    # The runtime contract (V2 predict).

    def predict(self, inputs: Tensors, outputs: frozenset[str]) -> Tensors:
        texts = [_text(item) for item in inputs["text"].reshape(-1).tolist()]
        results = np.empty(len(texts), dtype=object)
        for row, text in enumerate(texts):
            results[row] = self.continue_greedy(text, PREDICT_MAX_NEW_TOKENS)
        return {"text": results.reshape(inputs["text"].shape)}

    def continue_greedy(self, text: str, max_new_tokens: int) -> str:
        """The greedy continuation of ``text`` (at most ``max_new_tokens``), as
        transformers' ``generate`` makes it."""
        import torch

        prompt = self.encode(text)
        if not prompt:
            raise InvalidInputError("input 'text' holds an empty prompt; send some text")
        room = self.context_length - len(prompt)
        if room <= 0:
            raise InvalidInputError(
                f"the prompt has {len(prompt)} tokens; this model's context is "
                f"{self.context_length} tokens"
            )
        ids = torch.tensor([prompt], dtype=torch.long)
        with torch.inference_mode():
            generated = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                max_new_tokens=min(max_new_tokens, room),
                pad_token_id=min(self.end_tokens) if self.end_tokens else 0,
            )
        return self.decode(generated[0, len(prompt) :].tolist())

    def unload(self) -> None:
        self.model = None


def load_pretrained(folder: Path, threads: int | None) -> tuple[Any, Any]:
    """The model (evaluation mode) and tokenizer of ``folder``: local files only,
    safetensors weights only, never remote code."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if threads is not None:
        torch.set_num_threads(max(1, threads))
    hub_logging: Any = transformers.utils.logging
    hub_logging.disable_progress_bar()  # a server log is no terminal
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(folder), local_files_only=True, trust_remote_code=False
        )
        model: Any = AutoModelForCausalLM.from_pretrained(
            str(folder), use_safetensors=True, local_files_only=True, trust_remote_code=False
        )
    except Exception as exc:  # transformers raises many types for broken folders
        raise InvalidInputError(
            f"the Hugging Face model could not be loaded: {_short(exc)}"
        ) from None
    model.eval()
    return model, tokenizer


def context_length_of(config: Any, tokenizer: Any) -> int:
    """Tokens the model attends to at once: its position limit, else the tokenizer's."""
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 1_000_000:
        return limit
    return FALLBACK_CONTEXT


def end_tokens_of(model: Any, tokenizer: Any) -> frozenset[int]:
    """The tokens that end a generation: the generation config's (as ``generate``
    uses them), else the tokenizer's end-of-sequence token."""
    generation_config = getattr(model, "generation_config", None)
    value = getattr(generation_config, "eos_token_id", None)
    if value is None:
        value = getattr(tokenizer, "eos_token_id", None)
    values = value if isinstance(value, list) else [value]
    return frozenset(int(v) for v in values if isinstance(v, int))


def _text(item: object) -> str:
    if isinstance(item, bytes):
        try:
            return item.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInputError("input 'text' must be UTF-8 text") from None
    if isinstance(item, str):
        return item
    raise InvalidInputError("input 'text' must hold strings")


def _short(exc: BaseException) -> str:
    message = str(exc) or type(exc).__name__
    return message if len(message) <= MAX_ERROR_CHARS else message[:MAX_ERROR_CHARS] + "..."
