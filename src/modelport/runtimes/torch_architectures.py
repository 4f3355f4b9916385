"""Model architectures that state-dict folders name in their ``architecture.json``.

A state dict is only weights; the code that makes the module comes from the server, never
from the upload: a built-in ``mlp``, or what installed packages register under the
``modelport.torch_architectures`` entry-point group, e.g. in their ``pyproject.toml``::

    [project.entry-points."modelport.torch_architectures"]
    resnet-tiny = "my_package.models:build_resnet_tiny"

The entry is a callable that takes the folder's ``args`` as keyword arguments and returns
a ``torch.nn.Module`` whose ``state_dict()`` keys and shapes match the weights.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from modelport.errors import InvalidInputError
from modelport.types import Datatype, TensorSpec

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "modelport.torch_architectures"
MLP = "mlp"
_MAX_LAYERS = 64
_MAX_WIDTH = 1 << 20

Builder = Callable[..., Any]


def build_mlp(in_features: int, out_features: int, hidden: list[int] | None = None) -> Any:
    """``nn.Sequential(Linear(in, h0), ReLU(), ..., Linear(h_last, out))``: train this
    module (or one with the same state-dict keys: ``0.weight``, ``0.bias``, ``2.weight``...)
    and save its ``state_dict()`` with safetensors to serve it as architecture ``mlp``."""
    import torch

    widths = [_width("in_features", in_features), *_hidden(hidden)]
    widths.append(_width("out_features", out_features))
    layers: list[Any] = []
    for index, (width_in, width_out) in enumerate(itertools.pairwise(widths)):
        if index:
            layers.append(torch.nn.ReLU())
        layers.append(torch.nn.Linear(width_in, width_out))
    return torch.nn.Sequential(*layers)


def _width(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= _MAX_WIDTH:
        raise InvalidInputError(f"mlp argument '{name}' must be an integer from 1 to {_MAX_WIDTH}")
    return value


def _hidden(hidden: Any) -> list[int]:
    if hidden is None:
        return []
    if not isinstance(hidden, list) or len(hidden) > _MAX_LAYERS:
        raise InvalidInputError(
            f"mlp argument 'hidden' must be a list of at most {_MAX_LAYERS} layer widths"
        )
    return [_width("hidden", width) for width in hidden]


def default_inputs(name: str, args: dict[str, Any]) -> list[TensorSpec] | None:
    """The inputs of an architecture when ``architecture.json`` names none (known only
    for built-in ones: an ``mlp`` takes FP32 rows of ``in_features`` values)."""
    if name == MLP and isinstance(args.get("in_features"), int):
        return [TensorSpec(name="input", datatype=Datatype.FP32, shape=[-1, args["in_features"]])]
    return None


@functools.cache
def architectures() -> dict[str, Builder]:
    """Every registered architecture: the built-in ones, then plugins' (a plugin cannot
    replace a built-in one)."""
    found: dict[str, Builder] = {MLP: build_mlp}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in found:
            log.warning("torch architecture %s is ignored: the name is taken", entry.name)
            continue
        try:
            builder = entry.load()
        except Exception as exc:  # a broken plugin must not take the server down
            log.warning("torch architecture %s could not be loaded: %s", entry.name, exc)
            continue
        if callable(builder):
            found[entry.name] = builder
    return found


def architecture(name: str) -> Builder:
    """The builder registered as ``name``, or an error that lists the registered ones."""
    builder = architectures().get(name)
    if builder is None:
        raise InvalidInputError(
            f"architecture.json names the architecture '{name[:100]}', which is not "
            f"registered on this server (registered: {', '.join(sorted(architectures()))}); "
            f"install the package that registers it under the entry-point group "
            f"'{ENTRY_POINT_GROUP}'"
        )
    return builder
