"""Reading an MLflow model directory without MLflow: the ``MLmodel`` file (YAML, read with
``safe_load``: no tags that build Python objects), the files its flavors name (confined to
the folder) and its signature, turned into ModelPort's V2 terms.

MLflow signatures come in two kinds. Column specs (a DataFrame's columns) become one
``features`` matrix ``[-1, n]`` when every column has the same numeric type (the way
tabular models take rows here; the column names are kept in the input's ``columns``
parameter) and one input per column (``content_type: pd``) otherwise. Tensor specs keep
their shapes; an unnamed one is ``features`` as input and ``predict`` as output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from modelport.errors import InvalidInputError
from modelport.types import Datatype, Signature, TensorSpec

MLMODEL = "MLmodel"
MAX_MLMODEL_BYTES = 1024 * 1024
"""An MLmodel file is a few hundred bytes; anything this large is not one."""
MAX_MLMODEL_VALUES = 200_000
"""Values in the MLmodel document once YAML aliases are expanded (see ``_check_size``)."""

FEATURES = "features"
PREDICT = "predict"

_COLUMN_TYPES: dict[str, Datatype] = {
    "double": Datatype.FP64,
    "float": Datatype.FP32,
    "long": Datatype.INT64,
    "integer": Datatype.INT32,
    "boolean": Datatype.BOOL,
    "string": Datatype.BYTES,
    "binary": Datatype.BYTES,
}

_TENSOR_TYPES: dict[str, Datatype] = {
    "float64": Datatype.FP64,
    "float32": Datatype.FP32,
    "float16": Datatype.FP16,
    "int64": Datatype.INT64,
    "int32": Datatype.INT32,
    "int16": Datatype.INT16,
    "int8": Datatype.INT8,
    "uint64": Datatype.UINT64,
    "uint32": Datatype.UINT32,
    "uint16": Datatype.UINT16,
    "uint8": Datatype.UINT8,
    "bool": Datatype.BOOL,
    "object": Datatype.BYTES,
    "str": Datatype.BYTES,
    "bytes": Datatype.BYTES,
}

_NUMERIC = frozenset({Datatype.FP64, Datatype.FP32, Datatype.INT64, Datatype.INT32})


@dataclass(frozen=True)
class MLModel:
    """The parts of an ``MLmodel`` file that ModelPort uses."""

    flavors: dict[str, dict[str, Any]]
    mlflow_version: str
    signature: Signature | None
    """The model's signature in V2 terms, when it was logged with one ModelPort can map."""
    signature_problem: str | None = None
    """Why a logged signature could not be mapped (the flavor's runtime may not need it)."""


def has_mlmodel(folder: Path) -> bool:
    return (folder / MLMODEL).is_file()


