"""Runtimes as plugins. A runtime owns some artifact formats, recognises them from an
artifact's first bytes (never its name), inspects uploads (is it a model it can serve
safely, and what is its signature) and loads versions for serving.

The built-in runtimes (scikit-learn, ONNX, XGBoost, LightGBM) come first; a package adds
one by naming an object or class with this contract under the ``modelport.runtimes``
entry-point group, e.g. in its ``pyproject.toml``::

    [project.entry-points."modelport.runtimes"]
    my-format = "my_package.runtime:MyRuntime"
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol, runtime_checkable

from modelport.errors import InvalidInputError
from modelport.runtimes.archives import is_archive
from modelport.runtimes.base import InspectedArtifact, LoadedModel
from modelport.types import Signature

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "modelport.runtimes"
HEAD_BYTES = 64
"""What ``detect`` sees of an artifact."""
PICKLE = "pickle"
"""Recognised by the loosest test (a few possible first bytes): any other runtime that
claims a file goes first."""


@dataclass(frozen=True)
class InspectOptions:
    allow_pickle: bool
    """The server serves trusted pickles (``--allow-pickle``)."""
    uploader_is_admin: bool
    signature: Signature | None
    """The signature the uploader gave, to check against the model's own."""


@dataclass(frozen=True)
class LoadOptions:
    trusted: bool
    allow_pickle: bool
    share_dir: Path | None = None
    """Where a runtime may keep memory-mappable copies of large arrays (shared by every
    process that serves the version)."""
    threads: int = 1
    """Cores one predict call may use (the server's usable cores, or a worker process's
    share of them)."""


@runtime_checkable
class Runtime(Protocol):
    name: str
    formats: tuple[str, ...]

    def detect(self, path: Path, head: bytes) -> str | None:
        """The format of the artifact whose first bytes are ``head``, if this runtime's."""
        ...

    def inspect(self, path: Path, fmt: str, options: InspectOptions) -> InspectedArtifact: ...

    def load(
        self, path: Path, fmt: str, signature: Signature, options: LoadOptions
    ) -> LoadedModel: ...


@runtime_checkable
class FolderRuntime(Protocol):
    """A runtime for models that are folders of files (an MLflow model directory, a
    Hugging Face folder...). Users push the folder (the CLI packs it) or an archive of it;
    the server extracts it safely and asks each folder runtime whether it is theirs.
    ``inspect`` and ``load`` get the extracted folder. A runtime may implement both this
    contract and :class:`Runtime` (e.g. single files and folders of one framework)."""

    name: str
    folder_formats: tuple[str, ...]

    def detect_folder(self, folder: Path) -> str | None:
        """The format of the extracted model folder ``folder``, if this runtime's."""
        ...

    def inspect(self, path: Path, fmt: str, options: InspectOptions) -> InspectedArtifact: ...

    def load(
        self, path: Path, fmt: str, signature: Signature, options: LoadOptions
    ) -> LoadedModel: ...


AnyRuntime = Runtime | FolderRuntime

BUILTIN = (
    "sklearn",
    "onnx",
    "xgboost",
    "lightgbm",
    "huggingface-embeddings",
    "pytorch",
    "huggingface-generation",
    "mlflow",
    "custom-python",
)


def _builtin() -> list[AnyRuntime]:
    from modelport.runtimes.custom_python import CustomPythonRuntime
    from modelport.runtimes.hf_embeddings import HFEmbeddingsRuntime
    from modelport.runtimes.hf_generation import HFGenerationRuntime
    from modelport.runtimes.lightgbm import LightGBMRuntime
    from modelport.runtimes.mlflow import MLflowRuntime
    from modelport.runtimes.onnx import OnnxRuntime
    from modelport.runtimes.pytorch import PyTorchRuntime
    from modelport.runtimes.sklearn import SklearnRuntime
    from modelport.runtimes.xgboost import XGBoostRuntime

    return [
        MLflowRuntime(),  # folders with a manifest file first: other folder runtimes
        CustomPythonRuntime(),  # recognise folders by the kinds of files they hold
        SklearnRuntime(),
        OnnxRuntime(),
        XGBoostRuntime(),
        LightGBMRuntime(),
        HFEmbeddingsRuntime(),
        PyTorchRuntime(),
        HFGenerationRuntime(),
    ]


def _from_entry_points() -> Iterable[AnyRuntime]:
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            found = entry.load()
            runtime = found() if isinstance(found, type) else found
        except Exception as exc:  # a broken plugin must not take the server down
            log.warning("runtime plugin %s could not be loaded: %s", entry.name, exc)
            continue
        if not isinstance(runtime, Runtime | FolderRuntime):
            log.warning("runtime plugin %s does not implement the runtime contract", entry.name)
            continue
        yield runtime


