"""Check a request's input against the version's signature before it reaches the model."""

from __future__ import annotations

import numpy as np

from modelport.errors import InvalidInputError
from modelport.types import Datatype, Signature, TensorSpec, VersionInfo


def _shape_text(shape: list[int] | tuple[int, ...]) -> str:
    return "[" + ",".join(str(dim) for dim in shape) + "]"


def check_features(version: VersionInfo, features: np.ndarray) -> np.ndarray:
    """Return the features as the model's input array, or say exactly what is wrong."""
    spec = version.signature.inputs[0]
    if spec.datatype is Datatype.BYTES:
        return _check_text(spec, features)
    if features.dtype.kind not in "biuf":
        raise InvalidInputError(
            f"input '{spec.name}' must be numeric, got {_kind_name(features.dtype)} values"
        )
    if features.ndim != len(spec.shape) or any(
        want not in (-1, got) for want, got in zip(spec.shape, features.shape, strict=False)
    ):
        raise InvalidInputError(
            f"input '{spec.name}' has shape {_shape_text(features.shape)} but the model "
            f"expects {_shape_text(spec.shape)}" + _width_hint(spec, features)
        )
    rows = features.astype(np.float64, copy=False)
    if not np.isfinite(rows).all():
        raise InvalidInputError(f"input '{spec.name}' contains NaN or infinite values")
    return rows


def _width_hint(spec: TensorSpec, features: np.ndarray) -> str:
    if len(spec.shape) == 2 and features.ndim == 2 and spec.shape[1] != -1:
        return f" (each row needs {spec.shape[1]} features, got {features.shape[1]})"
    if len(spec.shape) == 2 and features.ndim == 1:
        return " (send a list of rows, e.g. [[...], [...]])"
    return ""


def _check_text(spec: TensorSpec, features: np.ndarray) -> np.ndarray:
    if features.ndim == 2 and features.shape[1] == 1:
        features = features[:, 0]
    if features.ndim != 1 or features.dtype.kind not in "OSU":
        raise InvalidInputError(
            f"input '{spec.name}' expects a list of strings (shape [-1], BYTES), got shape "
            f"{_shape_text(features.shape)} of {_kind_name(features.dtype)} values"
        )
    return features


def _kind_name(dtype: np.dtype) -> str:
    return {
        "b": "boolean",
        "i": "integer",
        "u": "integer",
        "f": "floating-point",
        "U": "string",
        "S": "bytes",
        "O": "mixed or non-numeric",
    }.get(dtype.kind, str(dtype))


def check_requested_outputs(signature: Signature, requested: list[str] | None) -> list[str]:
    """The outputs to compute: those requested, or the first (default) output."""
    known = [spec.name for spec in signature.outputs]
    if not requested:
        return known[:1]
    unknown = [name for name in requested if name not in known]
    if unknown:
        raise InvalidInputError(
            f"unknown output '{unknown[0]}'; this model's outputs are: {', '.join(known)}"
        )
    if len(set(requested)) != len(requested):
        raise InvalidInputError("an output is requested more than once")
    return requested