def read_mlmodel(folder: Path) -> MLModel:
    """Parse ``folder/MLmodel``, or say clearly why it is not a usable MLmodel file."""
    path = folder / MLMODEL
    if path.stat().st_size > MAX_MLMODEL_BYTES:
        raise InvalidInputError(f"the MLmodel file is larger than {MAX_MLMODEL_BYTES} bytes")
    import yaml

    try:
        document = yaml.safe_load(path.read_bytes())
    except (yaml.YAMLError, RecursionError, UnicodeDecodeError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InvalidInputError(f"the MLmodel file is not valid YAML: {reason}") from None
    if not isinstance(document, dict):
        raise InvalidInputError("the MLmodel file must be a YAML mapping (flavors, signature...)")
    _check_size(document)
    flavors = document.get("flavors")
    if not isinstance(flavors, dict) or not flavors:
        raise InvalidInputError("the MLmodel file names no flavors")
    for name, flavor in flavors.items():
        if not isinstance(name, str) or not isinstance(flavor, dict):
            raise InvalidInputError(f"the MLmodel flavor {str(name)[:40]!r} is not a mapping")
    signature, problem = None, None
    try:
        signature = _signature(document.get("signature"))
    except InvalidInputError as exc:
        problem = exc.message
    return MLModel(
        flavors=flavors,
        mlflow_version=str(document.get("mlflow_version", "unknown"))[:32],
        signature=signature,
        signature_problem=problem,
    )


def _check_size(document: Any) -> None:
    """Refuse a document whose YAML aliases make it stand for more values than any MLmodel
    file holds: nine nested aliases of nine items each are 9**9 values from a few hundred
    bytes, and anything that walks or prints them (str(), a signature) would take the
    server's time and memory. The walk counts values as if expanded and stops at the
    limit."""
    pending, seen = [document], 0
    while pending:
        item = pending.pop()
        seen += 1
        if seen > MAX_MLMODEL_VALUES:
            raise InvalidInputError(
                f"the MLmodel file expands to more than {MAX_MLMODEL_VALUES} values (YAML "
                "aliases); write it without anchors and aliases, as MLflow does"
            )
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def model_file(folder: Path, flavor: str, entry: Any) -> Path:
    """The file (or folder) a flavor names, which must lie inside the model folder: no
    absolute paths, no ``..``, no links that lead out."""
    if not isinstance(entry, str) or not entry or "\x00" in entry:
        raise InvalidInputError(f"the MLmodel's {flavor} flavor names no model file")
    relative = PurePosixPath(entry)
    if not relative.parts:
        raise InvalidInputError(f"the MLmodel's {flavor} flavor names the folder itself")
    if relative.is_absolute() or entry.startswith("\\") or ":" in relative.parts[0]:
        raise InvalidInputError(
            f"the MLmodel's {flavor} flavor names an absolute path ('{entry[:200]}'); model "
            "files must lie inside the model folder"
        )
    if ".." in relative.parts:
        raise InvalidInputError(
            f"the MLmodel's {flavor} flavor names '{entry[:200]}', outside the model folder"
        )
    base = folder.resolve()
    path = base.joinpath(*relative.parts).resolve()
    if not path.is_relative_to(base):
        raise InvalidInputError(
            f"the MLmodel's {flavor} flavor names '{entry[:200]}', outside the model folder"
        )
    if not path.exists():
        raise InvalidInputError(
            f"the MLmodel's {flavor} flavor names '{entry[:200]}', which is not in the folder"
        )
    return path


def _signature(raw: Any) -> Signature | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidInputError("the MLmodel signature must be a mapping of inputs and outputs")
    inputs, outputs = _schema(raw.get("inputs"), "inputs"), _schema(raw.get("outputs"), "outputs")
    if not inputs or not outputs:
        return None  # e.g. a signature with inputs only: the model's runtime knows more
    return Signature(inputs=_specs(inputs, FEATURES), outputs=_specs(outputs, PREDICT))


def _schema(raw: Any, part: str) -> list[dict[str, Any]]:
    if raw is None:
        return []
    try:
        specs = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        raise InvalidInputError(f"the MLmodel signature's {part} are not JSON: {exc}") from None
    if not isinstance(specs, list) or not all(isinstance(spec, dict) for spec in specs):
        raise InvalidInputError(f"the MLmodel signature's {part} must be a list of specs")
    return specs


def _specs(specs: list[dict[str, Any]], unnamed: str) -> list[TensorSpec]:
    if all(spec.get("type") == "tensor" for spec in specs):
        single = len(specs) == 1
        return [_tensor(spec, unnamed if single else str(i)) for i, spec in enumerate(specs)]
    if any(spec.get("type") == "tensor" for spec in specs):
        raise InvalidInputError("the MLmodel signature mixes tensor and column specs")
    types = [_column_type(spec) for spec in specs]
    names = [str(spec.get("name", i)) for i, spec in enumerate(specs)]
    if unnamed == PREDICT and len(specs) == 1:
        return [TensorSpec(name=PREDICT, datatype=types[0], shape=[-1])]
    if len(set(types)) == 1 and types[0] in _NUMERIC:
        # The DataFrame a pyfunc model gets back: named columns, or positions when unnamed.
        columns = [spec.get("name", i) for i, spec in enumerate(specs)]
        parameters = {"columns": columns}
        return [
            TensorSpec(
                name=unnamed, datatype=types[0], shape=[-1, len(specs)], parameters=parameters
            )
        ]
    return [
        TensorSpec(name=name, datatype=datatype, shape=[-1], parameters={"content_type": "pd"})
        for name, datatype in zip(names, types, strict=True)
    ]


def _column_type(spec: dict[str, Any]) -> Datatype:
    kind = spec.get("type")
    datatype = _COLUMN_TYPES.get(kind) if isinstance(kind, str) else None
    if datatype is None:
        raise InvalidInputError(
            f"the MLmodel signature has a column of type {str(kind)[:60]}, which ModelPort "
            "cannot map to a tensor"
        )
    return datatype


def _tensor(spec: dict[str, Any], default_name: str) -> TensorSpec:
    tensor = spec.get("tensor-spec")
    if not isinstance(tensor, dict):
        raise InvalidInputError("an MLmodel tensor spec has no 'tensor-spec'")
    dtype, shape = tensor.get("dtype"), tensor.get("shape")
    datatype = _TENSOR_TYPES.get(dtype) if isinstance(dtype, str) else None
    if datatype is None:
        raise InvalidInputError(f"the MLmodel signature has an unsupported dtype {dtype!r}")
    if not isinstance(shape, list) or not all(
        isinstance(dim, int) and not isinstance(dim, bool) and dim >= -1 for dim in shape
    ):
        raise InvalidInputError(f"the MLmodel signature has an invalid shape {str(shape)[:60]}")
    name = spec.get("name")
    return TensorSpec(
        name=name if isinstance(name, str) and name else default_name,
        datatype=datatype,
        shape=shape,
    )
