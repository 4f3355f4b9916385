"""Recognise the built-in formats from an artifact's first bytes, never from its name."""

from __future__ import annotations

import zipfile
from enum import StrEnum
from pathlib import Path

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
    XGBOOST_JSON = "xgboost-json"
    XGBOOST_UBJ = "xgboost-ubj"
    LIGHTGBM_TEXT = "lightgbm-text"


def sklearn_format(path: Path, head: bytes) -> ArtifactFormat | None:
    if head.startswith(b"PK\x03\x04") and _is_skops_archive(path):
        return ArtifactFormat.SKOPS
    if head[:1] == b"\x80" or head.startswith(_COMPRESSED_JOBLIB_MAGIC) or head[:1] == b"x":
        return ArtifactFormat.PICKLE
    return None


def is_onnx(head: bytes) -> bool:
    return head[:1] == _ONNX_IR_VERSION_TAG


def xgboost_format(head: bytes) -> ArtifactFormat | None:
    """XGBoost's own formats: a JSON object whose first key is "learner", or the same
    document in UBJSON (``{``, then the key's length and "learner")."""
    if head.lstrip().startswith(b'{"learner"'):
        return ArtifactFormat.XGBOOST_JSON
    if head.startswith(b"{") and head[1:24].find(b"learner") > 0:
        return ArtifactFormat.XGBOOST_UBJ
    return None


def is_lightgbm_text(head: bytes) -> bool:
    return head.startswith(b"tree\nversion=")


def _is_skops_archive(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return "schema.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
