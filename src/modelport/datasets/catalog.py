"""Datasets and their immutable versions over the SQL metadata and the artifact store.

The file itself is a content-addressed blob (shared with model artifacts); a version row
appears only after its blob is committed and profiled. Version numbers are allocated
like model versions: ``max + 1`` under a unique constraint, retried on conflict."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from modelport.datasets.files import DatasetProfile
from modelport.errors import ConflictError, InvalidInputError, NotFoundError
from modelport.storage.artifacts import ArtifactStore, StoredBlob
from modelport.storage.tables import DatasetRow, DatasetVersionRow, utcnow
from modelport.training_types import ColumnProfile, DatasetInfo, DatasetVersionInfo
from modelport.types import NAME_PATTERN

T = TypeVar("T")
MAX_ALLOCATION_ATTEMPTS = 50


def validate_dataset_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise InvalidInputError(
            f"invalid dataset name {name[:64]!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def parse_dataset_reference(text: str) -> tuple[str, int | None]:
    """``name`` (the latest version) or ``name@N``."""
    name, _, selector = text.partition("@")
    validate_dataset_name(name)
    if not selector:
        if "@" in text:
            raise InvalidInputError(f"dataset reference {text[:64]!r} has nothing after '@'")
        return name, None
    if not (selector.isascii() and selector.isdigit()) or not 1 <= int(selector) <= 2**31 - 1:
        raise InvalidInputError(
            f"dataset reference {text[:64]!r}: after '@' comes a version number (name@3)"
        )
    return name, int(selector)


def _dataset_info(row: DatasetRow) -> DatasetInfo:
    return DatasetInfo(
        name=row.name,
        description=row.description,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        latest_version=max((v.version for v in row.versions), default=None),
    )


def _version_info(row: DatasetVersionRow, name: str) -> DatasetVersionInfo:
    return DatasetVersionInfo(
        dataset=name,
        version=row.version,
        sha256=row.sha256,
        size=row.size,
        format=row.format,
        filename=row.filename,
        rows=row.rows,
        columns=[ColumnProfile.model_validate(column) for column in row.columns],
        description=row.description,
        created_by=row.created_by,
        created_at=row.created_at,
    )


class DatasetCatalog:
    """Datasets, their versions, and the paths of their verified files."""

    def __init__(self, sessions: sessionmaker[Session], artifacts: ArtifactStore) -> None:
        self._sessions = sessions
        self.artifacts = artifacts

    def _run(self, work: Callable[[Session], T]) -> T:
        with self._sessions.begin() as session:
            return work(session)

    @staticmethod
    def _row(session: Session, name: str) -> DatasetRow:
        row = session.scalar(
            select(DatasetRow)
            .where(DatasetRow.name == name)
            .options(selectinload(DatasetRow.versions))
        )
        if row is None:
            raise NotFoundError(f"dataset '{name}' does not exist")
        return row

    def _ensure_dataset(self, name: str, created_by: str | None) -> None:
        def work(session: Session) -> None:
            if session.scalar(select(DatasetRow.id).where(DatasetRow.name == name)) is None:
                session.add(DatasetRow(name=name, description="", created_by=created_by))

        with contextlib.suppress(IntegrityError):  # created by a concurrent upload
            self._run(work)

    def create_version(
        self,
        name: str,
        blob: StoredBlob,
        profile: DatasetProfile,
        *,
        filename: str = "",
        description: str = "",
        created_by: str | None = None,
    ) -> DatasetVersionInfo:
        """Register a committed, profiled blob as the dataset's next version."""
        validate_dataset_name(name)
        self._ensure_dataset(name, created_by)

        def work(session: Session) -> DatasetVersionInfo:
            dataset = self._row(session, name)
            latest = session.scalar(
                select(func.max(DatasetVersionRow.version)).where(
                    DatasetVersionRow.dataset_id == dataset.id
                )
            )
            row = DatasetVersionRow(
                dataset_id=dataset.id,
                version=(latest or 0) + 1,
                sha256=blob.sha256,
                size=blob.size,
                format=profile.format,
                filename=filename[:256],
                rows=profile.rows,
                columns=[column.model_dump(mode="json") for column in profile.columns],
                description=description,
                created_by=created_by,
            )
            session.add(row)
            dataset.updated_at = utcnow()
            session.flush()
            return _version_info(row, name)

        for _ in range(MAX_ALLOCATION_ATTEMPTS):
            try:
                return self._run(work)
            except IntegrityError:
                continue  # another upload took this number
        raise ConflictError(f"could not allocate a version number for dataset '{name}'; retry")

    def list_datasets(self) -> list[DatasetInfo]:
        def work(session: Session) -> list[DatasetInfo]:
            rows = session.scalars(
                select(DatasetRow)
                .order_by(DatasetRow.name)
                .options(selectinload(DatasetRow.versions))
            )
            return [_dataset_info(row) for row in rows]

        return self._run(work)

    def get_dataset(self, name: str) -> DatasetInfo:
        validate_dataset_name(name)
        return self._run(lambda session: _dataset_info(self._row(session, name)))

    def list_versions(self, name: str) -> list[DatasetVersionInfo]:
        validate_dataset_name(name)

        def work(session: Session) -> list[DatasetVersionInfo]:
            rows = sorted(self._row(session, name).versions, key=lambda v: v.version)
            return [_version_info(row, name) for row in rows]

        return self._run(work)

    def get_version(self, name: str, version: int | None = None) -> DatasetVersionInfo:
        """One version, or the latest when ``version`` is None."""
        validate_dataset_name(name)

        def work(session: Session) -> DatasetVersionInfo:
            dataset = self._row(session, name)
            if not dataset.versions:
                raise NotFoundError(f"dataset '{name}' has no versions yet")
            wanted = version or max(v.version for v in dataset.versions)
            for row in dataset.versions:
                if row.version == wanted:
                    return _version_info(row, name)
            raise NotFoundError(f"dataset '{name}' has no version {wanted}")

        return self._run(work)

    def resolve(self, reference: str) -> DatasetVersionInfo:
        """The version that ``name`` or ``name@N`` names."""
        name, version = parse_dataset_reference(reference)
        return self.get_version(name, version)

    def file_of(self, info: DatasetVersionInfo) -> Path:
        """The version's file, after checking its hash."""
        return self.artifacts.verified_path(info.sha256)
