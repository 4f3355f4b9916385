"""What the generation scheduler needs of a language model: tokenizing, a chat
template, and a batch of rows it decodes one token at a time. The Hugging Face runtime
(``runtimes/hf_causal_lm.py``) implements it; the scheduler never imports a framework."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


class DecodingBatch(Protocol):
    """Rows that a model decodes together, each with its own cached context."""

    @property
    def rows(self) -> int: ...

    def join(self, prompt: list[int], copies: int = 1) -> np.ndarray:
        """Add ``copies`` rows for ``prompt``; their next-token logits."""
        ...

    def advance(self, tokens: list[int]) -> np.ndarray:
        """Feed one token per row; every row's next-token logits."""
        ...

    def keep(self, rows: list[int]) -> None:
        """Keep only ``rows`` (in this order)."""
        ...


@runtime_checkable
class TextGenerator(Protocol):
    """What the scheduler needs of a model that generates text."""

    context_length: int
    end_tokens: frozenset[int]

    def encode(self, text: str, special_tokens: bool = True) -> list[int]: ...

    def decode(self, tokens: Sequence[int]) -> str: ...

    def chat_prompt(self, messages: list[dict[str, str]]) -> str: ...

    def new_batch(self) -> DecodingBatch: ...
