"""API keys: random secrets shown once, stored as a sha256 hash with a visible prefix.

Keys carry 256 bits of randomness, so a plain sha256 is a sound way to store them (there
is nothing to brute-force); lookups are by hash, and verified principals are cached in
memory for a few seconds to keep the hot path free of database round trips.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from modelport.errors import NotFoundError, UnauthenticatedError
from modelport.storage.tables import ApiKeyRow, utcnow
from modelport.types import CreatedKey, KeyInfo, Principal, Role

KEY_PREFIX = "mp_"
CACHE_TTL_SECONDS = 5.0
CACHE_MAX_ENTRIES = 4096
REFRESH_AHEAD_SECONDS = 1.0
"""A cached key in use is looked up again this long before its entry expires, while
requests keep using the entry: a busy key never misses the cache."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _key_info(row: ApiKeyRow) -> KeyInfo:
    return KeyInfo(
        id=row.id,
        prefix=row.prefix,
        name=row.name,
        role=Role(row.role),
        created_by=row.created_by,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        rate_limit=row.rate_limit,
    )


class KeyStore:
    """Creates, lists, revokes and verifies API keys."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._cache: OrderedDict[str, tuple[float, Principal | None]] = OrderedDict()
        self._lock = threading.Lock()
        self._refreshing: set[str] = set()

    def create(
        self,
        name: str,
        role: Role,
        created_by: str | None = None,
        key: str | None = None,
        rate_limit: float | None = None,
    ) -> CreatedKey:
        secret = key or generate_key()
        with self._sessions.begin() as session:
            row = ApiKeyRow(
                prefix=secret[:11],
                key_hash=hash_key(secret),
                name=name,
                role=role.value,
                created_by=created_by,
                rate_limit=rate_limit,
            )
            session.add(row)
            session.flush()
            info = _key_info(row)
        return CreatedKey(**info.model_dump(), key=secret)

    def list(self) -> list[KeyInfo]:
        with self._sessions.begin() as session:
            return [_key_info(row) for row in session.scalars(select(ApiKeyRow).order_by("id"))]

    def revoke(self, key_id: int) -> KeyInfo:
        with self._sessions.begin() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFoundError(f"key {key_id} does not exist")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            info = _key_info(row)
        with self._lock:
            self._cache.clear()
        return info

    def has_active_admin(self) -> bool:
        with self._sessions.begin() as session:
            query = select(ApiKeyRow.id).where(
                ApiKeyRow.role == Role.ADMIN.value, ApiKeyRow.revoked_at.is_(None)
            )
            return session.scalar(query.limit(1)) is not None

    def ensure(self, key: str, name: str, role: Role) -> None:
        """Register ``key`` unless it is already known (used for the bootstrap admin key)."""
        with self._sessions.begin() as session:
            found = session.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_key(key)))
            if found is not None:
                found.revoked_at = None
                found.role = role.value
                return
        self.create(name, role, created_by="bootstrap", key=key)

    def cached(self, key: str) -> tuple[bool, Principal | None]:
        """A cache lookup: ``(hit, principal)``; a hit with None means a known bad key."""
        entry = self._cache.get(key)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def needs_refresh(self, key: str) -> bool:
        """True once for a cached entry in its last ``REFRESH_AHEAD_SECONDS``: the caller
        then runs ``refresh`` (off the event loop) while the entry still answers."""
        entry = self._cache.get(key)
        if entry is None or entry[0] - time.monotonic() > REFRESH_AHEAD_SECONDS:
            return False
        if key in self._refreshing:
            return False
        self._refreshing.add(key)
        return True

    def refresh(self, key: str) -> Principal | None:
        """Look ``key`` up again and cache what the database says now (None: unknown or
        revoked)."""
        try:
            principal = self._lookup(key)
            self._remember(key, principal)
            return principal
        finally:
            self._refreshing.discard(key)

    def verify(self, key: str) -> Principal:
        """The principal behind ``key``; raises for unknown or revoked keys."""
        hit, principal = self.cached(key)
        if not hit:
            principal = self._lookup(key)
            self._remember(key, principal)
        if principal is None:
            raise UnauthenticatedError("the API key is not valid or was revoked")
        return principal

    def _remember(self, key: str, principal: Principal | None) -> None:
        with self._lock:
            self._cache[key] = (time.monotonic() + CACHE_TTL_SECONDS, principal)
            self._cache.move_to_end(key)
            while len(self._cache) > CACHE_MAX_ENTRIES:
                self._cache.popitem(last=False)

    def _lookup(self, key: str) -> Principal | None:
        with self._sessions.begin() as session:
            row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_key(key)))
            if row is None or row.revoked_at is not None:
                return None
            return Principal(
                key_id=row.id, name=row.name, role=Role(row.role), rate_limit=row.rate_limit
            )