@functools.cache
def runtimes() -> tuple[AnyRuntime, ...]:
    """Every runtime, built-in ones first."""
    found: list[AnyRuntime] = list(_builtin())
    names = {runtime.name for runtime in found}
    for runtime in _from_entry_points():
        if runtime.name in names:
            log.warning("runtime plugin %s is ignored: the name is taken", runtime.name)
            continue
        names.add(runtime.name)
        found.append(runtime)
    return tuple(found)


def detect(path: Path) -> tuple[AnyRuntime, str] | None:
    """The runtime and format of a single-file artifact, from its first bytes; the loosest
    match (a pickle) comes back only when no runtime claims the file and it is not an
    archive of a model folder."""
    with path.open("rb") as stream:
        head = stream.read(HEAD_BYTES)
    fallback = None
    for runtime in runtimes():
        if not isinstance(runtime, Runtime):
            continue
        try:
            fmt = runtime.detect(path, head)
        except Exception as exc:  # a plugin's bug must not turn an upload into a 500
            log.warning("runtime %s failed to inspect an upload's head: %s", runtime.name, exc)
            continue
        if fmt == PICKLE:
            fallback = fallback or (runtime, fmt)  # the loosest signature: tried last
        elif fmt is not None:
            return runtime, fmt
    if is_archive(path, head):
        return None
    if fallback is not None:
        return fallback
    raise unrecognised()


def detect_folder(folder: Path) -> tuple[AnyRuntime, str]:
    """The runtime and format of an extracted model folder."""
    for runtime in runtimes():
        if not isinstance(runtime, FolderRuntime):
            continue
        try:
            fmt = runtime.detect_folder(folder)
        except Exception as exc:  # a plugin's bug must not turn an upload into a 500
            log.warning("runtime %s failed to inspect a model folder: %s", runtime.name, exc)
            continue
        if fmt is not None:
            return runtime, fmt
    raise InvalidInputError(
        "unrecognised model folder: ModelPort serves folders (pushed as a directory, a .zip "
        "or a .tar.gz) that hold an MLflow model (an MLmodel file), a Hugging Face model "
        "(config.json with .safetensors weights and a tokenizer), a PyTorch state dict "
        "(model.safetensors with an architecture.json) or a custom Python model "
        "(modelport.json)" + _plugin_formats()
    )


def unrecognised() -> InvalidInputError:
    return InvalidInputError(
        "unrecognised model file: ModelPort accepts scikit-learn models saved with skops "
        "(skops.io.dump(model, 'model.skops')), ONNX models (.onnx), XGBoost models saved "
        "as JSON or UBJSON (booster.save_model('model.json')) and LightGBM text models "
        "(booster.save_model('model.txt'))" + _plugin_formats()
    )


def _plugin_formats() -> str:
    extra = [
        fmt
        for r in runtimes()
        if r.name not in BUILTIN
        for fmt in (*getattr(r, "formats", ()), *getattr(r, "folder_formats", ()))
    ]
    return f", and through plugins: {', '.join(extra)}" if extra else ""


def runtime_for(fmt: str) -> AnyRuntime:
    """The runtime that owns format ``fmt``."""
    for runtime in runtimes():
        if fmt in getattr(runtime, "formats", ()) or fmt in getattr(runtime, "folder_formats", ()):
            return runtime
    raise InvalidInputError(
        f"no installed runtime serves the format '{fmt}'; install the plugin that provides "
        f"it (entry-point group '{ENTRY_POINT_GROUP}')"
    )


def is_folder_format(fmt: str) -> bool:
    """Whether versions of format ``fmt`` are stored as archives of a model folder."""
    return any(fmt in getattr(r, "folder_formats", ()) for r in runtimes())


def needs_isolation(fmt: str) -> bool:
    """Whether versions of format ``fmt`` run the uploader's code (custom Python, MLflow
    pyfunc) and so are loaded only in worker processes, never in the server process: a
    runtime lists such formats in an ``isolated_formats`` attribute."""
    return any(fmt in getattr(r, "isolated_formats", ()) for r in runtimes())


def missing_framework(package: str, extra: str, what: str) -> InvalidInputError:
    """The error for a model whose framework is not installed."""
    return InvalidInputError(
        f"this is {what}, but the '{package}' package is not installed on the server; "
        f"install it with: pip install 'modelport[{extra}]'"
    )
