"""Model folders travel as archives (``.zip``, ``.tar``, ``.tar.gz``/``.tgz``, bz2, xz).

Extraction trusts nothing in the archive: every name is checked (no absolute paths, no
``..``, no backslashes or NUL), only regular files and folders are written (symlinks,
hard links, devices and FIFOs are refused), entries are counted as they are read and the
bytes actually written are counted against a limit (headers may lie). Files are created
with ``O_EXCL | O_NOFOLLOW`` in folders this code made itself, so nothing is written
outside the destination and nothing is overwritten.
"""

from __future__ import annotations

import contextlib
import lzma
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from modelport.errors import InvalidInputError

_CHUNK = 1024 * 1024
_MAX_DEPTH = 32
_MAX_NAME = 255
_READ_ERRORS = (
    zipfile.BadZipFile,
    tarfile.TarError,
    EOFError,
    OSError,
    ValueError,
    zlib.error,  # garbled deflate data in a zip entry
    lzma.LZMAError,
    NotImplementedError,  # a zip compression method zipfile does not implement
)


@dataclass(frozen=True)
class ArchiveLimits:
    max_entries: int = 10_000
    max_total_bytes: int = 16 * 1024**3
    max_ratio: int = 200
    """Unpacked bytes per archive byte (model weights hardly compress; a bomb does)..."""
    ratio_floor: int = 64 * 1024**2
    """...counted only beyond this many unpacked bytes (small text files compress well)."""

    def byte_limit(self, archive_size: int) -> int:
        return min(self.max_total_bytes, max(self.ratio_floor, self.max_ratio * archive_size))


DEFAULT_LIMITS = ArchiveLimits()


def is_archive(path: Path, head: bytes) -> bool:
    """Whether ``path`` is a zip or tar archive (compressed or not)."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return zipfile.is_zipfile(path)
    try:
        return tarfile.is_tarfile(path)
    except (OSError, EOFError, ValueError):
        return False


def extract_archive(
    archive: Path, destination: Path, limits: ArchiveLimits = DEFAULT_LIMITS
) -> Path:
    """Extract ``archive`` into the empty folder ``destination`` and return the model
    folder: ``destination`` itself, or its only entry when that is a folder (an archive of
    ``model/`` as ``tar czf model.tgz model``)."""
    with archive.open("rb") as stream:
        head = stream.read(8)
    writer = _Writer(destination, limits.max_entries, limits.byte_limit(archive.stat().st_size))
    try:
        if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            _extract_zip(archive, writer)
        else:
            _extract_tar(archive, writer)
    except _READ_ERRORS as exc:
        raise InvalidInputError(f"the archive cannot be read: {exc}") from None
    if writer.entries == 0:
        raise InvalidInputError("the archive is empty")
    children = list(destination.iterdir())
    if len(children) == 1 and children[0].is_dir():
        return children[0]
    return destination


def unpack(archive: Path, root: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> Path:
    """The extracted model folder of a stored archive: ``root/<archive name>``, extracted
    on first use. Extraction happens in a scratch folder renamed into place, so a folder
    found there is complete, and processes unpacking at once keep the first one's."""
    target = root / archive.name
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=root, prefix=".unpack-"))
    try:
        folder = extract_archive(archive, scratch, limits)
        with contextlib.suppress(OSError):  # another process won the race: use its copy
            os.rename(folder, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not target.is_dir():
        raise InvalidInputError(f"the archive {archive.name[:12]} could not be unpacked")
    return target


class _Writer:
    def __init__(self, destination: Path, max_entries: int, max_bytes: int) -> None:
        self.destination = destination
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.entries = 0
        self.total_bytes = 0

    def count(self, entries: int = 1) -> None:
        self.entries += entries
        if self.entries > self.max_entries:
            raise InvalidInputError(
                f"the archive has more than {self.max_entries} entries; "
                "a model folder needs far fewer"
            )

    def target(self, name: str) -> Path:
        parts = _checked_parts(name)
        return self.destination.joinpath(*parts)

    def folder(self, name: str) -> None:
        self._make_folders(self.target(name))

    def file(self, name: str, source: IO[bytes]) -> int:
        """Write one file; the bytes written."""
        target = self.target(name)
        self._make_folders(target.parent)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        try:
            fd = os.open(target, flags, 0o644)
        except FileExistsError:
            raise InvalidInputError(f"the archive holds '{name}' twice") from None
        written = 0
        with os.fdopen(fd, "wb") as out:
            for chunk in iter(lambda: source.read(_CHUNK), b""):
                self.total_bytes += len(chunk)
                if self.total_bytes > self.max_bytes:
                    raise InvalidInputError(
                        f"the archive unpacks to more than {self.max_bytes} bytes, the "
                        "limit for an archive of its size (model files hardly compress)"
                    )
                out.write(chunk)
                written += len(chunk)
        return written

    def _make_folders(self, folder: Path) -> None:
        relative = folder.relative_to(self.destination)
        current = self.destination
        for part in relative.parts:
            current = current / part
            try:
                current.mkdir(mode=0o755)
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(current).st_mode):
                    raise InvalidInputError(
                        f"the archive uses '{relative}' both as a file and as a folder"
                    ) from None


def _checked_parts(name: str) -> tuple[str, ...]:
    if not name or "\x00" in name or "\\" in name:
        raise InvalidInputError(f"the archive has an entry with an unsafe name: {name!r}")
    path = PurePosixPath(name)
    if path.is_absolute():
        raise InvalidInputError(f"the archive has an entry with an absolute path: '{name}'")
    parts = tuple(part for part in path.parts if part != ".")
    if not parts:
        raise InvalidInputError(f"the archive has an entry with an empty name: {name!r}")
    if ".." in parts:
        raise InvalidInputError(f"the archive has an entry that points outside it: '{name}'")
    if len(parts) > _MAX_DEPTH or any(len(part) > _MAX_NAME for part in parts):
        raise InvalidInputError(f"the archive has an entry whose path is too long: '{name[:80]}'")
    return parts


def _extract_zip(archive: Path, writer: _Writer) -> None:
    with zipfile.ZipFile(archive) as bundle:
        infos = bundle.infolist()
        writer.count(len(infos))  # the central directory lists them all up front
        for info in infos:
            mode = info.external_attr >> 16
            kind = stat.S_IFMT(mode)
            if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
                raise InvalidInputError(
                    f"the archive entry '{info.filename}' is a link or a special file; "
                    "only regular files and folders are accepted"
                )
            if info.is_dir():
                writer.folder(info.filename)
                continue
            if info.flag_bits & 0x1:
                raise InvalidInputError(
                    f"the archive entry '{info.filename}' is encrypted; pack the model "
                    "folder without a password"
                )
            with bundle.open(info) as source:
                writer.file(info.filename, source)


def _extract_tar(archive: Path, writer: _Writer) -> None:
    with tarfile.open(archive, "r:*") as bundle:
        for member in _members(bundle):
            writer.count()
            if member.isdir():
                writer.folder(member.name)
            elif member.isreg():
                source = bundle.extractfile(member)
                assert source is not None  # a regular file always has content
                with source:
                    if writer.file(member.name, source) != member.size:
                        raise InvalidInputError(f"the archive is cut short in '{member.name}'")
            else:
                kind = "a link" if member.issym() or member.islnk() else "a special file"
                raise InvalidInputError(
                    f"the archive entry '{member.name}' is {kind}; "
                    "only regular files and folders are accepted"
                )


def _members(bundle: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    # One header at a time (the entry limit stops a huge archive early).
    while (member := bundle.next()) is not None:
        yield member
