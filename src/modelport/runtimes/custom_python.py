"""Custom Python models: your own class, served like any other model.

A custom model is a folder with a ``modelport.json`` manifest and the Python module that
defines the class::

    my-model/
        modelport.json
        model.py
        weights.npy          (anything your class reads)

``modelport.json``::

    {
      "class": "model:Model",
      "requirements": ["numpy>=1.26"],
      "signature": {
        "inputs":  [{"name": "features", "datatype": "FP64", "shape": [-1, 3]}],
        "outputs": [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
      }
    }

``class`` is ``module:Class`` (the module is a ``.py`` file, or a package folder, inside
the model folder; the folder is first on ``sys.path``, so the module may import its
siblings). ``requirements`` (optional) are PEP 508 lines checked against the packages
installed on the server at upload and at every load: nothing is installed for you.
``signature`` gives the V2 inputs and outputs (or upload with a ``signature`` form field).

The class (``model.py``)::

    import numpy as np

    class Model:
        def load(self, folder):          # optional: called once, with the model folder
            self.weights = np.load(folder / "weights.npy")

        def predict(self, inputs):       # dict of arrays in, dict of arrays out
            return {"predict": inputs["features"] @ self.weights}

        def unload(self):                # optional: called before the model is dropped
            ...

It is built without arguments; ``load(folder: pathlib.Path)`` runs once before the first
request; ``predict(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]`` gets one
array per signature input (rows of several callers may arrive together along a free first
dimension) and returns at least every signature output, one row per input row. A
``ValueError`` or ``TypeError`` from ``predict`` is the caller's input error (400); any
other failure is a 503 for that request.

Custom code runs only as a trusted version (an admin pushes it to a server started with
``--allow-pickle``), and never in the server process: the upload is checked by loading it
in a throwaway process, and it is served from worker processes, so an exception, an
``os._exit`` or a segfault costs only the requests that process was running; a new process
replaces it.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
from packaging.requirements import Requirement
from pydantic import ValidationError

from modelport.errors import InvalidInputError, ModelPortError, UnavailableError
from modelport.runtimes.base import InspectedArtifact, Tensors
from modelport.runtimes.folder_json import read_json
from modelport.runtimes.isolation import probe_load
from modelport.runtimes.plugins import InspectOptions, LoadOptions
from modelport.runtimes.requirements import check_requirements, parse_requirements
from modelport.runtimes.signatures import signature_for_upload
from modelport.runtimes.trust import require_trusted_load, require_trusted_upload
from modelport.types import Signature

MANIFEST = "modelport.json"
MAX_MANIFEST_BYTES = 1024 * 1024
PYTHON = "python"
WHAT = "a custom Python model"
_CLASS_PATTERN = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):([A-Za-z_]\w*)$")
_KEYS = frozenset({"class", "requirements", "signature", "description"})


class Manifest:
    """``modelport.json``, checked."""

    def __init__(self, module: str, class_name: str, requirements: list[Requirement]) -> None:
        self.module = module
        self.class_name = class_name
        self.requirements = requirements
        self.signature: Signature | None = None


def read_manifest(folder: Path) -> Manifest:
    document = read_json(folder / MANIFEST, MANIFEST, MAX_MANIFEST_BYTES)
    if not isinstance(document, dict):
        raise InvalidInputError(f'{MANIFEST} must be a JSON object like {{"class": "model:Model"}}')
    unknown = sorted(set(document) - _KEYS)
    if unknown:
        raise InvalidInputError(
            f"{MANIFEST} has unknown keys: {', '.join(unknown)[:200]} (it takes "
            f"{', '.join(sorted(_KEYS))})"
        )
    target = document.get("class")
    found = _CLASS_PATTERN.match(target) if isinstance(target, str) else None
    if found is None:
        raise InvalidInputError(
            f'{MANIFEST} needs "class": "module:Class", e.g. "model:Model" for class Model '
            "in model.py"
        )
    manifest = Manifest(found[1], found[2], parse_requirements(document.get("requirements", [])))
    if "signature" in document:
        try:
            manifest.signature = Signature.model_validate(document["signature"])
        except ValidationError as exc:
            raise InvalidInputError(f"the signature in {MANIFEST} is not valid: {exc}") from None
    return manifest


class CustomPythonRuntime:
    """Folders with a ``modelport.json`` manifest and the class it names."""

    name = "custom-python"
    folder_formats: tuple[str, ...] = (PYTHON,)
    isolated_formats: tuple[str, ...] = (PYTHON,)

    def detect_folder(self, folder: Path) -> str | None:
        return PYTHON if (folder / MANIFEST).is_file() else None

    def inspect(self, path: Path, fmt: str, options: InspectOptions) -> InspectedArtifact:
        require_trusted_upload(options, WHAT)
        manifest = read_manifest(path)
        check_requirements(manifest.requirements)
        _module_file(path, manifest.module)
        declared = manifest.signature or options.signature
        if declared is None:
            raise InvalidInputError(
                f'{WHAT} needs a signature: add "signature" to {MANIFEST}, or upload it '
                "with one (the upload's 'signature' form field)"
            )
        signature = signature_for_upload(options.signature, declared)
        if not signature.inputs or not signature.outputs:
            raise InvalidInputError("a signature needs at least one input and one output")
        probe_load(path, fmt, signature, WHAT)
        return InspectedArtifact(
            format=PYTHON,
            framework="python",
            framework_version=".".join(map(str, sys.version_info[:3])),
            signature=signature,
            params={
                "class": f"{manifest.module}:{manifest.class_name}",
                "requirements": [str(r) for r in manifest.requirements],
            },
            trusted=True,
        )

    def load(
        self, path: Path, fmt: str, signature: Signature, options: LoadOptions
    ) -> CustomPythonModel:
        require_trusted_load(options, WHAT)
        manifest = read_manifest(path)
        try:
            check_requirements(manifest.requirements)
        except InvalidInputError as exc:  # the server changed since the upload
            raise UnavailableError(exc.message) from None
        instance = _instantiate(path, manifest)
        return CustomPythonModel(instance, signature)


def _module_file(folder: Path, module: str) -> Path:
    """The module's file, which must lie in the model folder."""
    relative = Path(*module.split("."))
    for candidate in (folder / relative.with_suffix(".py"), folder / relative / "__init__.py"):
        if candidate.is_file() and candidate.resolve().is_relative_to(folder.resolve()):
            return candidate.resolve()
    raise InvalidInputError(
        f"{MANIFEST} names module '{module}', but the folder has no {relative}.py "
        f"(or {relative}/__init__.py)"
    )


