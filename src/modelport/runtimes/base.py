"""The runtime contract shared by every model format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from modelport.types import Signature


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

    ``predict`` takes the model's input as one array whose first axis is the batch (rows of
    several callers may be concatenated) and returns one array per requested output, each
    with the same number of rows.
    """

    signature: Signature

    def predict(self, inputs: np.ndarray, outputs: frozenset[str]) -> dict[str, np.ndarray]: ...

    def unload(self) -> None: ...
