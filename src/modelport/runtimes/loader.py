"""Which runtime handles which format: inspection of uploads and loading for serving."""

from __future__ import annotations

from pathlib import Path

from modelport.runtimes.base import InspectedArtifact, LoadedModel
from modelport.runtimes.formats import ArtifactFormat, detect_format
from modelport.types import Signature, VersionInfo


def inspect_upload(
    path: Path, allow_pickle: bool, uploader_is_admin: bool, signature: Signature | None
) -> InspectedArtifact:
    """Check that an upload is a model ModelPort can serve safely, and describe it."""
    fmt = detect_format(path)
    if fmt is ArtifactFormat.ONNX:
        from modelport.runtimes import onnx

        return onnx.inspect_artifact(path, signature)
    from modelport.runtimes import sklearn

    return sklearn.inspect_artifact(path, fmt, allow_pickle, uploader_is_admin, signature)


def load_model(path: Path, version: VersionInfo, allow_pickle: bool) -> LoadedModel:
    """Load a verified artifact with the runtime of its format."""
    fmt = ArtifactFormat(version.format)
    if fmt is ArtifactFormat.ONNX:
        from modelport.runtimes.onnx import OnnxModel

        return OnnxModel(path, version.signature)
    from modelport.runtimes.sklearn import SklearnModel, load_estimator

    estimator = load_estimator(path, fmt, version.trusted, allow_pickle)
    return SklearnModel(estimator, version.signature)
