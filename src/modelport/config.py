"""Settings, read from the environment with the prefix ``MODELPORT_`` (data only)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import ByteSize, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the server needs to start; passed down, never imported as a global."""

    model_config = SettingsConfigDict(env_prefix="MODELPORT_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    grpc_port: int = Field(default=8081, ge=0, le=65535, description="0 disables gRPC")
    data_dir: Path = Path("modelport-data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite under the data dir"
    )
    admin_key: SecretStr | None = Field(
        default=None, description="bootstrap admin key; generated on first start when unset"
    )
    no_auth: bool = False
    allow_pickle: bool = False
    default_model: str | None = Field(
        default="demo-linear", description="reference served by POST /predict"
    )
    demo: bool = Field(default=True, description="register the demo model on an empty registry")
    max_upload_bytes: int = Field(default=2 * 1024**3, gt=0)
    max_request_bytes: int = Field(default=64 * 1024**2, gt=0)
    max_batch_size: int = Field(default=256, gt=0)
    workers: int = Field(
        default=1, ge=1, le=64, description="HTTP server processes sharing the port"
    )
    model_workers: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description="predict processes per model unless its serving config says; default: "
        "none for fast models, one per spare core for slow ones",
    )
    model_memory_limit: ByteSize | None = Field(
        default=None, description="memory budget for loaded models, e.g. 4GiB (default: none)"
    )
    max_queue_rows: int = Field(
        default=8192, gt=0, description="rows waiting per model before new requests get 503"
    )
    request_timeout_s: float = Field(
        default=30.0, gt=0, description="longest a request waits for its prediction"
    )
    key_rate_limit: float | None = Field(
        default=None,
        ge=0.01,
        description="requests per second per API key unless the key sets its own "
        "(default: unlimited)",
    )
    max_training_jobs: int = Field(
        default=1, ge=0, le=64, description="training jobs running at once (0: queue only)"
    )
    log_level: str = "info"

    @field_validator("admin_key")
    @classmethod
    def _admin_key_is_strong(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value()) < 24:
            raise ValueError(
                "must be at least 24 characters (generate one with `openssl rand -hex 24`)"
            )
        return key

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            url = self.database_url
            for plain in ("postgresql://", "postgres://"):
                if url.startswith(plain):  # the driver ModelPort installs is psycopg 3
                    return "postgresql+psycopg://" + url.removeprefix(plain)
            return url
        return f"sqlite:///{(self.data_dir / 'modelport.db').resolve()}"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"


def is_loopback(host: str) -> bool:
    """True when ``host`` names only this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
