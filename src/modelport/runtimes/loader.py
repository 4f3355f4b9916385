"""Which runtime handles which format: inspection of uploads and loading for serving
(the runtimes themselves are plugins: ``modelport.runtimes.plugins``)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from modelport.runtimes.archives import extract_archive, unpack
from modelport.runtimes.base import InspectedArtifact, LoadedModel, synthetic_inputs
from modelport.runtimes.plugins import (
    InspectOptions,
    LoadOptions,
    detect,
    detect_folder,
    is_folder_format,
    runtime_for,
)
from modelport.types import Signature, VersionInfo


def inspect_upload(
    path: Path, allow_pickle: bool, uploader_is_admin: bool, signature: Signature | None
) -> InspectedArtifact:
    """Check that an upload is a model ModelPort can serve safely and describe it; a
    given signature is checked against the one read from the model. An archive is
    extracted (safely, into a scratch folder beside the upload) and inspected as the model
    folder it holds."""
    options = InspectOptions(allow_pickle, uploader_is_admin, signature)
    found = detect(path)
    if found is not None:
        runtime, fmt = found
        return runtime.inspect(path, fmt, options)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix="unpack-") as scratch:
        folder = extract_archive(path, Path(scratch))
        runtime, fmt = detect_folder(folder)
        return runtime.inspect(folder, fmt, options)


def model_path(blob: Path, fmt: str, unpacked_root: Path) -> Path:
    """What a runtime loads: the stored file itself, or for a model folder the folder
    extracted (once) from its archive under ``unpacked_root``."""
    return unpack(blob, unpacked_root) if is_folder_format(fmt) else blob


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
    """Load a version from ``path`` (see :func:`model_path`); ``shared_arrays`` is the
    folder of shared array files (the version's own subfolder is used)."""
    share_dir = shared_arrays / version.artifact_sha256 if shared_arrays is not None else None
    return load_model(
        path, version.format, version.signature, version.trusted, allow_pickle, share_dir, threads
    )


__all__ = ["inspect_upload", "load_model", "load_version", "model_path", "synthetic_inputs"]
