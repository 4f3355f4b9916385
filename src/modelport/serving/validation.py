"""Check a request's tensors against the version's signature before they reach the model.

Messages say what was wrong and what was expected, e.g. "input 'x' has shape [2,3] but
the model expects [-1,4]".
"""

from __future__ import annotations

import numpy as np

from modelport.errors import InvalidInputError
from modelport.runtimes.base import Tensors
from modelport.serving.inference import Tensor, tensor_of
from modelport.tensors.dtypes import NUMPY_DTYPES, all_finite
from modelport.types import Datatype, Signature, TensorSpec

_NUMERIC_KINDS = "biuf"


def shape_text(shape: list[int] | tuple[int, ...]) -> str:
    return "[" + ",".join(str(dim) for dim in shape) + "]"


def match_inputs(signature: Signature, tensors: list[Tensor]) -> list[tuple[TensorSpec, Tensor]]:
    """Pair each signature input with the request tensor that feeds it.

    A model with a single input takes a single request tensor whatever its name (V2
    clients often call it ``input-0``); otherwise names must match the signature.
    """
    specs = signature.inputs
    if len(specs) == 1 and len(tensors) == 1:
        return [(specs[0], tensors[0])]
    by_name = {tensor.name: tensor for tensor in tensors}
    expected = ", ".join(f"'{spec.name}'" for spec in specs)
    unknown = [name for name in by_name if name not in {spec.name for spec in specs}]
    if unknown:
        raise InvalidInputError(f"unknown input '{unknown[0]}'; this model's inputs are {expected}")
    missing = [spec.name for spec in specs if spec.name not in by_name]
    if missing:
        raise InvalidInputError(f"missing input '{missing[0]}'; this model's inputs are {expected}")
    return [(spec, by_name[spec.name]) for spec in specs]


def check_inputs(signature: Signature, tensors: list[Tensor], finite_only: bool) -> Tensors:
    """The model's input arrays, converted to the signature's datatypes and shapes."""
    specs = signature.inputs
    if len(specs) == 1 and len(tensors) == 1:  # the common case, kept short
        return {specs[0].name: check_tensor(specs[0], tensors[0], finite_only)}
    inputs = {
        spec.name: check_tensor(spec, tensor, finite_only)
        for spec, tensor in match_inputs(signature, tensors)
    }
    batched = [spec.name for spec in signature.inputs if spec.shape and spec.shape[0] == -1]
    rows = {len(inputs[name]) for name in batched}
    if len(rows) > 1:
        sizes = ", ".join(f"'{name}': {len(inputs[name])}" for name in batched)
        raise InvalidInputError(f"inputs disagree on the number of rows ({sizes})")
    return inputs


def check_tensor(spec: TensorSpec, tensor: Tensor, finite_only: bool) -> np.ndarray:
    """``tensor``'s data as ``spec`` wants it (datatype, shape, finite values)."""
    data = _convert(spec, tensor)
    expected = spec.shape
    if data.ndim != len(expected) or any(
        want != got and want != -1 for want, got in zip(expected, data.shape, strict=True)
    ):
        raise InvalidInputError(
            f"input '{tensor.name}' has shape {shape_text(data.shape)} but the model expects "
            f"{shape_text(spec.shape)}" + _width_hint(spec, data)
        )
    _check_finite(tensor.name, data, finite_only)
    return data


def check_rows(spec: TensorSpec, rows: np.ndarray, finite_only: bool) -> np.ndarray:
    """``check_tensor`` for a row matrix decoded from JSON, for a ``[-1, n]`` numeric
    input: a matrix already of the input's dtype and width needs only the finite check."""
    if (
        rows.ndim == 2
        and rows.shape[1] == spec.shape[1]
        and rows.dtype == NUMPY_DTYPES.get(spec.datatype)
    ):
        _check_finite(spec.name, rows, finite_only)
        return rows
    return check_tensor(spec, tensor_of(spec.name, rows), finite_only)


def _check_finite(name: str, data: np.ndarray, finite_only: bool) -> None:
    if finite_only and data.dtype.kind == "f" and not all_finite(data):
        raise InvalidInputError(f"input '{name}' contains NaN or infinite values")


def _convert(spec: TensorSpec, tensor: Tensor) -> np.ndarray:
    """``tensor``'s data as the signature's datatype (floats never become integers)."""
    data = tensor.data
    if spec.datatype is Datatype.BYTES:
        if data.dtype.kind not in "OSU":
            raise InvalidInputError(
                f"input '{tensor.name}' must be BYTES (strings) for this model, got "
                f"{tensor.datatype.value}"
            )
        return data
    if spec.datatype is Datatype.BF16:
        if tensor.datatype is not Datatype.BF16:
            raise InvalidInputError(f"input '{tensor.name}' must be BF16, got {tensor.datatype}")
        return data
    target = NUMPY_DTYPES[spec.datatype]
    if tensor.datatype is Datatype.BF16:
        if target.kind != "f":
            raise InvalidInputError(
                f"input '{tensor.name}' is BF16 but the model expects {spec.datatype.value}"
            )
        # bfloat16 is the upper half of a float32: widening is exact.
        widened = (data.astype(np.uint32) << 16).view(np.float32)
        return widened if target == np.float32 else widened.astype(target)
    if data.dtype == target:
        return data
    if data.dtype.kind not in _NUMERIC_KINDS:
        raise InvalidInputError(
            f"input '{tensor.name}' must be numeric ({spec.datatype.value}), got "
            f"{_kind_name(data.dtype)} values"
        )
    if target.kind in "iub" and data.dtype.kind == "f":
        raise InvalidInputError(
            f"input '{tensor.name}' is {tensor.datatype.value} but the model expects "
            f"{spec.datatype.value}; send integers"
        )
    return data.astype(target)


def _width_hint(spec: TensorSpec, data: np.ndarray) -> str:
    if len(spec.shape) == 2 and data.ndim == 2 and spec.shape[1] != -1:
        return f" (each row needs {spec.shape[1]} features, got {data.shape[1]})"
    if len(spec.shape) == 2 and data.ndim == 1:
        return " (send a list of rows, e.g. [[...], [...]])"
    return ""


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


def check_requested_outputs(
    signature: Signature, requested: list[str] | None, defaults: list[str]
) -> list[str]:
    """The outputs to compute: those requested, or the model's default outputs."""
    known = [spec.name for spec in signature.outputs]
    if not requested:
        return defaults
    unknown = [name for name in requested if name not in known]
    if unknown:
        raise InvalidInputError(
            f"unknown output '{unknown[0]}'; this model's outputs are: {', '.join(known)}"
        )
    if len(set(requested)) != len(requested):
        raise InvalidInputError("an output is requested more than once")
    return requested
