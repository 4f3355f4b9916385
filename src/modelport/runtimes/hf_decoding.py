"""Sequences that a causal language model decodes together, one token each per step,
sharing one key/value cache.

Sequences join and leave at any step (continuous batching). A joining prompt is run
alone (no padding, so its cache is exactly what ``generate`` would build), then its cache
is merged into the batch's: rows are left-padded to a common length and the padding is
masked out, with each row's positions counted from its own first real token. Rows that
leave are cut out of the cache, and columns that have become padding in every row are
trimmed, so a long-finished prompt costs nothing afterwards.

Torch is imported lazily: this module is loaded only with a model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Layers = list[tuple[Any, Any]]
"""Per model layer, the cached keys and values: ``[rows, heads, length, head_dim]``."""


class CacheBatch:
    """The rows being decoded and their cache; ``rows`` grows with ``join`` and shrinks
    with ``keep``. Not thread-safe: one decoding thread owns it."""

    def __init__(self, model: Any, cache_keyword: str) -> None:
        self._model = model
        self._cache_keyword = cache_keyword
        self._cache: Any = None
        """transformers' ``DynamicCache``: grows in place as rows advance; rebuilt only
        when rows join or leave."""
        self._mask: Any = None
        """``[rows, length]``: 1 for a real token, 0 for left padding."""

    @property
    def rows(self) -> int:
        return 0 if self._mask is None else int(self._mask.shape[0])

    def join(self, prompt: list[int], copies: int = 1) -> np.ndarray:
        """Add ``copies`` rows for ``prompt`` (run once); their next-token logits,
        ``[copies, vocabulary]``."""
        import torch

        ids = torch.tensor([prompt], dtype=torch.long)
        mask = torch.ones_like(ids)
        positions = torch.arange(len(prompt), dtype=torch.long)[None]
        cache = self._new_cache([])
        logits = self._forward(ids, mask, positions, cache)
        layers = _layers_of(cache)
        if copies > 1:
            layers = [
                (k.repeat_interleave(copies, 0), v.repeat_interleave(copies, 0)) for k, v in layers
            ]
            mask = mask.repeat_interleave(copies, 0)
            logits = logits.repeat_interleave(copies, 0)
        self._merge(layers, mask)
        return _to_numpy(logits)

    def advance(self, tokens: list[int]) -> np.ndarray:
        """Feed one token to every row (in row order); the next-token logits,
        ``[rows, vocabulary]``."""
        import torch

        ids = torch.tensor(tokens, dtype=torch.long)[:, None]
        positions = self._mask.sum(dim=1, keepdim=True)
        mask = torch.cat([self._mask, torch.ones_like(ids)], dim=1)
        logits = self._forward(ids, mask, positions, self._cache)
        self._mask = mask
        return _to_numpy(logits)

    def keep(self, rows: list[int]) -> None:
        """Keep only ``rows`` (in this order); the others leave the batch."""
        if len(rows) == self.rows and rows == list(range(self.rows)):
            return
        if not rows:
            self._cache, self._mask = None, None
            return
        import torch

        index = torch.tensor(rows, dtype=torch.long)
        mask = self._mask.index_select(0, index)
        start = int(mask.any(dim=0).long().argmax())  # the first column still in use
        self._mask = mask[:, start:]
        self._cache = self._new_cache(
            [
                (k.index_select(0, index)[:, :, start:], v.index_select(0, index)[:, :, start:])
                for k, v in _layers_of(self._cache)
            ]
        )

    @staticmethod
    def _new_cache(layers: Layers) -> Any:
        from transformers import DynamicCache

        return DynamicCache(layers) if layers else DynamicCache()

    def _forward(self, ids: Any, mask: Any, positions: Any, cache: Any) -> Any:
        """The next-token logits of each row; ``cache`` grows by the new tokens."""
        import torch

        with torch.inference_mode():
            output = self._model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                **{self._cache_keyword: cache},
            )
        return output.logits[:, -1, :]

    def _merge(self, layers: Layers, mask: Any) -> None:
        """Append rows (with their cache ``layers`` and ``mask``) below the batch's."""
        if self._mask is None:
            self._cache, self._mask = self._new_cache(layers), mask
            return
        import torch

        length = max(self._mask.shape[1], mask.shape[1])
        old_pad, new_pad = length - self._mask.shape[1], length - mask.shape[1]
        self._mask = torch.cat([_pad_left(self._mask, old_pad), _pad_left(mask, new_pad)])
        merged = [
            (
                torch.cat([_pad_left(k, old_pad, dim=2), _pad_left(k2, new_pad, dim=2)]),
                torch.cat([_pad_left(v, old_pad, dim=2), _pad_left(v2, new_pad, dim=2)]),
            )
            for (k, v), (k2, v2) in zip(_layers_of(self._cache), layers, strict=True)
        ]
        self._cache = self._new_cache(merged)


def _layers_of(cache: Any) -> Layers:
    """Each layer's keys and values (a transformers cache iterates over its layers)."""
    return [(keys, values) for keys, values, *_ in cache]


def _pad_left(tensor: Any, amount: int, dim: int = 1) -> Any:
    """``tensor`` with ``amount`` zeros before its entries along ``dim``."""
    if amount == 0:
        return tensor
    import torch

    shape = list(tensor.shape)
    shape[dim] = amount
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def _to_numpy(logits: Any) -> np.ndarray:
    array: np.ndarray = logits.float().numpy()
    return array
