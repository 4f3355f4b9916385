"""Recognise an artifact's format from its bytes, never from its name."""

from __future__ import annotations

import zipfile
from enum import StrEnum
from pathlib import Path

from modelport.errors import InvalidInputError

_COMPRESSED_JOBLIB_MAGIC = (
    b"\x1f\x8b",  # gzip
    b"BZh",  # bz2
    b"\xfd7zXZ\x00",  # xz
    b"\x5d\x00\x00",  # lzma
    b"\x04\x22\x4d\x18",  # lz4
    b"ZF",  # joblib's own zlib header
)


# An ONNX file is a ModelProto whose first field is ir_version (field 1, varint): 0x08.
_ONNX_IR_VERSION_TAG = b"\x08"


class ArtifactFormat(StrEnum):
    SKOPS = "skops"
    PICKLE = "pickle"
    ONNX = "onnx"


def detect_format(path: Path) -> ArtifactFormat:
    """Return the artifact's format, reading only its header (nothing is deserialised)."""
    with path.open("rb") as stream:
        head = stream.read(16)
    if head.startswith(b"PK\x03\x04") and _is_skops_archive(path):
        return ArtifactFormat.SKOPS
    if head[:1] == b"\x80" or head.startswith(_COMPRESSED_JOBLIB_MAGIC) or head[:1] == b"x":
        return ArtifactFormat.PICKLE
    if head[:1] == _ONNX_IR_VERSION_TAG:
        return ArtifactFormat.ONNX
    raise InvalidInputError(
        "unrecognised model file: ModelPort accepts scikit-learn models saved with skops "
        "(skops.io.dump(model, 'model.skops')) and ONNX models (.onnx)"
    )


def _is_skops_archive(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return "schema.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
