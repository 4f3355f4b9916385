"""Archives of model folders: hostile entries are refused and nothing lands outside the
destination; a folder packed by the CLI comes back as it was."""

from __future__ import annotations

import io
import random
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from modelport.client.packing import pack_folder
from modelport.errors import InvalidInputError
from modelport.runtimes.archives import ArchiveLimits, extract_archive, is_archive, unpack


def _tar(path: Path, entries: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> Path:
    data = data or {}
    with tarfile.open(path, "w:gz") as bundle:
        for info in entries:
            content = data.get(info.name)
            if content is not None:
                info.size = len(content)
            bundle.addfile(info, io.BytesIO(content) if content is not None else None)
    return path


def _file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def _special(name: str, kind: bytes, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _zip(path: Path, entries: dict[str, bytes], modes: dict[str, int] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for name, content in entries.items():
            info = zipfile.ZipInfo(name)
            if modes and name in modes:
                info.external_attr = modes[name] << 16
            bundle.writestr(info, content)
    return path


def _refused(
    archive: Path, tmp_path: Path, match: str, limits: ArchiveLimits | None = None
) -> None:
    destination = tmp_path / "out"
    destination.mkdir()
    with pytest.raises(InvalidInputError, match=match):
        if limits is None:
            extract_archive(archive, destination)
        else:
            extract_archive(archive, destination, limits)
    assert not (tmp_path / "escaped").exists()


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("../escaped", "points outside"),
        ("model/../../escaped", "points outside"),
        ("/tmp/absolute-escape", "absolute path"),
        ("model\\..\\escaped", "unsafe name"),
    ],
)
def test_traversal_names_are_refused_in_tar_and_zip(tmp_path: Path, name: str, match: str) -> None:
    (tmp_path / "tar").mkdir()
    tar = _tar(tmp_path / "a.tar.gz", [_file(name)], {name: b"payload"})
    _refused(tar, tmp_path / "tar", match)
    (tmp_path / "zip").mkdir()
    zipped = _zip(tmp_path / "a.zip", {name: b"payload"})
    _refused(zipped, tmp_path / "zip", match)
    assert not Path("/tmp/absolute-escape").exists()


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        (_special("model/link", tarfile.SYMTYPE, "/etc/passwd"), "is a link"),
        (_special("model/hard", tarfile.LNKTYPE, "/etc/passwd"), "is a link"),
        (_special("model/tty", tarfile.CHRTYPE), "special file"),
        (_special("model/disk", tarfile.BLKTYPE), "special file"),
        (_special("model/pipe", tarfile.FIFOTYPE), "special file"),
    ],
)
def test_links_and_special_files_are_refused(
    tmp_path: Path, entry: tarfile.TarInfo, match: str
) -> None:
    archive = _tar(
        tmp_path / "a.tar.gz", [_file("model/config.json"), entry], {"model/config.json": b"{}"}
    )
    _refused(archive, tmp_path, match)


def test_a_zip_symlink_is_refused(tmp_path: Path) -> None:
    archive = _zip(
        tmp_path / "a.zip",
        {"model/config.json": b"{}", "model/weights": b"/etc/passwd"},
        modes={"model/weights": stat.S_IFLNK | 0o777},
    )
    _refused(archive, tmp_path, "is a link")


def test_a_link_then_a_file_through_it_cannot_escape(tmp_path: Path) -> None:
    """The classic: a symlink to outside, then a file written "inside" the link."""
    archive = _tar(
        tmp_path / "a.tar.gz",
        [_special("model/out", tarfile.SYMTYPE, str(tmp_path)), _file("model/out/escaped")],
        {"model/out/escaped": b"x"},
    )
    _refused(archive, tmp_path, "is a link")


def test_100k_entries_are_refused_early(tmp_path: Path) -> None:
    entries = [_file(f"model/f{i}") for i in range(100_000)]
    tar = _tar(tmp_path / "many.tar.gz", entries)
    _refused(tar, tmp_path, "more than 10000 entries")
    assert sum(1 for _ in (tmp_path / "out").rglob("*")) <= 10_001
    with zipfile.ZipFile(tmp_path / "many.zip", "w") as bundle:
        for i in range(100_000):
            bundle.writestr(f"model/f{i}", b"")
    (tmp_path / "z").mkdir()
    with pytest.raises(InvalidInputError, match="more than 10000 entries"):
        extract_archive(tmp_path / "many.zip", tmp_path / "z")
    assert list((tmp_path / "z").iterdir()) == []  # the zip's directory is read first


