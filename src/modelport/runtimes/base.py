"""The runtime contract shared by every model format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from modelport.types import Signature

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
