"""The runtime contract shared by every model format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from modelport.tensors.dtypes import NUMPY_DTYPES
from modelport.types import Datatype, Signature

Tensors = dict[str, np.ndarray]


@dataclass(frozen=True)
class InspectedArtifact:
    """What a runtime learned about an uploaded artifact before it is registered."""

    format: str
    framework: str
    framework_version: str
    signature: Signature
    params: dict[str, Any] = field(default_factory=dict)
    trusted: bool = False


class LoadedModel(Protocol):
    """A model in memory, ready to predict.

    ``predict`` takes one array per signature input (already checked against the
    signature; when the signature's first dimension is free, rows of several callers may
    be concatenated along it) and returns one array per requested output.
    ``finite_inputs_only`` asks the DataPlane to refuse NaN and infinities up front;
    ``default_outputs`` are computed when a request names none.
    """

    signature: Signature
    finite_inputs_only: bool
    default_outputs: list[str]

    def predict(self, inputs: Tensors, outputs: frozenset[str]) -> Tensors: ...

    def unload(self) -> None: ...


def synthetic_inputs(signature: Signature) -> Tensors:
    """One row of zeros (or placeholder strings) shaped like the signature's inputs."""
    inputs: Tensors = {}
    for spec in signature.inputs:
        shape = [dim if dim >= 0 else 1 for dim in spec.shape]
        if spec.datatype is Datatype.BYTES:
            inputs[spec.name] = np.full(shape, b"warm-up", dtype=object)
        elif spec.datatype is Datatype.BF16:
            inputs[spec.name] = np.zeros(shape, dtype=np.uint16)
        else:
            inputs[spec.name] = np.zeros(shape, dtype=NUMPY_DTYPES[spec.datatype])
    return inputs
