"""Which runtime handles which format: inspection of uploads and loading for serving
(the runtimes themselves are plugins: ``modelport.runtimes.plugins``)."""

from __future__ import annotations

from pathlib import Path

from modelport.runtimes.base import InspectedArtifact, LoadedModel, synthetic_inputs
from modelport.runtimes.plugins import InspectOptions, LoadOptions, detect, runtime_for
from modelport.types import Signature, VersionInfo


def inspect_upload(
    path: Path, allow_pickle: bool, uploader_is_admin: bool, signature: Signature | None
) -> InspectedArtifact:
    """Check that an upload is a model ModelPort can serve safely and describe it; a
    given signature is checked against the one read from the model."""
    runtime, fmt = detect(path)
    return runtime.inspect(path, fmt, InspectOptions(allow_pickle, uploader_is_admin, signature))


def load_model(
    path: Path,
    fmt: str,
    signature: Signature,
    trusted: bool,
    allow_pickle: bool,
    share_dir: Path | None = None,
    threads: int = 1,
) -> LoadedModel:
    """Load a verified artifact with the runtime of its format. With ``share_dir``, a
    runtime may keep large arrays as memory maps shared by every process that loads the
    same artifact (scikit-learn does); ``threads``: cores one predict call may use."""
    options = LoadOptions(trusted, allow_pickle, share_dir, threads)
    return runtime_for(fmt).load(path, fmt, signature, options)


def load_version(
    path: Path,
    version: VersionInfo,
    allow_pickle: bool,
    shared_arrays: Path | None = None,
    threads: int = 1,
) -> LoadedModel:
    """Load a version; ``shared_arrays`` is the folder of shared array files (the version's
    own subfolder is used)."""
    share_dir = shared_arrays / version.artifact_sha256 if shared_arrays is not None else None
    return load_model(
        path, version.format, version.signature, version.trusted, allow_pickle, share_dir, threads
    )


__all__ = ["inspect_upload", "load_model", "load_version", "synthetic_inputs"]