def test_a_compression_bomb_stops_at_the_byte_limit(tmp_path: Path) -> None:
    zeros = b"\0" * (8 * 1024 * 1024)
    archive = _tar(tmp_path / "bomb.tar.gz", [_file("model/zeros")], {"model/zeros": zeros})
    assert archive.stat().st_size < 100_000
    limits = ArchiveLimits(max_ratio=20, ratio_floor=1024 * 1024)
    _refused(archive, tmp_path, "unpacks to more than", limits)
    written = sum(p.stat().st_size for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written <= 1024 * 1024 + 1024 * 1024  # stopped within one chunk of the limit


def test_duplicate_entries_do_not_overwrite(tmp_path: Path) -> None:
    archive = _tar(
        tmp_path / "a.tar.gz",
        [_file("model/config.json"), _file("model/config.json")],
        {"model/config.json": b"{}"},
    )
    _refused(archive, tmp_path, "twice")


def test_garbage_and_empty_archives_are_clear_errors(tmp_path: Path) -> None:
    weights = random.Random(0).randbytes(50_000)  # incompressible
    whole = _tar(tmp_path / "t.tar.gz", [_file("model/a")], {"model/a": weights}).read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    _refused(cut, tmp_path, "cannot be read|cut short")
    empty = tmp_path / "empty.zip"
    zipfile.ZipFile(empty, "w").close()
    (tmp_path / "e").mkdir()
    with pytest.raises(InvalidInputError, match="empty"):
        extract_archive(empty, tmp_path / "e")


def test_is_archive_tells_archives_from_other_files(tmp_path: Path) -> None:
    tar = _tar(tmp_path / "a.tar.gz", [_file("a")], {"a": b"x"})
    zipped = _zip(tmp_path / "a.zip", {"a": b"x"})
    gzipped_pickle = tmp_path / "model.joblib"
    import gzip
    import pickle

    gzipped_pickle.write_bytes(gzip.compress(pickle.dumps({"a": 1})))
    for path, expected in ((tar, True), (zipped, True), (gzipped_pickle, False)):
        with path.open("rb") as stream:
            assert is_archive(path, stream.read(64)) is expected


def test_a_packed_folder_unpacks_to_the_same_files(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "1_Pooling" / "config.json").write_text('{"mode": "mean"}')
    (folder / "weights.bin").write_bytes(bytes(range(256)) * 100)
    archive = pack_folder(folder, tmp_path / "model.tar.gz")
    unpacked = unpack(archive, tmp_path / "unpacked")
    assert unpacked == tmp_path / "unpacked" / "model.tar.gz"
    for original in folder.rglob("*"):
        if original.is_file():
            copy = unpacked / original.relative_to(folder)
            assert copy.read_bytes() == original.read_bytes()
    assert unpack(archive, tmp_path / "unpacked") == unpacked  # extracted once
    assert not list((tmp_path / "unpacked").glob(".unpack-*"))


def test_packing_refuses_a_link_out_of_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "secret").write_text("x")
    (folder / "leak").symlink_to(tmp_path / "secret")
    with pytest.raises(InvalidInputError, match="links outside"):
        pack_folder(folder, tmp_path / "model.tar.gz")


def _damaged_zip(path: Path, damage: str) -> Path:
    """A one-file zip whose deflate data is garbled, whose entry claims to be encrypted,
    or whose entry names a compression method zipfile does not know."""
    content = bytes(range(256)) * 64
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("model/config.json", content)
    data = bytearray(path.read_bytes())
    central = data.rfind(b"PK\x01\x02")
    if damage == "garbled":
        start = 30 + len("model/config.json")
        data[start : start + 16] = bytes(16)
        data[start] = 0x05  # a dynamic-Huffman block with nonsense code lengths
    elif damage == "encrypted":
        data[6] |= 1  # general purpose flag bit 0, local header and central directory
        data[central + 8] |= 1
    else:
        data[8] = data[central + 10] = 99  # an unknown compression method
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        ("garbled", "cannot be read"),
        ("encrypted", "encrypted"),
        ("unknown-method", "cannot be read"),
    ],
)
def test_damaged_zip_entries_are_clear_errors(tmp_path: Path, damage: str, match: str) -> None:
    # zlib.error, RuntimeError and NotImplementedError escaped as 500s before the fix.
    _refused(_damaged_zip(tmp_path / "damaged.zip", damage), tmp_path, match)
