"""scikit-learn runtime: skops files load safely; pickles only when trusted.

Heavy imports (sklearn, skops, joblib) happen inside functions so that the CLI starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modelport.errors import ForbiddenError, InvalidInputError, UnavailableError
from modelport.runtimes.base import InspectedArtifact, Tensors, synthetic_inputs
from modelport.runtimes.formats import ArtifactFormat, sklearn_format
from modelport.runtimes.plugins import InspectOptions, LoadOptions, missing_framework
from modelport.runtimes.signatures import signature_for_upload
from modelport.runtimes.sklearn_trusted import TRUSTED_SKOPS_TYPES
from modelport.runtimes.sklearn_walk import import_skops_io
from modelport.tensors.dtypes import datatype_of
from modelport.types import Datatype, Signature, TensorSpec

PICKLE_REFUSED = (
    "this file is a pickle/joblib file: loading it would run whatever code it contains, so "
    "ModelPort refuses it. Save the model with skops instead (skops.io.dump(model, "
    "'model.skops')), or let the CLI convert it on your own machine: "
    "`modelport models push FILE --name NAME --convert skops`"
)
TEXT_VECTORIZERS = ("CountVectorizer", "TfidfVectorizer", "HashingVectorizer")


class SklearnRuntime:
    """scikit-learn estimators and pipelines: skops files, and trusted pickles."""

    name = "sklearn"
    formats: tuple[str, ...] = (ArtifactFormat.SKOPS, ArtifactFormat.PICKLE)

    def detect(self, path: Path, head: bytes) -> str | None:
        return sklearn_format(path, head)

    def inspect(self, path: Path, fmt: str, options: InspectOptions) -> InspectedArtifact:
        return inspect_artifact(
            path,
            ArtifactFormat(fmt),
            options.allow_pickle,
            options.uploader_is_admin,
            options.signature,
        )

    def load(
        self, path: Path, fmt: str, signature: Signature, options: LoadOptions
    ) -> SklearnModel:
        estimator = load_estimator(path, ArtifactFormat(fmt), options.trusted, options.allow_pickle)
        if options.share_dir is not None:
            from modelport.runtimes.shared_arrays import share_arrays

            share_arrays(estimator, options.share_dir)
        return SklearnModel(estimator, signature)


def load_estimator(path: Path, fmt: ArtifactFormat, trusted: bool, allow_pickle: bool) -> Any:
    """Deserialise an estimator. Pickles need both a trusted version and ``allow_pickle``."""
    if fmt is ArtifactFormat.SKOPS:
        return _load_skops(path)
    if not (trusted and allow_pickle):
        raise ForbiddenError(
            "this version is a pickle and the server does not allow pickles "
            "(start it with --allow-pickle to serve trusted pickle versions)"
        )
    import joblib

    return joblib.load(path)


_WRAPPED_FRAMEWORKS = ("xgboost", "lightgbm")
"""Frameworks whose scikit-learn wrappers a skops file may hold (each is its own extra)."""


def _load_skops(path: Path) -> Any:
    sio = import_skops_io()

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise InvalidInputError(f"the skops file could not be read: {exc}") from None
    refused = sorted(set(untrusted) - TRUSTED_SKOPS_TYPES)
    if refused:
        raise InvalidInputError(
            "the skops file contains types that ModelPort does not trust: "
            + ", ".join(refused)
            + ". Only scikit-learn estimators and their fitted internals are accepted"
        )
    try:
        return sio.load(path, trusted=list(untrusted))
    except ModuleNotFoundError as exc:
        package = (exc.name or "").split(".")[0]
        if package in _WRAPPED_FRAMEWORKS:
            raise missing_framework(package, package, "a model") from None
        raise InvalidInputError(f"the skops file could not be loaded: {exc}") from None
    except Exception as exc:
        raise InvalidInputError(f"the skops file could not be loaded: {exc}") from None


def inspect_artifact(
    path: Path,
    fmt: ArtifactFormat,
    allow_pickle: bool,
    uploader_is_admin: bool,
    signature: Signature | None,
) -> InspectedArtifact:
    """Check that an upload is a loadable scikit-learn model and describe it."""
    trusted = False
    if fmt is ArtifactFormat.PICKLE:
        if not allow_pickle:
            raise InvalidInputError(PICKLE_REFUSED)
        if not uploader_is_admin:
            raise ForbiddenError(
                "pickle uploads are accepted only from admin keys, because loading them runs "
                "code; ask an admin, or push a skops file instead"
            )
        trusted = True
    estimator = load_estimator(path, fmt, trusted=trusted, allow_pickle=allow_pickle)
    if not hasattr(estimator, "predict"):
        raise InvalidInputError(
            f"the file holds a {type(estimator).__name__}, which has no predict method"
        )
    import sklearn

    inferred = _with_observed_output_types(estimator, infer_signature(estimator))
    return InspectedArtifact(
        format=fmt.value,
        framework="sklearn",
        framework_version=sklearn.__version__,
        signature=signature_for_upload(signature, inferred),
        params=_estimator_params(estimator),
        trusted=trusted,
    )


def _with_observed_output_types(estimator: Any, signature: Signature) -> Signature:
    """Set each output's datatype from a real prediction on synthetic input (e.g. KMeans
    predicts INT32 labels); keep the inferred types when the model refuses the input."""
    model = SklearnModel(estimator, signature)
    synthetic = synthetic_inputs(signature)
    try:
        results = model.predict(synthetic, frozenset(spec.name for spec in signature.outputs))
    except Exception:  # e.g. an encoder that rejects unknown categories
        return signature
    outputs = [
        spec.model_copy(update={"datatype": datatype_of(results[spec.name].dtype)})
        if spec.name in results
        else spec
        for spec in signature.outputs
    ]
    return signature.model_copy(update={"outputs": outputs})


def _estimator_params(estimator: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"estimator": type(estimator).__name__}
    get_params = getattr(estimator, "get_params", None)
    if get_params is None:
        return params
    for key, value in get_params(deep=False).items():
        if value is None or isinstance(value, bool | int | float | str):
            params[key] = value
    return params


def _takes_text(estimator: Any) -> bool:
    steps = getattr(estimator, "steps", None)
    first = steps[0][1] if steps else estimator
    return type(first).__name__ in TEXT_VECTORIZERS


def _text_columns(estimator: Any) -> set[str]:
    """Columns a ColumnTransformer feeds to an encoder fitted on strings (categoricals)."""
    found: set[str] = set()
    steps = [step for _, step in getattr(estimator, "steps", [])] or [estimator]
    for step in steps:
        for _, transformer, columns in getattr(step, "transformers_", []):
            encoder = transformer.steps[-1][1] if hasattr(transformer, "steps") else transformer
            categories = getattr(encoder, "categories_", None)
            if categories is None or not isinstance(columns, list | tuple | np.ndarray):
                continue
            for column, values in zip(columns, categories, strict=False):
                if np.asarray(values).dtype.kind in "OUS":
                    found.add(str(column))
    return found


def infer_signature(estimator: Any) -> Signature:
    """Build the V2 signature from what a fitted estimator knows about itself."""
    if _takes_text(estimator):
        inputs = [TensorSpec(name="input", datatype=Datatype.BYTES, shape=[-1])]
    else:
        n_features = getattr(estimator, "n_features_in_", None)
        if n_features is None:
            raise InvalidInputError(
                f"cannot tell how many features {type(estimator).__name__} expects; pass a "
                "signature with the upload"
            )
        names = getattr(estimator, "feature_names_in_", None)
        if names is not None:
            # Trained on a DataFrame: one input per column (the "pd" content type).
            text = _text_columns(estimator)
            inputs = [
                TensorSpec(
                    name=str(name),
                    datatype=Datatype.BYTES if str(name) in text else Datatype.FP64,
                    shape=[-1],
                    parameters={"content_type": "pd"},
                )
                for name in names
            ]
        else:
            inputs = [
                TensorSpec(name="features", datatype=Datatype.FP64, shape=[-1, int(n_features)])
            ]
    classes = getattr(estimator, "classes_", None)
    if classes is not None:
        outputs = [
            TensorSpec(
                name="predict",
                datatype=datatype_of(np.asarray(classes).dtype),
                shape=[-1],
                parameters={"classes": np.asarray(classes).tolist()},
            )
        ]
        if hasattr(estimator, "predict_proba"):
            outputs.append(
                TensorSpec(name="predict_proba", datatype=Datatype.FP64, shape=[-1, len(classes)])
            )
    else:
        outputs = [TensorSpec(name="predict", datatype=Datatype.FP64, shape=[-1])]
    return Signature(inputs=inputs, outputs=outputs)


class SklearnModel:
    """A loaded scikit-learn estimator (one input: a row matrix, or a list of strings)."""

    finite_inputs_only = True

    def __init__(self, estimator: Any, signature: Signature) -> None:
        self.estimator = estimator
        self.signature = signature
        self.default_outputs = ["predict"]
        self._input = signature.inputs[0].name
        self._text = signature.inputs[0].datatype is Datatype.BYTES and len(signature.inputs) == 1
        names = getattr(estimator, "feature_names_in_", None)
        self._columns = [str(name) for name in names] if names is not None else None
        # Per-column signature (trained on a DataFrame): one input per column.
        self._by_column = [spec.name for spec in signature.inputs] == self._columns

    def _model_input(self, inputs: Tensors) -> Any:
        if self._by_column and self._columns is not None:
            import pandas as pd

            return pd.DataFrame(
                {name: _column(inputs[name]) for name in self._columns}, columns=self._columns
            )
        features = inputs[self._input]
        if self._text:
            return [_as_text(item) for item in features.reshape(-1)]
        if self._columns is not None:
            import pandas as pd

            return pd.DataFrame(features, columns=self._columns)
        return features

    def predict(self, inputs: Tensors, outputs: frozenset[str]) -> Tensors:
        import sklearn

        features = self._model_input(inputs)
        results: Tensors = {}
        # Inputs were validated (finite, numeric, right width) before they got here.
        with sklearn.config_context(assume_finite=True):
            if "predict" in outputs:
                results["predict"] = np.asarray(self.estimator.predict(features))
            if "predict_proba" in outputs:
                if not hasattr(self.estimator, "predict_proba"):
                    raise UnavailableError("this model has no predict_proba output")
                results["predict_proba"] = np.asarray(self.estimator.predict_proba(features))
        return results

    def unload(self) -> None:
        self.estimator = None


def _column(array: np.ndarray) -> Any:
    flat = array.reshape(-1)
    if flat.dtype.kind in "OS":
        return [_as_text(item) for item in flat]
    return flat


def _as_text(item: Any) -> str:
    return item.decode("utf-8") if isinstance(item, bytes) else str(item)
