"""MLflow model directories (a folder with an ``MLmodel`` file), served without MLflow.

Users moving from MLflow push the directory as it is::

    modelport models push ./mlruns/0/<run>/artifacts/model --name churn

The sklearn, xgboost, lightgbm, onnx and pytorch flavors are served by ModelPort's own
runtimes from the files MLflow wrote (see ``mlflow_flavors``), with the same safety rules
as single files: skops, XGBoost/LightGBM model files, ONNX and exported programs load as
they are; pickles only as trusted versions. Their signature is the runtime's own (it knows
what the loaded model takes and answers, e.g. ``predict`` and ``label``); the MLmodel's
signature must agree with it on the input width. A PyTorch pickle records no shapes: its
inputs come from the MLmodel's signature.

Models with only the ``python_function`` flavor (custom pyfunc code) need MLflow's own
loader: they are served only as trusted versions, with MLflow installed
(``pip install 'modelport[mlflow]'``), in worker processes (see ``mlflow_pyfunc``).

The version's framework reads ``mlflow/<flavor>``; its params keep the MLflow version that
wrote the model.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from modelport.errors import InvalidInputError
from modelport.runtimes.base import InspectedArtifact, LoadedModel
from modelport.runtimes.formats import ArtifactFormat
from modelport.runtimes.mlflow_flavors import (
    PYFUNC,
    FlavorFile,
    flavor_file,
    lightgbm_text_model,
    served_flavor,
)
from modelport.runtimes.mlflow_pyfunc import MLFLOW_PYFUNC, PyfuncModel, inspect_pyfunc
from modelport.runtimes.mlmodel import MLModel, has_mlmodel, read_mlmodel
from modelport.runtimes.plugins import InspectOptions, LoadOptions
from modelport.runtimes.trust import require_trusted_upload
from modelport.types import Signature

MLFLOW = "mlflow"
SAFE_SKLEARN = (
    "save it with skops instead: mlflow.sklearn.save_model(model, path, "
    "serialization_format='skops')"
)


class MLflowRuntime:
    """MLflow model directories: native flavors through ModelPort's runtimes, pyfunc
    models (trusted) through MLflow in worker processes."""

    name = "mlflow"
    folder_formats: tuple[str, ...] = (MLFLOW, MLFLOW_PYFUNC)
    isolated_formats: tuple[str, ...] = (MLFLOW_PYFUNC,)

    def detect_folder(self, folder: Path) -> str | None:
        return MLFLOW if has_mlmodel(folder) else None

    def inspect(self, path: Path, fmt: str, options: InspectOptions) -> InspectedArtifact:
        mlmodel = read_mlmodel(path)
        flavor = served_flavor(mlmodel)
        if flavor == PYFUNC:
            return inspect_pyfunc(path, mlmodel, options)
        file = flavor_file(path, mlmodel, flavor)
        if file.is_pickle:
            require_trusted_upload(
                options, f"an MLflow {flavor} model saved as a pickle", _safer(flavor)
            )
        inner_options = dataclasses.replace(options, signature=_given(options, mlmodel, file))
        trusted = file.is_pickle
        with _delegate(file, trusted, options.allow_pickle) as (runtime, model_path, inner_fmt):
            inner = runtime.inspect(model_path, inner_fmt, inner_options)
        _check_width(mlmodel, inner.signature)
        return InspectedArtifact(
            format=MLFLOW,
            framework=f"mlflow/{flavor}",
            framework_version=inner.framework_version,
            signature=inner.signature,
            params={
                **inner.params,
                "mlflow_version": mlmodel.mlflow_version,
                "model_file": file.path.relative_to(path.resolve()).as_posix(),
            },
            trusted=trusted or inner.trusted,
        )

    def load(self, path: Path, fmt: str, signature: Signature, options: LoadOptions) -> LoadedModel:
        if fmt == MLFLOW_PYFUNC:
            return PyfuncModel.load(path, signature, options)
        mlmodel = read_mlmodel(path)
        file = flavor_file(path, mlmodel, served_flavor(mlmodel))
        with _delegate(file, options.trusted, options.allow_pickle) as (runtime, model_path, inner):
            return runtime.load(model_path, inner, signature, options)


def _safer(flavor: str) -> str:
    if flavor == "sklearn":
        return SAFE_SKLEARN
    return f"push the {flavor} model's own file format instead"


def _given(options: InspectOptions, mlmodel: MLModel, file: FlavorFile) -> Signature | None:
    """The signature handed to the flavor's runtime: the uploader's; for a PyTorch pickle
    or TorchScript file (which record no shapes) the MLmodel's inputs when the uploader
    gave none."""
    from modelport.runtimes.torch_formats import TORCH_EXPORT

    if options.signature is not None or mlmodel.signature is None:
        return options.signature
    if file.flavor != "pytorch" or file.fmt == TORCH_EXPORT:
        return None
    return Signature(inputs=mlmodel.signature.inputs, outputs=[])


class _FlavorRuntime(Protocol):
    def inspect(self, path: Path, fmt: str, options: InspectOptions) -> InspectedArtifact: ...

    def load(
        self, path: Path, fmt: str, signature: Signature, options: LoadOptions
    ) -> LoadedModel: ...


@contextlib.contextmanager
def _delegate(
    file: FlavorFile, trusted: bool, allow_pickle: bool
) -> Iterator[tuple[_FlavorRuntime, Path, str]]:
    """The runtime, model path and format that serve a flavor file (a LightGBM booster
    taken out of a skops or pickle file lives in a temporary file meanwhile)."""
    if file.flavor == "lightgbm":
        from modelport.runtimes.lightgbm import LightGBMRuntime

        with lightgbm_text_model(file, trusted, allow_pickle) as text:
            yield LightGBMRuntime(), text, ArtifactFormat.LIGHTGBM_TEXT
        return
    yield _runtime(file.flavor), file.path, file.fmt


def _runtime(flavor: str) -> _FlavorRuntime:
    if flavor == "sklearn":
        from modelport.runtimes.sklearn import SklearnRuntime

        return SklearnRuntime()
    if flavor == "xgboost":
        from modelport.runtimes.xgboost import XGBoostRuntime

        return XGBoostRuntime()
    if flavor == "onnx":
        return _OnnxBesideItsData()
    from modelport.runtimes.pytorch import PyTorchRuntime

    return PyTorchRuntime()


class _OnnxBesideItsData:
    """The ONNX runtime, reading the ``.onnx`` file from its path in the model folder so
    that external data is found beside it (onnxruntime refuses locations that leave the
    file's folder)."""

    def inspect(self, path: Path, fmt: str, options: InspectOptions) -> InspectedArtifact:
        from modelport.runtimes.onnx import inspect_artifact

        return inspect_artifact(path, options.signature, in_folder=True)

    def load(self, path: Path, fmt: str, signature: Signature, options: LoadOptions) -> LoadedModel:
        from modelport.runtimes.onnx import OnnxModel

        return OnnxModel(path, signature, options.threads, in_folder=True)


def _check_width(mlmodel: MLModel, actual: Signature) -> None:
    """The MLmodel's signature and the model file must agree on a row matrix's width (a
    folder whose files do not belong together is refused)."""
    if mlmodel.signature is None or len(actual.inputs) != 1:
        return
    logged, real = mlmodel.signature.inputs, actual.inputs[0]
    if len(logged) != 1 or len(logged[0].shape) != 2 or len(real.shape) != 2:
        return
    width, expected = logged[0].shape[1], real.shape[1]
    if -1 not in (width, expected) and width != expected:
        raise InvalidInputError(
            f"the MLmodel's signature takes {width} columns but its model file takes "
            f"{expected}; the folder's files do not belong together"
        )
