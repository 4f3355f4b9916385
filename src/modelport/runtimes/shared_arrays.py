"""The large numpy arrays of a loaded scikit-learn model, memory-mapped from files that
every process serving the version shares.

Each process serving one version (``--workers N``, predict worker processes) would hold
its own copy of the model's arrays. After a version loads, each of its large arrays is
written once to a ``.npy`` file (named by the artifact's hash and the attribute's path)
and replaced by a read-only memory map of that file: the kernel keeps one copy in its page
cache for all of them. The files are plain ``.npy``, read with ``allow_pickle=False``.
Arrays held inside compiled objects (the nodes of a RandomForest's trees) cannot be
reached and stay private to each process.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

MIN_BYTES = 64 * 1024
"""Smaller arrays stay private: a mapping costs at least a page and a file."""

MAX_DEPTH = 12


def share_arrays(model: Any, directory: Path) -> int:
    """Replace ``model``'s large arrays by shared read-only maps; the bytes now shared."""
    shared = 0
    for holder, key, array, name in list(_large_arrays(model, "model", 0, set())):
        path = directory / f"{name}.npy"
        if not path.exists():
            _write(path, array)
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
        if mapped.shape != array.shape or mapped.dtype != array.dtype:
            continue  # not this array (should not happen): keep the private copy
        if isinstance(holder, list | dict):
            holder[key] = mapped
        else:
            setattr(holder, key, mapped)
        shared += array.nbytes
    return shared


def _write(path: Path, array: np.ndarray) -> None:
    """Write atomically: another process may be mapping the same file at the same time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            np.save(stream, np.ascontiguousarray(array), allow_pickle=False)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def _large_arrays(
    value: Any, name: str, depth: int, seen: set[int]
) -> Iterator[tuple[Any, Any, np.ndarray, str]]:
    """``(holder, key, array, name)`` for every large numeric array reachable through
    scikit-learn objects' attributes, lists, tuples and dicts."""
    if depth > MAX_DEPTH or id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, dict):
        children: list[tuple[Any, Any, Any]] = [(value, k, v) for k, v in value.items()]
    elif isinstance(value, list):
        children = [(value, i, v) for i, v in enumerate(value)]
    elif isinstance(value, tuple):
        children = [(None, i, v) for i, v in enumerate(value)]  # items cannot be replaced
    elif type(value).__module__.startswith("sklearn") and hasattr(value, "__dict__"):
        children = [(value, k, v) for k, v in vars(value).items()]
    else:
        return
    for holder, key, child in children:
        child_name = f"{name}.{_token(key)}"
        if isinstance(child, np.ndarray) and not isinstance(child, np.memmap):
            if holder is not None and child.dtype.kind in "biuf" and child.nbytes >= MIN_BYTES:
                yield holder, key, child, child_name
        else:
            yield from _large_arrays(child, child_name, depth + 1, seen)


def _token(key: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", str(key))[:64]
