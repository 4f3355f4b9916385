"""The DataPlane's request and response types; protocol adapters convert to and from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelport.tensors.dtypes import datatype_of
from modelport.types import Datatype


@dataclass
class Tensor:
    """A named tensor: V2 datatype, shape and its data as a numpy array of that shape."""

    name: str
    datatype: Datatype
    shape: list[int]
    data: np.ndarray
    parameters: dict[str, Any] = field(default_factory=dict)


def tensor_of(name: str, array: np.ndarray) -> Tensor:
    """A tensor whose datatype and shape are read off the array."""
    return Tensor(name, datatype_of(array.dtype), list(array.shape), array)


@dataclass
class InferenceRequest:
    inputs: list[Tensor]
    outputs: list[str] | None = None
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    decode_ns: int = 0
    """Time the adapter spent decoding the request (for statistics)."""


@dataclass
class InferenceResponse:
    model_name: str
    model_version: int
    outputs: list[Tensor]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
