"""Choosing the next token from a model's logits: greedy (temperature 0) or sampled with
temperature and nucleus (top-p) filtering, from a random generator of each choice's own
(seeded: the same request gives the same text again)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sampling:
    """How one request's choices are generated (checked by the adapter)."""

    max_tokens: int
    temperature: float = 1.0
    """0 picks the most likely token every time (greedy)."""
    top_p: float = 1.0
    """Sample among the most likely tokens whose probabilities add up to this."""
    seed: int | None = None
    stop: tuple[str, ...] = ()
    """Generation ends before the first of these strings (which is left out)."""


def random_source(sampling: Sampling, choice: int) -> np.random.Generator:
    """The random generator of one choice: seeded from the request's seed and the choice
    index (so ``n`` choices differ but repeat), else from the operating system."""
    if sampling.seed is None:
        return np.random.default_rng()
    return np.random.default_rng([sampling.seed % 2**64, choice])


def choose_token(logits: np.ndarray, sampling: Sampling, random: np.random.Generator) -> int:
    """The next token for one row of logits (``[vocabulary]``)."""
    if sampling.temperature == 0:
        return int(np.argmax(logits))
    scaled = logits.astype(np.float64) / sampling.temperature
    scaled -= np.max(scaled)
    weights = np.exp(scaled)
    if not np.isfinite(weights).all() or weights.sum() <= 0:
        return int(np.argmax(np.nan_to_num(logits, nan=-np.inf)))
    if sampling.top_p >= 1:
        cumulative = np.cumsum(weights)
        return _draw(cumulative, cumulative[-1], random, np.arange(len(weights)))
    order = np.argsort(-weights, kind="stable")
    cumulative = np.cumsum(weights[order])
    # The smallest set of most likely tokens whose probability reaches top_p.
    kept = int(np.searchsorted(cumulative, sampling.top_p * cumulative[-1])) + 1
    return _draw(cumulative, cumulative[min(kept, len(cumulative)) - 1], random, order)


def _draw(
    cumulative: np.ndarray, total: float, random: np.random.Generator, tokens: np.ndarray
) -> int:
    """The token at a uniform draw below ``total`` on the ``cumulative`` weights."""
    position = int(np.searchsorted(cumulative, random.random() * total, side="right"))
    return int(tokens[min(position, len(tokens) - 1)])
