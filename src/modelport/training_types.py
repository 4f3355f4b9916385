"""Leaf records of the train-to-deploy side: datasets, their schemas, and training jobs.

They sit beside ``modelport.types`` at the bottom of the import graph so that the server,
the client and the CLI share them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class ColumnType(StrEnum):
    """What a dataset column holds, as training sees it."""

    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    STRING = "string"
    DATETIME = "datetime"

    @property
    def is_numeric(self) -> bool:
        return self in (ColumnType.INTEGER, ColumnType.FLOAT, ColumnType.BOOLEAN)


class ColumnProfile(BaseModel):
    """One column of a dataset version: its name, type and how many values are missing."""

    name: str
    type: ColumnType
    missing: int = Field(ge=0)


class DatasetVersionInfo(BaseModel):
    """One immutable, content-addressed version of a dataset."""

    dataset: str
    version: int
    sha256: str
    size: int
    format: str
    """``csv`` or ``parquet``."""
    filename: str = ""
    rows: int
    columns: list[ColumnProfile]
    description: str = ""
    created_by: str | None = None
    created_at: datetime


class DatasetInfo(BaseModel):
    """A named family of dataset versions."""

    name: str
    description: str = ""
    created_by: str | None = None
    created_at: datetime
    updated_at: datetime
    latest_version: int | None = None


class DatasetPreview(BaseModel):
    """The first rows of a dataset version; missing values are ``null``."""

    dataset: str
    version: int
    columns: list[str]
    rows: list[list[Any]]


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class JobProgress(BaseModel):
    """Where a running job is: its stage, and within the search the candidate and fold."""

    stage: str = "queued"
    candidate: str | None = None
    candidate_index: int = 0
    candidates: int = 0
    fold: int = 0
    folds: int = 0
    fits_done: int = 0
    fits_total: int = 0
    message: str = ""


class JobInfo(BaseModel):
    """A training job as the API reports it; ``result`` holds the leaderboard, the
    registered version and the gate's decision once it succeeded."""

    id: int
    kind: str = "train"
    state: JobState
    spec: dict[str, Any]
    progress: JobProgress = Field(default_factory=JobProgress)
    result: dict[str, Any] = Field(default_factory=dict)
    error: str = ""
    cancel_requested: bool = False
    created_by: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
