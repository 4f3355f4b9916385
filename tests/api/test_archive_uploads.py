"""Archives uploaded to a real server: hostile ones get a clear 400, the server stays up,
and no scratch files are left behind."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import httpx
import pytest

from tests.api.test_management import upload
from tests.servers import ServerProcess


def _tar_gz(path: Path, *entries: tuple[tarfile.TarInfo, bytes | None]) -> Path:
    with tarfile.open(path, "w:gz") as bundle:
        for info, content in entries:
            if content is not None:
                info.size = len(content)
            bundle.addfile(info, io.BytesIO(content) if content is not None else None)
    return path


def _entry(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([(_entry("../escaped"), b"x")], "points outside"),
        ([(_entry("/etc/modelport-escaped"), b"x")], "absolute path"),
        ([(_entry("model/link", tarfile.SYMTYPE, "/etc/passwd"), None)], "is a link"),
        ([(_entry("model/hard", tarfile.LNKTYPE, "/etc/passwd"), None)], "is a link"),
        ([(_entry("model/dev", tarfile.CHRTYPE), None)], "special file"),
        ([(_entry("model/notes.txt"), b"not a model")], "unrecognised model folder"),
    ],
)
def test_hostile_archives_are_refused(
    admin: httpx.Client,
    server: ServerProcess,
    tmp_path: Path,
    entries: list[tuple[tarfile.TarInfo, bytes | None]],
    message: str,
) -> None:
    archive = _tar_gz(tmp_path / "model.tar.gz", *entries)
    response = upload(admin, "from-archive", archive)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]
    assert server.is_healthy()
    assert admin.get("/api/v1/models/from-archive").status_code == 404  # nothing half-made
    assert not list((server.data_dir / "artifacts" / "tmp").glob("unpack-*"))


def test_an_archive_with_100k_entries_is_refused(
    admin: httpx.Client, server: ServerProcess, tmp_path: Path
) -> None:
    archive = _tar_gz(tmp_path / "many.tar.gz", *((_entry(f"m/{i}"), b"") for i in range(100_000)))
    response = upload(admin, "many-entries", archive)
    assert response.status_code == 400, response.text
    assert "more than 10000 entries" in response.json()["error"]["message"]
    assert server.is_healthy()
