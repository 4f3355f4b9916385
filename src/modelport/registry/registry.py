"""Registry operations over the SQL metadata and the artifact store.

Every method opens its own short transaction. Version numbers are allocated as
``max + 1`` under the unique constraint ``(model_id, version)`` and retried on conflict,
so concurrent uploads to one model get distinct numbers on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from modelport.errors import ConflictError, NotFoundError
from modelport.registry.references import Reference, validate_alias, validate_name
from modelport.runtimes.base import InspectedArtifact
from modelport.storage.artifacts import ArtifactStore, StoredBlob
from modelport.storage.tables import AliasMoveRow, AliasRow, ModelRow, VersionRow, utcnow
from modelport.types import (
    DEFAULT_ALIAS,
    AliasInfo,
    AliasMove,
    ModelInfo,
    ServingConfig,
    Signature,
    VersionInfo,
)

T = TypeVar("T")
MAX_ALLOCATION_ATTEMPTS = 50


def _model_info(row: ModelRow) -> ModelInfo:
    return ModelInfo(
        name=row.name,
        description=row.description,
        tags=dict(row.tags or {}),
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        latest_version=max((v.version for v in row.versions), default=None),
        aliases={a.alias: a.version for a in row.aliases},
    )


def _version_info(row: VersionRow, model_name: str, aliases: list[str]) -> VersionInfo:
    return VersionInfo(
        model=model_name,
        version=row.version,
        artifact_sha256=row.artifact_sha256,
        artifact_size=row.artifact_size,
        format=row.format,
        framework=row.framework,
        framework_version=row.framework_version,
        signature=Signature.model_validate(row.signature),
        params=dict(row.params or {}),
        metrics=dict(row.metrics or {}),
        tags=dict(row.tags or {}),
        description=row.description,
        trusted=row.trusted,
        created_by=row.created_by,
        created_at=row.created_at,
        aliases=sorted(aliases),
        serving=ServingConfig.model_validate(row.serving or {}),
    )


class Registry:
    """Models, versions and aliases."""

    def __init__(self, sessions: sessionmaker[Session], artifacts: ArtifactStore) -> None:
        self.sessions = sessions
        self.artifacts = artifacts
        self.generation = 0
        """Bumped on every change that can alter what a reference resolves to."""

    def _run(self, work: Callable[[Session], T]) -> T:
        with self.sessions.begin() as session:
            return work(session)

    def _changed(self) -> None:
        self.generation += 1

    @staticmethod
    def _model_row(session: Session, name: str) -> ModelRow:
        row = session.scalar(
            select(ModelRow)
            .where(ModelRow.name == name)
            .options(selectinload(ModelRow.versions), selectinload(ModelRow.aliases))
        )
        if row is None:
            raise NotFoundError(f"model '{name}' does not exist")
        return row

    # models -------------------------------------------------------------------------------

    def create_model(
        self,
        name: str,
        description: str = "",
        tags: dict[str, str] | None = None,
        created_by: str | None = None,
    ) -> ModelInfo:
        validate_name(name)

        def work(session: Session) -> ModelInfo:
            if session.scalar(select(ModelRow.id).where(ModelRow.name == name)) is not None:
                raise ConflictError(f"model '{name}' already exists")
            row = ModelRow(
                name=name, description=description, tags=tags or {}, created_by=created_by
            )
            row.versions = []
            row.aliases = []
            session.add(row)
            session.flush()
            return _model_info(row)

        try:
            return self._run(work)
        except IntegrityError:
            raise ConflictError(f"model '{name}' already exists") from None

    def list_models(self) -> list[ModelInfo]:
        def work(session: Session) -> list[ModelInfo]:
            rows = session.scalars(
                select(ModelRow)
                .order_by(ModelRow.name)
                .options(selectinload(ModelRow.versions), selectinload(ModelRow.aliases))
            )
            return [_model_info(row) for row in rows]

        return self._run(work)

    def get_model(self, name: str) -> ModelInfo:
        return self._run(lambda session: _model_info(self._model_row(session, name)))

    def update_model(
        self, name: str, description: str | None = None, tags: dict[str, str] | None = None
    ) -> ModelInfo:
        def work(session: Session) -> ModelInfo:
            row = self._model_row(session, name)
            if description is not None:
                row.description = description
            if tags is not None:
                row.tags = tags
            row.updated_at = utcnow()
            return _model_info(row)

        return self._run(work)

    def delete_model(self, name: str) -> None:
        def work(session: Session) -> list[str]:
            row = self._model_row(session, name)
            hashes = [v.artifact_sha256 for v in row.versions]
            session.delete(row)
            session.execute(delete(AliasMoveRow).where(AliasMoveRow.model_name == name))
            return hashes

        hashes = self._run(work)
        self._changed()
        for sha in set(hashes):
            if not self._blob_in_use(sha):
                self.artifacts.delete_unreferenced(sha)

    def _blob_in_use(self, sha256: str) -> bool:
        return self._run(
            lambda session: (
                session.scalar(
                    select(VersionRow.id).where(VersionRow.artifact_sha256 == sha256).limit(1)
                )
                is not None
            )
        )

    # versions -----------------------------------------------------------------------------

    def create_version(
        self,
        name: str,
        blob: StoredBlob,
        inspected: InspectedArtifact,
        *,
        metrics: dict[str, float] | None = None,
        params: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        description: str = "",
        created_by: str | None = None,
        create_model: bool = True,
        serving: ServingConfig | None = None,
    ) -> VersionInfo:
        """Register a committed blob as the model's next version (creating the model)."""
        validate_name(name)
        if create_model:
            with contextlib.suppress(ConflictError):
                self.create_model(name, created_by=created_by)

        def work(session: Session) -> VersionInfo:
            model = session.scalar(select(ModelRow).where(ModelRow.name == name))
            if model is None:
                raise NotFoundError(f"model '{name}' does not exist")
            latest = session.scalar(
                select(func.max(VersionRow.version)).where(VersionRow.model_id == model.id)
            )
            row = VersionRow(
                model_id=model.id,
                version=(latest or 0) + 1,
                artifact_sha256=blob.sha256,
                artifact_size=blob.size,
                format=inspected.format,
                framework=inspected.framework,
                framework_version=inspected.framework_version,
                signature=inspected.signature.model_dump(mode="json"),
                params={**inspected.params, **(params or {})},
                metrics=metrics or {},
                tags=tags or {},
                description=description,
                trusted=inspected.trusted,
                created_by=created_by,
                serving=(serving or ServingConfig()).model_dump(mode="json", exclude_defaults=True),
            )
            session.add(row)
            model.updated_at = utcnow()
            session.flush()
            return _version_info(row, name, [])

        for _ in range(MAX_ALLOCATION_ATTEMPTS):
            try:
                info = self._run(work)
            except IntegrityError:
                continue  # another upload took this number; allocate again
            self._changed()
            return info
        raise ConflictError(f"could not allocate a version number for '{name}'; retry")

    def list_versions(self, name: str) -> list[VersionInfo]:
        def work(session: Session) -> list[VersionInfo]:
            model = self._model_row(session, name)
            by_version = self._aliases_by_version(model)
            rows = sorted(model.versions, key=lambda v: v.version)
            return [_version_info(v, name, by_version.get(v.version, [])) for v in rows]

        return self._run(work)

    @staticmethod
    def _aliases_by_version(model: ModelRow) -> dict[int, list[str]]:
        by_version: dict[int, list[str]] = {}
        for alias in model.aliases:
            by_version.setdefault(alias.version, []).append(alias.alias)
        return by_version

    def get_version(self, name: str, version: int) -> VersionInfo:
        def work(session: Session) -> VersionInfo:
            model = self._model_row(session, name)
            for row in model.versions:
                if row.version == version:
                    aliases = self._aliases_by_version(model).get(version, [])
                    return _version_info(row, name, aliases)
            raise NotFoundError(f"model '{name}' has no version {version}")

        return self._run(work)

    def set_serving(self, name: str, version: int, serving: ServingConfig) -> VersionInfo:
        """Replace how a version is served; the server applies it on the next request."""

        def work(session: Session) -> VersionInfo:
            model = self._model_row(session, name)
            for row in model.versions:
                if row.version == version:
                    row.serving = serving.model_dump(mode="json", exclude_defaults=True)
                    aliases = self._aliases_by_version(model).get(version, [])
                    return _version_info(row, name, aliases)
            raise NotFoundError(f"model '{name}' has no version {version}")

        info = self._run(work)
        self._changed()
        return info

    def resolve(self, reference: Reference) -> VersionInfo:
        """The version a reference names: alias, number, or ``production`` else latest."""

        def work(session: Session) -> VersionInfo:
            model = self._model_row(session, reference.name)
            by_version = self._aliases_by_version(model)
            aliases = {a.alias: a.version for a in model.aliases}
            if reference.version is not None:
                number = reference.version
            elif reference.alias is not None:
                if reference.alias not in aliases:
                    raise NotFoundError(
                        f"model '{reference.name}' has no alias '{reference.alias}'"
                    )
                number = aliases[reference.alias]
            elif DEFAULT_ALIAS in aliases:
                number = aliases[DEFAULT_ALIAS]
            elif model.versions:
                number = max(v.version for v in model.versions)
            else:
                raise NotFoundError(f"model '{reference.name}' has no versions yet")
            for row in model.versions:
                if row.version == number:
                    return _version_info(row, reference.name, by_version.get(number, []))
            raise NotFoundError(f"model '{reference.name}' has no version {number}")

        return self._run(work)

    # aliases ------------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int, by: str | None = None) -> AliasInfo:
        validate_alias(alias)

        def work(session: Session) -> AliasInfo:
            model = self._model_row(session, name)
            if version not in {v.version for v in model.versions}:
                raise NotFoundError(f"model '{name}' has no version {version}")
            row = next((a for a in model.aliases if a.alias == alias), None)
            previous = row.version if row else None
            if row is None:
                row = AliasRow(model_id=model.id, alias=alias, version=version, updated_by=by)
                session.add(row)
            else:
                row.version, row.updated_by, row.updated_at = version, by, utcnow()
            session.add(
                AliasMoveRow(
                    model_name=name,
                    alias=alias,
                    from_version=previous,
                    to_version=version,
                    moved_by=by,
                )
            )
            session.flush()
            return AliasInfo(
                model=name,
                alias=alias,
                version=version,
                updated_by=by,
                updated_at=row.updated_at,
            )

        info = self._run(work)
        self._changed()
        return info

    def remove_alias(self, name: str, alias: str, by: str | None = None) -> None:
        def work(session: Session) -> None:
            model = self._model_row(session, name)
            row = next((a for a in model.aliases if a.alias == alias), None)
            if row is None:
                raise NotFoundError(f"model '{name}' has no alias '{alias}'")
            session.add(
                AliasMoveRow(
                    model_name=name,
                    alias=alias,
                    from_version=row.version,
                    to_version=None,
                    moved_by=by,
                )
            )
            session.delete(row)

        self._run(work)
        self._changed()

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        def work(session: Session) -> list[AliasMove]:
            self._model_row(session, name)
            query = select(AliasMoveRow).where(AliasMoveRow.model_name == name)
            if alias is not None:
                query = query.where(AliasMoveRow.alias == alias)
            rows = session.scalars(query.order_by(AliasMoveRow.id))
            return [
                AliasMove(
                    model=row.model_name,
                    alias=row.alias,
                    from_version=row.from_version,
                    version=row.to_version,
                    moved_by=row.moved_by,
                    moved_at=row.moved_at,
                )
                for row in rows
            ]

        return self._run(work)
