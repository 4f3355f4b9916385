"""The dataset catalog and the job store on SQLite and PostgreSQL: the migration runs,
versions number up per dataset, and job states only move forward."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from modelport.datasets import DatasetCatalog, profile_file
from modelport.errors import ConflictError, InvalidInputError, NotFoundError
from modelport.pipelines.job_store import JobStore
from modelport.storage.artifacts import ArtifactStore
from modelport.storage.db import create_db_engine, create_session_factory, run_migrations
from modelport.training_types import JobState


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = (
        f"sqlite:///{tmp_path / 'db.sqlite'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    engine = create_db_engine(url)
    run_migrations(engine)
    yield create_session_factory(engine)
    engine.dispose()


def test_dataset_versions(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    artifacts = ArtifactStore(tmp_path / "artifacts")
    catalog = DatasetCatalog(sessions, artifacts)
    path = tmp_path / "d.csv"
    path.write_text("x,y\n1,a\n2,\n")
    profile = profile_file(path, "csv")
    first = catalog.create_version(
        "d", artifacts.put_file(path, 1 << 20), profile, filename="d.csv"
    )
    second = catalog.create_version("d", artifacts.put_file(path, 1 << 20), profile)
    assert (first.version, second.version) == (1, 2) and first.sha256 == second.sha256
    assert catalog.resolve("d").version == 2 and catalog.resolve("d@1").filename == "d.csv"
    assert [c.missing for c in catalog.get_version("d", 1).columns] == [0, 1]
    assert catalog.file_of(first).read_text() == path.read_text()
    assert [d.latest_version for d in catalog.list_datasets()] == [2]
    with pytest.raises(NotFoundError):
        catalog.resolve("d@3")
    with pytest.raises(InvalidInputError):
        catalog.resolve("d@x")


def test_job_states_move_forward(sessions: sessionmaker[Session]) -> None:
    store = JobStore(sessions)
    job = store.create({"dataset": "d"}, "tester")
    assert job.state is JobState.QUEUED and store.queued_ids() == [job.id]
    assert store.claim(job.id, "host:1") and not store.claim(job.id, "host:2")
    assert store.running_count() == 1 and store.running_owners() == {job.id: "host:1"}
    assert store.request_cancel(job.id).cancel_requested
    assert store.finish(job.id, JobState.CANCELLED, error="cancelled")
    assert not store.finish(job.id, JobState.SUCCEEDED)
    with pytest.raises(ConflictError):
        store.request_cancel(job.id)
    queued = store.create({"dataset": "d"}, None)
    assert store.request_cancel(queued.id).state is JobState.CANCELLED
    assert not store.claim(queued.id, "host:1")
    assert [j.id for j in store.list_jobs(JobState.CANCELLED)] == [queued.id, job.id]
