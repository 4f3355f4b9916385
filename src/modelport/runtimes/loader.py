"""Which runtime handles which format: inspection of uploads and loading for serving."""

from __future__ import annotations

from pathlib import Path

from modelport.runtimes.base import InspectedArtifact, LoadedModel, synthetic_inputs
from modelport.runtimes.formats import ArtifactFormat, detect_format
from modelport.types import Signature, VersionInfo


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
    path: Path,
    fmt: ArtifactFormat,
    signature: Signature,
    trusted: bool,
    allow_pickle: bool,
    share_dir: Path | None = None,
) -> LoadedModel:
    """Load a verified artifact with the runtime of its format. With ``share_dir``, a
    scikit-learn model's large arrays become memory maps shared by every process that
    loads the same artifact."""
    if fmt is ArtifactFormat.ONNX:
        from modelport.runtimes.onnx import OnnxModel

        return OnnxModel(path, signature)
    from modelport.runtimes.sklearn import SklearnModel, load_estimator

    estimator = load_estimator(path, fmt, trusted, allow_pickle)
    if share_dir is not None:
        from modelport.runtimes.shared_arrays import share_arrays

        share_arrays(estimator, share_dir)
    return SklearnModel(estimator, signature)


def load_version(
    path: Path, version: VersionInfo, allow_pickle: bool, shared_arrays: Path | None = None
) -> LoadedModel:
    """Load a version; ``shared_arrays`` is the folder of shared array files (the version's
    own subfolder is used)."""
    share_dir = shared_arrays / version.artifact_sha256 if shared_arrays is not None else None
    return load_model(
        path,
        ArtifactFormat(version.format),
        version.signature,
        version.trusted,
        allow_pickle,
        share_dir,
    )


__all__ = ["inspect_upload", "load_model", "load_version", "synthetic_inputs"]
