"""First-start duties: the bootstrap admin key and the demo model."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from modelport.access.keys import KeyStore, generate_key
from modelport.config import Settings
from modelport.registry import Registry
from modelport.server.demo import register_demo_model
from modelport.types import Role, VersionInfo

ADMIN_KEY_FILE = "admin.key"


@dataclass
class BootstrapResult:
    new_admin_key: str | None
    """Set only on the start that generated it: the one time it is printed."""
    admin_key_file: Path | None
    demo: VersionInfo | None


def _write_secret(path: Path, secret: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as stream:
        stream.write(secret + "\n")
    os.chmod(path, 0o600)


def ensure_admin_key(settings: Settings, keys: KeyStore) -> tuple[str | None, Path | None]:
    if settings.admin_key is not None:
        keys.ensure(settings.admin_key.get_secret_value(), "bootstrap-admin", Role.ADMIN)
        return None, None
    key_file = settings.data_dir / ADMIN_KEY_FILE
    if keys.has_active_admin():
        return None, key_file if key_file.exists() else None
    secret = generate_key()
    keys.create("bootstrap-admin", Role.ADMIN, created_by="bootstrap", key=secret)
    _write_secret(key_file, secret)
    return secret, key_file


def bootstrap(settings: Settings, registry: Registry, keys: KeyStore) -> BootstrapResult:
    new_key, key_file = ensure_admin_key(settings, keys)
    demo = None
    if settings.demo and not registry.list_models():
        demo = register_demo_model(registry)
    return BootstrapResult(new_key, key_file, demo)
