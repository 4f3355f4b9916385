"""State-dict folders: ``model.safetensors`` (the weights) and ``architecture.json`` (which
registered architecture to build, with which arguments, and optionally its signature)::

    {"architecture": "mlp", "args": {"in_features": 4, "hidden": [16], "out_features": 1},
     "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]}

Nothing in the folder is code: the module is built by the server's own architecture
(see ``torch_architectures``) on the meta device, so absurd arguments allocate nothing;
its state-dict keys and shapes are checked against the safetensors header before any
weight is read, and the weights are then assigned as memory maps of the file (one copy in
the page cache, shared by every process that serves the version).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from modelport.errors import InvalidInputError
from modelport.runtimes.folder_json import read_json
from modelport.runtimes.plugins import missing_framework
from modelport.runtimes.torch_architectures import architecture, default_inputs
from modelport.runtimes.torch_model import check_inputs
from modelport.types import TensorSpec

ARCHITECTURE_FILE = "architecture.json"
WEIGHTS_FILE = "model.safetensors"
_MAX_DESCRIPTION = 1024 * 1024
_LISTED = 8


@dataclass(frozen=True)
class Description:
    """What ``architecture.json`` says."""

    architecture: str
    args: dict[str, Any]
    inputs: list[TensorSpec] | None
    outputs: list[TensorSpec] | None


def read_description(folder: Path) -> Description:
    document = read_json(folder / ARCHITECTURE_FILE, ARCHITECTURE_FILE, _MAX_DESCRIPTION)
    if not isinstance(document, dict) or not isinstance(document.get("architecture"), str):
        raise InvalidInputError(
            f"{ARCHITECTURE_FILE} must be an object naming its architecture, e.g. "
            '{"architecture": "mlp", "args": {"in_features": 4, "out_features": 1}}'
        )
    args = document.get("args", {})
    if not isinstance(args, dict):
        raise InvalidInputError(f"'args' in {ARCHITECTURE_FILE} must be an object")
    return Description(
        architecture=document["architecture"],
        args=args,
        inputs=_specs(document, "inputs"),
        outputs=_specs(document, "outputs"),
    )


def _specs(document: dict[str, Any], key: str) -> list[TensorSpec] | None:
    raw = document.get(key)
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        raise InvalidInputError(f"'{key}' in {ARCHITECTURE_FILE} must be a list of tensors")
    try:
        return [TensorSpec.model_validate(item) for item in raw]
    except ValidationError as exc:
        raise InvalidInputError(f"'{key}' in {ARCHITECTURE_FILE} is not valid: {exc}") from None


def model_inputs(description: Description) -> list[TensorSpec]:
    inputs = description.inputs or default_inputs(description.architecture, description.args)
    if inputs is None:
        raise InvalidInputError(
            f"{ARCHITECTURE_FILE} must list the model's 'inputs' (e.g. "
            '[{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]) for the '
            f"architecture '{description.architecture}'"
        )
    check_inputs(inputs)
    return inputs


def build_module(folder: Path, description: Description) -> Any:
    """The architecture's module with the folder's weights, in eval mode."""
    import torch

    builder = architecture(description.architecture)
    try:
        with torch.device("meta"):
            module = builder(**description.args)
    except InvalidInputError:
        raise
    except Exception as exc:  # the builder's own refusal of its arguments
        raise InvalidInputError(
            f"the architecture '{description.architecture}' refused its args: {exc}"
        ) from None
    if not isinstance(module, torch.nn.Module):
        raise InvalidInputError(
            f"the architecture '{description.architecture}' did not build a torch.nn.Module"
        )
    weights = _load_checked_weights(folder / WEIGHTS_FILE, module.state_dict())
    module.load_state_dict(weights, strict=True, assign=True)
    leftover = [name for name, tensor in _tensors(module) if tensor.is_meta]
    if leftover:
        raise InvalidInputError(
            f"the architecture '{description.architecture}' has tensors the weights do not "
            f"set: {', '.join(leftover[:_LISTED])}"
        )
    return module.eval()


def _tensors(module: Any) -> list[tuple[str, Any]]:
    return [*module.named_parameters(), *module.named_buffers()]


def _load_checked_weights(path: Path, expected: dict[str, Any]) -> dict[str, Any]:
    try:
        from safetensors import SafetensorError, safe_open
    except ImportError:
        raise missing_framework("safetensors", "torch", "a PyTorch state dict") from None

    try:
        with safe_open(str(path), framework="pt") as weights:
            shapes = {key: list(weights.get_slice(key).get_shape()) for key in weights.keys()}  # noqa: SIM118
            _check_weights(shapes, {key: list(value.shape) for key, value in expected.items()})
            return {key: weights.get_tensor(key) for key in shapes}
    except SafetensorError as exc:
        raise InvalidInputError(f"{WEIGHTS_FILE} cannot be read: {exc}") from None


def _check_weights(found: dict[str, list[int]], wanted: dict[str, list[int]]) -> None:
    missing = sorted(set(wanted) - set(found))
    unexpected = sorted(set(found) - set(wanted))
    problems = []
    if missing:
        problems.append(f"missing weights: {', '.join(missing[:_LISTED])}")
    if unexpected:
        problems.append(f"unexpected weights: {', '.join(unexpected[:_LISTED])}")
    for key in sorted(set(found) & set(wanted)):
        if found[key] != wanted[key]:
            problems.append(
                f"'{key}' has shape {found[key]} but the architecture wants {wanted[key]}"
            )
    if problems:
        raise InvalidInputError(
            f"{WEIGHTS_FILE} does not fit the architecture: " + "; ".join(problems[:_LISTED])
        )
