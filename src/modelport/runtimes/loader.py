"""Which runtime handles which format: inspection of uploads and loading for serving."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelport.runtimes.base import InspectedArtifact, LoadedModel, Tensors
from modelport.runtimes.formats import ArtifactFormat, detect_format
from modelport.tensors.dtypes import NUMPY_DTYPES
from modelport.types import Datatype, Signature, VersionInfo


def inspect_upload(
    path: Path, allow_pickle: bool, uploader_is_admin: bool, signature: Signature | None
) -> InspectedArtifact:
    """Check that an upload is a model ModelPort can serve safely and describe it; a
    given signature is checked against the one read from the model."""
    fmt = detect_format(path)
    if fmt is ArtifactFormat.ONNX:
        from modelport.runtimes import onnx

        inspected = onnx.inspect_artifact(path, signature)
    else:
        from modelport.runtimes import sklearn

        inspected = sklearn.inspect_artifact(path, fmt, allow_pickle, uploader_is_admin, signature)
    return inspected


def load_model(
    path: Path, fmt: ArtifactFormat, signature: Signature, trusted: bool, allow_pickle: bool
) -> LoadedModel:
    """Load a verified artifact with the runtime of its format."""
    if fmt is ArtifactFormat.ONNX:
        from modelport.runtimes.onnx import OnnxModel

        return OnnxModel(path, signature)
    from modelport.runtimes.sklearn import SklearnModel, load_estimator

    estimator = load_estimator(path, fmt, trusted, allow_pickle)
    return SklearnModel(estimator, signature)


def load_version(path: Path, version: VersionInfo, allow_pickle: bool) -> LoadedModel:
    return load_model(
        path, ArtifactFormat(version.format), version.signature, version.trusted, allow_pickle
    )


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
