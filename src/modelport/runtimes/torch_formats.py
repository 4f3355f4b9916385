"""Recognise PyTorch files from their content alone, without importing torch, so that a
server without torch still knows what it was sent and can say which extra to install.

``torch.export.save``, ``torch.jit.save`` and ``torch.save`` all write zip archives whose
entries live under one top folder; the entries inside tell them apart:

- an exported program (``.pt2``) has ``<top>/archive_format`` (it reads ``pt2``);
- a TorchScript archive has ``<top>/data.pkl`` with ``<top>/constants.pkl`` or compiled
  code under ``<top>/code/``;
- any other ``torch.save`` file has ``<top>/data.pkl`` alone (a pickle of whatever was
  saved: a whole model, a state dict...).

``torch.save`` before PyTorch 1.6 (or with ``_use_new_zipfile_serialization=False``) wrote
a plain pickle stream that starts with torch's magic number; it is a torch pickle too.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

TORCH_EXPORT = "torch-export"
TORCHSCRIPT = "torchscript"
TORCH_PICKLE = "torch-pickle"
TORCH_STATE_DICT = "torch-state-dict"

_ZIP_MAGIC = b"PK\x03\x04"
# torch.serialization.MAGIC_NUMBER as pickle writes a 10-byte long (opcode LONG1, length 10).
_LEGACY_MAGIC = b"\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
# torch.export.save in PyTorch 2.5-2.7 wrote this file at the top of a flat zip.
_OLD_EXPORT_ENTRY = "serialized_exported_program.json"


def torch_format(path: Path, head: bytes) -> str | None:
    """The PyTorch format of the file whose first bytes are ``head``, if it is one."""
    if head.startswith(_ZIP_MAGIC):
        names = zip_entries(path)
        return zip_format(names) if names is not None else None
    if head[:1] == b"\x80" and 0 < head.find(_LEGACY_MAGIC) <= 16:
        return TORCH_PICKLE
    return None


def zip_entries(path: Path) -> list[str] | None:
    """The entry names of a zip archive (read from its central directory only)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return None


def archive_root(names: list[str]) -> str | None:
    """The one top folder every entry lives in (``torch.save`` and friends write one)."""
    if not names or any("/" not in name for name in names):
        return None
    roots = {name.split("/", 1)[0] for name in names}
    return roots.pop() if len(roots) == 1 else None


def zip_format(names: list[str]) -> str | None:
    if _OLD_EXPORT_ENTRY in names:
        return TORCH_EXPORT
    root = archive_root(names)
    if root is None:
        return None
    inside = {name[len(root) + 1 :] for name in names}
    if "archive_format" in inside:
        return TORCH_EXPORT
    if "data.pkl" not in inside:
        return None
    if "constants.pkl" in inside or any(name.startswith("code/") for name in inside):
        return TORCHSCRIPT
    return TORCH_PICKLE


def is_state_dict_folder(folder: Path) -> bool:
    """A folder of weights (``model.safetensors``) for a registered architecture
    (``architecture.json``)."""
    return (folder / "architecture.json").is_file() and (folder / "model.safetensors").is_file()
