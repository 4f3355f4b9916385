"""Decide whether an exported program (``.pt2``) can be loaded without trusting its author.

``torch.export.load`` is not safe on its own (its docstring says so). Reading PyTorch
2.13's loader (``torch/export/pt2_archive/_package.py``, ``torch/_export/serde``), these
parts of an archive can run code:

- weights or constants marked ``use_pickle`` and legacy ``weights/<model>.pt`` files are
  read with ``torch.load(weights_only=False)``; ``opaque_obj_*`` constants with
  ``pickle.loads``; ``custom_obj_*`` constants with TorchScript's unpickler;
- the sample inputs are read with ``torch.load(weights_only=True)``, but on failure it
  falls back to ``weights_only=False``; so does the pre-2.8 archive layout;
- ``guards_code`` strings are compiled into a Python function by ``ep.module()``;
- symbolic-shape strings (``expr_str``) go through ``sympy.sympify``, which evaluates them;
- node targets are resolved as dotted paths below ``torch``, ``_operator`` and ``math``;
- AOTInductor packages (``data/aotinductor/``) hold native libraries that get loaded.

The check below accepts only what ``torch.export.save`` writes for a plain program: known
entries, raw (non-pickled) tensors, sample inputs that load with ``weights_only=True``,
guards and symbolic expressions made of allow-listed tokens, and calls of ATen/prims
operators, a few control-flow operators and the symbolic-shape arithmetic. Anything else
is reported, and the program can then only be served as a trusted version.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from modelport.runtimes.torch_formats import archive_root

_ENTRIES = re.compile(
    r"(archive_format|archive_version|byteorder|version|\.data/version|\.data/serialization_id"
    r"|models/model\.json|data/weights/model_weights_config\.json|data/weights/weight_\d+"
    r"|data/constants/model_constants_config\.json|data/constants/tensor_\d+"
    r"|data/sample_inputs/model\.pt|extra/[^/]+)"
)
_OPERATOR = re.compile(r"torch\.ops\.(aten|prims)\.[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*")
_CONTROL_FLOW = frozenset(
    f"torch.ops.higher_order.{name}"
    for name in ("cond", "while_loop", "map_impl", "scan", "wrap_with_set_grad_enabled")
)
_SYMBOLIC_OPS = frozenset(
    [
        *(
            f"_operator.{name}"
            for name in [
                "eq",
                "ne",
                "le",
                "ge",
                "lt",
                "gt",
                "neg",
                "pos",
                "mul",
                "add",
                "sub",
                "floordiv",
                "mod",
                "pow",
                "truediv",
                "and_",
                "or_",
                "lshift",
                "rshift",
                "getitem",
            ]
        ),
        "math.trunc",
        *(f"torch.sym_{name}" for name in ["not", "int", "float", "ite", "max", "min", "sqrt"]),
    ]
)
# Names a symbolic expression may use (sympy's and torch.utils._sympy.functions').
_SYMPY_NAMES = frozenset(
    [
        "Symbol",
        "Integer",
        "Rational",
        "Float",
        "Max",
        "Min",
        "Mod",
        "Eq",
        "Ne",
        "Lt",
        "Le",
        "Gt",
        "Ge",
        "And",
        "Or",
        "Not",
        "Abs",
        "oo",
        "True",
        "False",
        "positive",
        "integer",
        "real",
        "nonnegative",
        "negative",
        "nonpositive",
        "finite",
        "zero",
        "FloorDiv",
        "ModularIndexing",
        "Where",
        "PythonMod",
        "CleanDiv",
        "CeilToInt",
        "FloorToInt",
        "CeilDiv",
        "IntTrueDiv",
        "FloatTrueDiv",
        "RShift",
        "IsNonOverlappingAndDenseIndicator",
        "TruncToFloat",
        "TruncToInt",
        "RoundToInt",
        "RoundDecimal",
        "ToFloat",
        "Identity",
    ]
)
_SYMBOL = re.compile(r"[a-z]+[0-9]+")
_EXPRESSION_TOKEN = re.compile(
    r"\s+|\d+(?:\.\d+)?|[A-Za-z_][A-Za-z0-9_]*|'[a-z]+[0-9]+'"
    r"|\*\*|//|==|!=|<=|>=|[-+*/%(),<>=&|~]"
)
_GUARD_TOKEN = re.compile(
    r"\s+|\d+|L\['[A-Za-z_][A-Za-z0-9_]*'\]|\[\d+\]|\.(?:size|stride|storage_offset)\(\)"
    r"|and|or|not|//|==|!=|<=|>=|[-+*%()<>]"
)
_MAX_EXPRESSION = 10_000
_EXPLOSIVE = ("**", "<<")
"""Powers and left shifts: evaluated on integers (by sympify or the guards), a few
characters of them take unbounded time and memory, and Python's integer arithmetic holds
the GIL meanwhile (the whole server would freeze). ``PowByNatural``, ``FloatPow`` and
``LShift`` are left out of the allowed names for the same reason."""
_NUMBER_WITH_LETTERS = re.compile(r"(?<![A-Za-z0-9_])\d+(?:\.\d*)?[A-Za-z_]")
"""``1e999999999``, ``0x...``, ``1_000``: Python reads them as one number (an exponent can
make it astronomically large), while the tokens above would see a number and a name."""


def unsafe_reason(path: Path) -> str | None:
    """Why loading the exported program at ``path`` could run code its author chose, or
    None when it holds only what a plain ``torch.export.save`` writes."""
    try:
        with zipfile.ZipFile(path) as archive:
            return _archive_reason(archive)
    except (
        zipfile.BadZipFile,
        OSError,
        ValueError,
        KeyError,
        RecursionError,
        zlib.error,
        RuntimeError,  # an encrypted entry
        NotImplementedError,  # a compression method zipfile does not implement
    ) as exc:
        return f"the archive cannot be read ({type(exc).__name__}: {str(exc)[:200]})"


def _archive_reason(archive: zipfile.ZipFile) -> str | None:
    names = archive.namelist()
    root = archive_root(names)
    if root is None:
        return "it is not in the layout torch.export.save writes (PyTorch 2.8 or later)"
    for name in names:
        if not _ENTRIES.fullmatch(name[len(root) + 1 :]):
            return f"it holds an entry torch.export.save does not write: '{name[:120]}'"

    def read(entry: str) -> bytes:
        return archive.read(f"{root}/{entry}")

    if read("archive_format").strip() != b"pt2":
        return "its archive_format is not 'pt2'"
    for config in (
        "data/weights/model_weights_config.json",
        "data/constants/model_constants_config.json",
    ):
        if f"{root}/{config}" in names and (reason := _payload_reason(json.loads(read(config)))):
            return reason
    if f"{root}/models/model.json" not in names:
        return "it holds no program (models/model.json)"
    if reason := _program_reason(json.loads(read("models/model.json"))):
        return reason
    if f"{root}/data/sample_inputs/model.pt" in names:
        return _sample_inputs_reason(read("data/sample_inputs/model.pt"))
    return None


def _payload_reason(config: Any) -> str | None:
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        return "a weights or constants index is malformed"
    for fqn, meta in entries.items():
        if not isinstance(meta, dict) or meta.get("use_pickle") is not False:
            return f"the tensor '{str(fqn)[:80]}' is stored as a pickle"
        if not re.fullmatch(r"(weight|tensor)_\d+", str(meta.get("path_name"))):
            return f"the constant '{str(fqn)[:80]}' is a Python or TorchScript object"
    return None


def _program_reason(program: Any) -> str | None:
    if not isinstance(program, dict):
        return "models/model.json is not a program"
    for guard in program.get("guards_code") or []:
        if (
            not isinstance(guard, str)
            or any(operator in guard for operator in _EXPLOSIVE)
            or not _only_tokens(guard, _GUARD_TOKEN, _guard_word)
        ):
            return f"it carries guard code that is not a shape check: {str(guard)[:120]!r}"
    for key, value, owner in _walk(program):
        if key == "target" and isinstance(owner, dict) and "inputs" in owner:
            if not _allowed_target(value):
                return f"it calls '{str(value)[:120]}', which is not an ATen/prims operator"
        elif key == "as_operator" and not _allowed_target(value):
            return f"it passes the operator '{str(value)[:120]}'"
        elif key == "as_custom_obj":
            return "it uses a custom (TorchScript) object"
        elif key == "expr_str" and not _is_symbolic_expression(value):
            return f"it carries a symbolic expression that is not arithmetic: {str(value)[:99]!r}"
    return None


def _walk(document: Any) -> Iterator[tuple[str, Any, Any]]:
    """Every (key, value, owning dict) of a JSON document, without recursion."""
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                yield key, value, item
                pending.append(value)
        elif isinstance(item, list):
            pending.extend(item)


def _allowed_target(target: Any) -> bool:
    if not isinstance(target, str) or "__" in target:
        return False
    return bool(_OPERATOR.fullmatch(target)) or target in _CONTROL_FLOW or target in _SYMBOLIC_OPS


def _is_symbolic_expression(text: Any) -> bool:
    if not isinstance(text, str) or len(text) > _MAX_EXPRESSION or "__" in text:
        return False
    if any(operator in text for operator in _EXPLOSIVE) or _NUMBER_WITH_LETTERS.search(text):
        return False
    return _only_tokens(text, _EXPRESSION_TOKEN, _sympy_word)


def _sympy_word(token: str) -> bool:
    return token in _SYMPY_NAMES or bool(_SYMBOL.fullmatch(token))


def _guard_word(token: str) -> bool:
    return True  # the guard grammar has no free-standing names: its words are fixed tokens


def _only_tokens(text: str, tokens: re.Pattern[str], word_allowed: Callable[[str], bool]) -> bool:
    position = 0
    while position < len(text):
        match = tokens.match(text, position)
        if match is None:
            return False
        token = match.group()
        if (token[0].isalpha() or token[0] == "_") and not word_allowed(token):
            return False
        position = match.end()
    return True


def _sample_inputs_reason(content: bytes) -> str | None:
    import torch

    try:
        torch.load(io.BytesIO(content), weights_only=True, map_location="cpu")
    except Exception:  # the loader would retry with weights_only=False: refuse
        return "its sample inputs are a pickle that holds more than tensors"
    return None
