"""Verified keys are cached for a few seconds; a key in use is looked up again shortly
before its entry expires, so that a busy key never misses the cache (under load a miss
sent every request of that moment down the slow path together)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from modelport.access import keys as key_module
from modelport.access.keys import CACHE_TTL_SECONDS, REFRESH_AHEAD_SECONDS, KeyStore
from modelport.storage.db import create_db_engine, create_session_factory, run_migrations
from modelport.types import Role


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[KeyStore, _Clock]]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    run_migrations(engine)
    sessions: sessionmaker[Session] = create_session_factory(engine)
    clock = _Clock()
    monkeypatch.setattr(key_module.time, "monotonic", clock)
    yield KeyStore(sessions), clock
    engine.dispose()


def test_a_key_in_use_is_refreshed_before_its_entry_expires(store: tuple[KeyStore, _Clock]) -> None:
    keys, clock = store
    created = keys.create("app", Role.PREDICT)
    assert keys.verify(created.key).name == "app"
    assert keys.cached(created.key)[0]
    assert not keys.needs_refresh(created.key)  # fresh
    clock.now += CACHE_TTL_SECONDS - REFRESH_AHEAD_SECONDS / 2
    assert keys.needs_refresh(created.key)
    assert not keys.needs_refresh(created.key)  # once: one refresh at a time
    keys.revoke(created.id)  # what the refresh must find (revoking clears this cache too)
    assert keys.refresh(created.key) is None
    hit, principal = keys.cached(created.key)
    assert hit and principal is None  # cached as revoked, for a full TTL
    clock.now += CACHE_TTL_SECONDS - REFRESH_AHEAD_SECONDS - 0.01
    assert keys.cached(created.key)[0]
    assert not keys.needs_refresh(created.key)
    clock.now += 0.02
    assert keys.needs_refresh(created.key)  # due again: refreshes never pile up


def test_an_unknown_key_needs_no_refresh(store: tuple[KeyStore, _Clock]) -> None:
    keys, _ = store
    assert not keys.needs_refresh("mp_not-a-key")
