"""Content-addressed artifact store.

A blob lives at ``blobs/<sha[:2]>/<sha>``. Writing goes temp file → fsync → rename →
fsync of the directory, so a blob is either absent or complete; an existing blob is
never overwritten (same name, same content). Readers re-check the hash on load.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from modelport.errors import ArtifactCorruptError, NotFoundError, TooLargeError

CHUNK_SIZE = 1024 * 1024


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int
    path: Path


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobWriter:
    """An in-progress blob: write chunks, then ``commit`` or ``discard``."""

    def __init__(self, store: ArtifactStore, max_bytes: int) -> None:
        self._store = store
        self._max_bytes = max_bytes
        fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix="upload-")
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self.temp_path = Path(name)
        self._hash = hashlib.sha256()
        self.size = 0
        self._closed = False

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._max_bytes:
            raise TooLargeError(
                f"artifact is larger than the upload limit of {self._max_bytes} bytes; "
                "raise MODELPORT_MAX_UPLOAD_BYTES on the server to accept it"
            )
        self._hash.update(chunk)
        self._file.write(chunk)

    def close(self) -> None:
        """Finish writing: the temp file is complete and durable, but not yet visible."""
        if not self._closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._closed = True

    def commit(self) -> StoredBlob:
        """Make the blob durable and visible under its hash."""
        self.close()
        sha = self._hash.hexdigest()
        final = self._store.blob_path(sha)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            self.temp_path.unlink(missing_ok=True)  # same content already stored
        else:
            os.replace(self.temp_path, final)
            _fsync_dir(final.parent)
        return StoredBlob(sha256=sha, size=self.size, path=final)

    def discard(self) -> None:
        if not self._closed:
            self._file.close()
            self._closed = True
        self.temp_path.unlink(missing_ok=True)


class ArtifactStore:
    """Blobs on the local file system, addressed by their sha256."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs_dir = root / "blobs"
        self.tmp_dir = root / "tmp"
        self.shared_arrays_dir = root / "shared-arrays"
        """Derived from blobs: large model arrays as files server processes map together."""
        self.unpacked_dir = root / "unpacked"
        """Derived from blobs: model folders extracted from their archives."""
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temp_files()

    def _remove_stale_temp_files(self) -> None:
        # Left by a crash mid-upload; they were never visible as blobs.
        for stale in self.tmp_dir.glob("upload-*"):
            stale.unlink(missing_ok=True)
        for scratch in self.tmp_dir.glob("unpack-*"):
            shutil.rmtree(scratch, ignore_errors=True)
        if self.unpacked_dir.is_dir():
            for scratch in self.unpacked_dir.glob(".unpack-*"):
                shutil.rmtree(scratch, ignore_errors=True)

    def blob_path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise NotFoundError(f"'{sha256}' is not a sha256 hex digest")
        return self.blobs_dir / sha256[:2] / sha256

    def open_writer(self, max_bytes: int) -> BlobWriter:
        return BlobWriter(self, max_bytes)

    def put_file(self, source: Path, max_bytes: int) -> StoredBlob:
        """Copy a local file into the store."""
        with self.writing(max_bytes) as writer, source.open("rb") as stream:
            for chunk in iter(lambda: stream.read(CHUNK_SIZE), b""):
                writer.write(chunk)
        return writer.result

    def put_bytes(self, data: bytes) -> StoredBlob:
        with self.writing(len(data)) as writer:
            writer.write(data)
        return writer.result

    @contextlib.contextmanager
    def writing(self, max_bytes: int) -> Iterator[_CommittingWriter]:
        """Write a blob; it is committed when the block exits cleanly, discarded otherwise."""
        writer = _CommittingWriter(self, max_bytes)
        try:
            yield writer
        except BaseException:
            writer.discard()
            raise
        writer.result = writer.commit()

    def exists(self, sha256: str) -> bool:
        return self.blob_path(sha256).is_file()

    def verified_path(self, sha256: str) -> Path:
        """The blob's path after checking that its content still hashes to ``sha256``."""
        path = self.blob_path(sha256)
        if not path.is_file():
            raise ArtifactCorruptError(
                f"artifact {sha256[:12]} is missing from the artifact store; re-upload this version"
            )
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(CHUNK_SIZE), b""):
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise ArtifactCorruptError(
                f"artifact {sha256[:12]} failed its sha256 check (the file on disk was "
                "changed or damaged); re-upload this version"
            )
        return path

    async def iter_blob(self, sha256: str) -> AsyncIterator[bytes]:
        path = self.blob_path(sha256)
        if not path.is_file():
            raise NotFoundError(f"artifact {sha256[:12]} is not in the store")
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(CHUNK_SIZE), b""):
                yield chunk

    def delete_unreferenced(self, sha256: str) -> None:
        """Remove a blob that no version references any more (and what derives from it)."""
        self.blob_path(sha256).unlink(missing_ok=True)
        shutil.rmtree(self.shared_arrays_dir / sha256, ignore_errors=True)
        shutil.rmtree(self.unpacked_dir / sha256, ignore_errors=True)


class _CommittingWriter(BlobWriter):
    result: StoredBlob
