"""PyTorch runtime (the ``torch`` extra, imported only when a PyTorch model is pushed or
served).

Safe without trust:

- exported programs (``torch.export.save(torch.export.export(model, (x,)), "model.pt2")``)
  that pass ``torch_export_check`` (a plain program: raw tensors and ATen operators; the
  signature, with -1 for dimensions exported as dynamic, is read from the graph);
- state-dict folders (``model.safetensors`` + ``architecture.json``, see
  ``torch_state_dict``).

Trusted only (an admin's upload on a server started with ``--allow-pickle``), because
loading them runs code: TorchScript archives (``torch.jit.save``), whole-model pickles
(``torch.save(model)``, zip or legacy) and exported programs that fail the check. Neither
TorchScript nor a pickle records its input shapes, so these need a signature with the
upload (the ``signature`` form field) naming their inputs; their outputs are read from
one synthetic call (zeros), and any outputs given are checked against it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from modelport.errors import ForbiddenError, InvalidInputError
from modelport.runtimes.base import InspectedArtifact
from modelport.runtimes.plugins import InspectOptions, LoadOptions, missing_framework
from modelport.runtimes.signatures import check_given_signature, signature_for_upload
from modelport.runtimes.torch_export_check import unsafe_reason
from modelport.runtimes.torch_formats import (
    TORCH_EXPORT,
    TORCH_PICKLE,
    TORCH_STATE_DICT,
    TORCHSCRIPT,
    is_state_dict_folder,
    torch_format,
)
from modelport.runtimes.torch_model import (
    TorchModel,
    call_module,
    check_inputs,
    observed_outputs,
    use_threads,
)
from modelport.runtimes.torch_signatures import exported_signature, torch_dtype_of
from modelport.runtimes.torch_state_dict import build_module, model_inputs, read_description
from modelport.types import Signature

_WHAT = {
    TORCH_EXPORT: "a PyTorch exported program",
    TORCHSCRIPT: "a TorchScript model",
    TORCH_PICKLE: "a pickled PyTorch model (torch.save)",
    TORCH_STATE_DICT: "a PyTorch state dict",
}
SAFE_FORMS = (
    "export the model instead (torch.export.save(torch.export.export(model, (example,)), "
    "'model.pt2')) or push a folder with its weights as model.safetensors and an "
    "architecture.json"
)


class PyTorchRuntime:
    """Exported programs, TorchScript, pickled modules and state-dict folders."""

    name = "pytorch"
    formats: tuple[str, ...] = (TORCH_EXPORT, TORCHSCRIPT, TORCH_PICKLE)
    folder_formats: tuple[str, ...] = (TORCH_STATE_DICT,)

    def detect(self, path: Path, head: bytes) -> str | None:
        return torch_format(path, head)

    def detect_folder(self, folder: Path) -> str | None:
        return TORCH_STATE_DICT if is_state_dict_folder(folder) else None

    def inspect(self, path: Path, fmt: str, options: InspectOptions) -> InspectedArtifact:
        torch = _import_torch(fmt)
        if fmt == TORCH_STATE_DICT:
            signature, params = _inspect_state_dict(path, options.signature)
            trusted = False
        else:
            signature, params, trusted = _inspect_file(path, fmt, options)
        return InspectedArtifact(
            format=fmt,
            framework="torch",
            framework_version=torch.__version__,
            signature=signature,
            params=params,
            trusted=trusted,
        )

    def load(self, path: Path, fmt: str, signature: Signature, options: LoadOptions) -> TorchModel:
        _import_torch(fmt)
        use_threads(options.threads)
        if fmt == TORCH_STATE_DICT:
            module = build_module(path, read_description(path))
            return TorchModel(module, signature, _input_dtypes(module, signature))
        module = load_torch_file(path, options.trusted, options.allow_pickle)
        return TorchModel(module, signature)


def load_torch_file(path: Path, trusted: bool, allow_pickle: bool) -> Any:
    """The callable module in a PyTorch file (an exported program's ``module()``, a
    TorchScript module or an unpickled ``nn.Module``), in eval mode. Files that run code
    when loaded need ``trusted`` and ``allow_pickle``; without them nothing is unpickled.
    Other runtimes (e.g. MLflow's pytorch flavor) load PyTorch files through this."""
    with path.open("rb") as stream:
        fmt = torch_format(path, stream.read(64))
    if fmt is None:
        raise InvalidInputError("the file is not a PyTorch exported program, TorchScript or pickle")
    torch = _import_torch(fmt)
    reason = _needs_trust(path, fmt)
    if reason is not None and not (trusted and allow_pickle):
        raise ForbiddenError(
            f"this version is {_WHAT[fmt]} that is loaded only when trusted ({reason}), and "
            + (
                "it is not a trusted version"
                if allow_pickle
                else "the server does not allow that (start it with --allow-pickle to serve "
                "trusted versions)"
            )
        )
    try:
        if fmt == TORCH_EXPORT:
            return _load_program(path).module()
        if fmt == TORCHSCRIPT:
            with warnings.catch_warnings():  # deprecated in favour of torch.export; still served
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(str(path), map_location="cpu")
        else:
            module = torch.load(path, map_location="cpu", weights_only=False)
    except InvalidInputError:
        raise
    except Exception as exc:  # torch raises many types for broken files
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise InvalidInputError(f"{_WHAT[fmt]} could not be loaded: {reason}") from None
    if not isinstance(module, torch.nn.Module):
        raise InvalidInputError(
            f"the file holds an object of type {type(module).__name__}, not a torch.nn.Module; "
            "a state dict "
            "is served as a folder with model.safetensors and an architecture.json"
        )
    return module.eval()


def _needs_trust(path: Path, fmt: str) -> str | None:
    """Why loading the file could run code (None: it cannot)."""
    if fmt == TORCH_EXPORT:
        reason = unsafe_reason(path)
        return f"loading it could run code: {reason}" if reason else None
    return "loading it runs code"


def _check_trusted_upload(fmt: str, reason: str, options: InspectOptions) -> None:
    what = _WHAT[fmt]
    if not options.allow_pickle:
        raise InvalidInputError(
            f"this file is {what} and {reason}, so ModelPort refuses it: {SAFE_FORMS}; "
            "an admin can push it as a trusted version to a server started with --allow-pickle"
        )
    if not options.uploader_is_admin:
        raise ForbiddenError(
            f"this file is {what} and {reason}: such uploads are accepted only from admin "
            f"keys; ask an admin, or {SAFE_FORMS}"
        )


def _load_program(path: Path) -> Any:
    import torch

    try:
        return torch.export.load(path)
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise InvalidInputError(f"the exported program could not be loaded: {reason}") from None


def _inspect_file(
    path: Path, fmt: str, options: InspectOptions
) -> tuple[Signature, dict[str, Any], bool]:
    """Signature, params and trust of a single-file upload (refused when it needs trust
    the uploader or the server cannot give)."""
    reason = _needs_trust(path, fmt)
    trusted = reason is not None
    if reason is not None:
        _check_trusted_upload(fmt, reason, options)
    if fmt == TORCH_EXPORT:
        program = _load_program(path)
        actual = exported_signature(program)
        if program.example_inputs is not None:  # it must run on what it was exported with
            call_module(program.module(), list(program.example_inputs[0]))
        params = {"graph_nodes": len(program.graph.nodes)}
        return signature_for_upload(options.signature, actual), params, trusted
    given = options.signature
    if given is None or not given.inputs:
        raise InvalidInputError(
            f"{_WHAT[fmt]} does not record its input shapes: push it with a signature that "
            'names its inputs, e.g. the form field signature={"inputs": [{"name": "input", '
            '"datatype": "FP32", "shape": [-1, 4]}]}'
        )
    check_inputs(given.inputs)
    module = load_torch_file(path, trusted, options.allow_pickle)
    dtypes = {spec.name: torch_dtype_of(spec.datatype) for spec in given.inputs}
    actual = observed_outputs(module, given.inputs, dtypes)
    signature = check_given_signature(given, actual) if given.outputs else actual
    return signature, {"module": type(module).__name__}, trusted


def _inspect_state_dict(folder: Path, given: Signature | None) -> tuple[Signature, dict[str, Any]]:
    description = read_description(folder)
    module = build_module(folder, description)  # checks the name, the args and the weights
    inputs = model_inputs(description)
    signature = Signature(inputs=inputs, outputs=[])
    actual = observed_outputs(module, inputs, _input_dtypes(module, signature))
    if description.outputs:
        actual = check_given_signature(
            Signature(inputs=inputs, outputs=description.outputs), actual
        )
    params = {
        "architecture": description.architecture,
        "parameters": sum(tensor.numel() for tensor in module.parameters()),
    }
    return signature_for_upload(given, actual), params


def _input_dtypes(module: Any, signature: Signature) -> dict[str, Any]:
    """Float inputs take the dtype of the module's float weights (e.g. float16 or
    bfloat16 weights served through FP32 inputs)."""
    floating = next((p.dtype for p in module.parameters() if p.dtype.is_floating_point), None)
    if floating is None:
        return {}
    return {
        spec.name: floating
        for spec in signature.inputs
        if torch_dtype_of(spec.datatype).is_floating_point
    }


def _import_torch(fmt: str) -> Any:
    try:
        import torch
    except ImportError:
        raise missing_framework("torch", "torch", _WHAT.get(fmt, "a PyTorch model")) from None
    return torch
