"""MLflow models with only the ``python_function`` flavor: custom pyfunc code (a pickled
``PythonModel``, a loader module, code files). Only MLflow's own loader can run them, and
running them runs the uploader's code, so they are served only as trusted versions (an
admin's upload on a server started with ``--allow-pickle``), with MLflow installed
(``pip install 'modelport[mlflow]'``), and never in the server process: the upload is
checked by loading the model in a throwaway process and the version is served from worker
processes.

The signature comes from the MLmodel (see ``mlmodel``) or the upload. Inputs reach the
model the way MLflow serving hands them over: a ``features`` matrix of columns as a
DataFrame with the logged column names, per-column inputs as a DataFrame, one unnamed
tensor as an array and named tensors as a dict of arrays.
"""

from __future__ import annotations

import importlib.util
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from modelport.errors import InvalidInputError, UnavailableError
from modelport.runtimes.base import InspectedArtifact, Tensors
from modelport.runtimes.isolation import probe_load
from modelport.runtimes.mlmodel import MLModel
from modelport.runtimes.plugins import InspectOptions, LoadOptions, missing_framework
from modelport.runtimes.signatures import signature_for_upload
from modelport.runtimes.trust import require_trusted_load, require_trusted_upload
from modelport.types import Datatype, Signature, TensorSpec

MLFLOW_PYFUNC = "mlflow-pyfunc"
WHAT = "an MLflow pyfunc model (custom python_function code)"


def mlflow_version() -> str | None:
    """The installed MLflow's version (the full package or mlflow-skinny), if any."""
    try:
        if importlib.util.find_spec("mlflow") is None:
            return None
    except (ImportError, ValueError):  # e.g. blocked with sys.modules["mlflow"] = None
        return None
    for distribution in ("mlflow", "mlflow-skinny"):
        try:
            return version(distribution)
        except PackageNotFoundError:
            continue
    return "unknown"


def inspect_pyfunc(folder: Path, mlmodel: MLModel, options: InspectOptions) -> InspectedArtifact:
    require_trusted_upload(options, WHAT)
    installed = mlflow_version()
    if installed is None:
        raise missing_framework("mlflow", "mlflow", WHAT)
    if mlmodel.signature is None and options.signature is None:
        why = mlmodel.signature_problem or "the model was logged without a signature"
        raise InvalidInputError(
            f"ModelPort needs a signature to serve an MLflow pyfunc model, and {why}: log "
            "it with signature=infer_signature(X, model.predict(X)), or upload it with a "
            "signature (the upload's 'signature' form field)"
        )
    if mlmodel.signature is None:
        assert options.signature is not None
        signature = options.signature
    else:
        signature = signature_for_upload(options.signature, mlmodel.signature)
    probe_load(folder, MLFLOW_PYFUNC, signature, WHAT)
    return InspectedArtifact(
        format=MLFLOW_PYFUNC,
        framework="mlflow/python_function",
        framework_version=installed,
        signature=signature,
        params={"mlflow_version": mlmodel.mlflow_version},
        trusted=True,
    )


class PyfuncModel:
    """A pyfunc model loaded by MLflow (in a worker process)."""

    finite_inputs_only = False

    def __init__(self, model: Any, signature: Signature) -> None:
        self.model = model
        self.signature = signature
        self.default_outputs = [spec.name for spec in signature.outputs]

    @classmethod
    def load(cls, folder: Path, signature: Signature, options: LoadOptions) -> PyfuncModel:
        require_trusted_load(options, WHAT)
        try:
            import mlflow.pyfunc
        except ImportError:
            raise UnavailableError(missing_framework("mlflow", "mlflow", WHAT).message) from None
        try:
            model = mlflow.pyfunc.load_model(str(folder))
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:500]
            raise UnavailableError(f"MLflow could not load the pyfunc model: {reason}") from None
        return cls(model, signature)

    def predict(self, inputs: Tensors, outputs: frozenset[str]) -> Tensors:
        result = self.model.predict(_model_input(self.signature.inputs, inputs))
        return {
            spec.name: _output(result, spec, len(self.signature.outputs))
            for spec in self.signature.outputs
            if spec.name in outputs
        }

    def unload(self) -> None:
        self.model = None


def _model_input(specs: list[TensorSpec], inputs: Tensors) -> Any:
    import pandas as pd

    first = specs[0]
    if len(specs) == 1 and "columns" in first.parameters:
        return pd.DataFrame(inputs[first.name], columns=first.parameters["columns"])
    if any(spec.parameters.get("content_type") == "pd" for spec in specs):
        return pd.DataFrame({spec.name: _column(inputs[spec.name], spec) for spec in specs})
    if len(specs) == 1 and first.name == "features":
        return inputs[first.name]
    return {spec.name: inputs[spec.name] for spec in specs}


def _column(array: np.ndarray, spec: TensorSpec) -> Any:
    flat = array.reshape(-1)
    if spec.datatype is Datatype.BYTES:
        return [item.decode("utf-8") if isinstance(item, bytes) else str(item) for item in flat]
    return flat


def _output(result: Any, spec: TensorSpec, count: int) -> np.ndarray:
    """Output ``spec`` from what the pyfunc returned (a DataFrame, Series, array, list or
    dict)."""
    import pandas as pd

    value = result
    if isinstance(result, dict | pd.DataFrame) and (count > 1 or spec.name in result):
        if spec.name not in result:
            raise UnavailableError(f"the pyfunc model returned no output '{spec.name}'")
        value = result[spec.name]
    elif isinstance(result, dict) and len(result) == 1:
        value = next(iter(result.values()))
    array = np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value)
    if len(spec.shape) == 1 and array.ndim == 2 and array.shape[1] == 1:
        array = array.reshape(-1)
    if array.dtype.kind == "U":
        array = array.astype(object)
    return array
