"""Leaf types shared by every layer: tensor specs, signatures, roles and records."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
"""Model, alias and dataset names: no separators, no ``..``, at most 128 characters."""

DEFAULT_ALIAS = "production"


class Datatype(StrEnum):
    """Open Inference Protocol V2 tensor datatypes."""

    BOOL = "BOOL"
    UINT8 = "UINT8"
    UINT16 = "UINT16"
    UINT32 = "UINT32"
    UINT64 = "UINT64"
    INT8 = "INT8"
    INT16 = "INT16"
    INT32 = "INT32"
    INT64 = "INT64"
    FP16 = "FP16"
    FP32 = "FP32"
    FP64 = "FP64"
    BF16 = "BF16"
    BYTES = "BYTES"


class Role(StrEnum):
    """API key roles, from most to least powerful."""

    ADMIN = "admin"
    EDITOR = "editor"
    PREDICT = "predict"


class Scope(StrEnum):
    """What a route needs. Each role grants a set of scopes (see ``access.roles``)."""

    READ = "read"
    PREDICT = "predict"
    WRITE = "write"
    ADMIN = "admin"


class TensorSpec(BaseModel):
    """One named tensor of a signature; ``-1`` marks a free dimension."""

    model_config = ConfigDict(frozen=True)

    name: str
    datatype: Datatype
    shape: list[int]
    parameters: dict[str, Any] = Field(default_factory=dict)

    @field_validator("shape")
    @classmethod
    def _dims_are_valid(cls, shape: list[int]) -> list[int]:
        if any(dim < -1 for dim in shape):
            raise ValueError("shape dimensions must be >= 0, or -1 for a free dimension")
        return shape


class Signature(BaseModel):
    """Inputs and outputs of a model version, as V2 tensor specs."""

    inputs: list[TensorSpec] = Field(default_factory=list)
    outputs: list[TensorSpec] = Field(default_factory=list)


class ModelInfo(BaseModel):
    """A registered model (a named family of versions)."""

    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    created_by: str | None = None
    created_at: datetime
    updated_at: datetime
    latest_version: int | None = None
    aliases: dict[str, int] = Field(default_factory=dict)


class ServingConfig(BaseModel):
    """How one version is served: batching, its latency target and where predict runs.

    Unset fields take the server's defaults. The artifact of a version never changes; its
    serving configuration may (``PUT .../versions/{v}/serving``).
    """

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int | None = Field(
        default=None, ge=1, le=65_536, description="rows per predict call (server default)"
    )
    max_batch_delay_ms: float = Field(
        default=0.0,
        allow_inf_nan=False,
        ge=0,
        le=1_000,
        description="longest the first queued request may wait for others to join its batch; "
        "0 batches only what queued while the model was busy",
    )
    latency_target_ms: float | None = Field(
        default=None,
        allow_inf_nan=False,
        gt=0,
        le=600_000,
        description="requests that cannot be answered within this are refused at once (503)",
    )
    workers: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description="predict processes; 0 predicts inside the server process; unset: "
        "chosen from the model's predict cost and the CPU count",
    )


class VersionInfo(BaseModel):
    """One immutable version of a model."""

    model: str
    version: int
    artifact_sha256: str
    artifact_size: int
    format: str
    framework: str
    framework_version: str
    signature: Signature
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    trusted: bool = False
    created_by: str | None = None
    created_at: datetime
    aliases: list[str] = Field(default_factory=list)
    serving: ServingConfig = Field(default_factory=ServingConfig)


class AliasInfo(BaseModel):
    """An alias and the version it points to."""

    model: str
    alias: str
    version: int
    updated_by: str | None = None
    updated_at: datetime


class AliasMove(BaseModel):
    """One entry of an alias's history; ``version`` is None when the alias was removed."""

    model: str
    alias: str
    from_version: int | None
    version: int | None
    moved_by: str | None = None
    moved_at: datetime


class KeyInfo(BaseModel):
    """An API key as the registry keeps it: never the secret, only its prefix."""

    id: int
    prefix: str
    name: str
    role: Role
    created_by: str | None = None
    created_at: datetime
    revoked_at: datetime | None = None
    rate_limit: float | None = None
    """Requests per second this key may make (None: the server's default)."""


class CreatedKey(KeyInfo):
    """A key just created: the only time the secret is shown."""

    key: str


class Principal(BaseModel):
    """Who is calling: the key's id, a display name and its role."""

    model_config = ConfigDict(frozen=True)

    key_id: int | None
    name: str
    role: Role
    rate_limit: float | None = None
