"""Registry behaviour on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelport.errors import ConflictError, InvalidInputError, NotFoundError
from modelport.registry import Registry
from modelport.registry.references import Reference, parse_reference
from modelport.runtimes.base import InspectedArtifact
from modelport.storage.artifacts import ArtifactStore
from modelport.storage.db import create_db_engine, create_session_factory, run_migrations
from modelport.types import Datatype, Signature, TensorSpec

SIGNATURE = Signature(
    inputs=[TensorSpec(name="features", datatype=Datatype.FP64, shape=[-1, 3])],
    outputs=[TensorSpec(name="predict", datatype=Datatype.FP64, shape=[-1])],
)
INSPECTED = InspectedArtifact("skops", "sklearn", "1.0", SIGNATURE)


@pytest.fixture(params=["sqlite", "postgresql"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'registry.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = create_db_engine(url)
    run_migrations(engine)
    yield Registry(create_session_factory(engine), ArtifactStore(tmp_path / "artifacts"))
    engine.dispose()


def _push(registry: Registry, name: str, content: bytes) -> int:
    blob = registry.artifacts.put_bytes(content)
    return registry.create_version(name, blob, INSPECTED, created_by="test").version


def test_versions_are_numbered_per_model(registry: Registry) -> None:
    assert [_push(registry, "a", b"1"), _push(registry, "a", b"2")] == [1, 2]
    assert _push(registry, "b", b"3") == 1
    assert [v.version for v in registry.list_versions("a")] == [1, 2]
    assert registry.get_model("a").latest_version == 2


def test_concurrent_version_creation_gets_distinct_numbers(registry: Registry) -> None:
    registry.create_model("busy")
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        numbers = list(pool.map(lambda i: _push(registry, "busy", f"{i}".encode()), range(20)))
    assert sorted(numbers) == list(range(1, 21))


def test_reference_resolution(registry: Registry) -> None:
    for content in (b"one", b"two", b"three"):
        _push(registry, "m", content)
    assert registry.resolve(Reference("m")).version == 3  # latest without production
    registry.set_alias("m", "production", 2)
    assert registry.resolve(Reference("m")).version == 2  # production wins
    assert registry.resolve(parse_reference("m@1")).version == 1
    assert registry.resolve(parse_reference("m/versions/3")).version == 3
    registry.set_alias("m", "staging", 3)
    assert registry.resolve(parse_reference("m@staging")).version == 3
    with pytest.raises(NotFoundError):
        registry.resolve(parse_reference("m@canary"))
    with pytest.raises(NotFoundError):
        registry.resolve(parse_reference("m@9"))


def test_alias_moves_are_recorded(registry: Registry) -> None:
    for content in (b"x", b"y"):
        _push(registry, "m", content)
    registry.set_alias("m", "production", 1, by="alice")
    registry.set_alias("m", "production", 2, by="bob")
    registry.remove_alias("m", "production", by="carol")
    moves = registry.alias_history("m")
    assert [(m.from_version, m.version, m.moved_by) for m in moves] == [
        (None, 1, "alice"),
        (1, 2, "bob"),
        (2, None, "carol"),
    ]
    assert registry.get_model("m").aliases == {}


def test_alias_to_missing_version_and_bad_names(registry: Registry) -> None:
    _push(registry, "m", b"x")
    with pytest.raises(NotFoundError):
        registry.set_alias("m", "production", 5)
    for bad in ("1", "a/b", "..", "", "x" * 200):
        with pytest.raises(InvalidInputError):
            registry.set_alias("m", bad, 1)
    for bad in ("a/b", "../etc", "", "a b", "x" * 200):
        with pytest.raises(InvalidInputError):
            registry.create_model(bad)


def test_model_crud_and_delete_removes_unshared_blobs(registry: Registry) -> None:
    registry.create_model("m", description="first", tags={"team": "a"})
    with pytest.raises(ConflictError):
        registry.create_model("m")
    assert registry.update_model("m", description="second").description == "second"
    _push(registry, "m", b"only-m")
    _push(registry, "other", b"shared")
    _push(registry, "m", b"shared")
    only_m = registry.list_versions("m")[0].artifact_sha256
    shared = registry.list_versions("other")[0].artifact_sha256
    registry.delete_model("m")
    with pytest.raises(NotFoundError):
        registry.get_model("m")
    assert not registry.artifacts.exists(only_m)
    assert registry.artifacts.exists(shared)  # still used by "other"
