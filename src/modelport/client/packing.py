"""Model folders travel as ``.tar.gz`` archives: the client packs a folder before pushing
it, and the server extracts it with its own safety checks."""

from __future__ import annotations

import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modelport.errors import InvalidInputError


def pack_folder(folder: Path, destination: Path) -> Path:
    """A ``.tar.gz`` of ``folder``'s regular files; symlinks inside it are followed only
    when they stay inside the folder."""
    base = folder.resolve()
    with tarfile.open(destination, "w:gz") as bundle:
        for path in sorted(base.rglob("*")):
            resolved = path.resolve()
            if not resolved.is_relative_to(base):
                raise InvalidInputError(f"'{path}' links outside the folder being pushed")
            if resolved.is_file():
                bundle.add(resolved, arcname=path.relative_to(base).as_posix(), recursive=False)
    return destination


@contextmanager
def packed(folder: Path) -> Iterator[Path]:
    """``folder`` packed into a temporary ``.tar.gz``, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="modelport-push-") as scratch:
        yield pack_folder(folder, Path(scratch) / f"{folder.resolve().name}.tar.gz")