def _instantiate(folder: Path, manifest: Manifest) -> Any:
    """Import the module from the folder and build the class (running the user's code)."""
    expected = _module_file(folder, manifest.module)
    sys.path.insert(0, str(folder.resolve()))
    try:
        module = importlib.import_module(manifest.module)
    except Exception as exc:
        raise UnavailableError(
            f"importing {manifest.module} failed: {type(exc).__name__}: {exc}"[:1000]
        ) from None
    if Path(getattr(module, "__file__", "") or "").resolve() != expected:
        raise InvalidInputError(
            f"module name '{manifest.module}' is taken by an installed module; rename "
            f"{manifest.module}.py"
        )
    cls = getattr(module, manifest.class_name, None)
    if not isinstance(cls, type):
        raise InvalidInputError(f"{manifest.module}.py defines no class {manifest.class_name}")
    try:
        instance = cls()
        if callable(getattr(instance, "load", None)):
            instance.load(folder)
    except ModelPortError:
        raise
    except Exception as exc:
        raise UnavailableError(
            f"{manifest.class_name} failed to load: {type(exc).__name__}: {exc}"[:1000]
        ) from None
    if not callable(getattr(instance, "predict", None)):
        raise InvalidInputError(f"{manifest.class_name} has no predict(inputs) method")
    return instance


class CustomPythonModel:
    """The user's object behind the runtime contract: requested outputs only, as arrays."""

    finite_inputs_only = False

    def __init__(self, instance: Any, signature: Signature) -> None:
        self.instance = instance
        self.signature = signature
        self.default_outputs = [spec.name for spec in signature.outputs]

    def predict(self, inputs: Tensors, outputs: frozenset[str]) -> Tensors:
        produced = self.instance.predict(dict(inputs))
        if not isinstance(produced, dict):
            raise UnavailableError(
                f"the model's predict returned {type(produced).__name__}, not a dict of arrays"
            )
        results: Tensors = {}
        for name in self.default_outputs:
            if name not in outputs:
                continue
            if name not in produced:
                raise UnavailableError(f"the model's predict returned no output '{name}'")
            results[name] = np.asarray(produced[name])
        return results

    def unload(self) -> None:
        unload = getattr(self.instance, "unload", None)
        if callable(unload):
            unload()
        self.instance = None
