"""Training jobs in the SQL metadata: the one place their state changes.

State moves only forward (queued → running → succeeded/failed/cancelled) and every move
is a conditional UPDATE on the current state, so two server processes never both claim a
job, and a finished job never changes again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from modelport.errors import ConflictError, NotFoundError
from modelport.storage.tables import JobRow, utcnow
from modelport.training_types import JobInfo, JobProgress, JobState

T = TypeVar("T")
MAX_LISTED = 1000


def _info(row: JobRow) -> JobInfo:
    return JobInfo(
        id=row.id,
        kind=row.kind,
        state=JobState(row.state),
        spec=dict(row.spec),
        progress=JobProgress.model_validate(row.progress or {}),
        result=dict(row.result or {}),
        error=row.error,
        cancel_requested=row.cancel_requested,
        created_by=row.created_by,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


class JobStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def _run(self, work: Callable[[Session], T]) -> T:
        with self._sessions.begin() as session:
            return work(session)

    @staticmethod
    def _row(session: Session, job_id: int) -> JobRow:
        row = session.get(JobRow, job_id)
        if row is None:
            raise NotFoundError(f"job {job_id} does not exist")
        return row

    def create(self, spec: dict[str, Any], created_by: str | None) -> JobInfo:
        def work(session: Session) -> JobInfo:
            row = JobRow(
                kind="train",
                state=JobState.QUEUED.value,
                spec=spec,
                progress=JobProgress().model_dump(),
                result={},
                error="",
                cancel_requested=False,
                created_by=created_by,
            )
            session.add(row)
            session.flush()
            return _info(row)

        return self._run(work)

    def get(self, job_id: int) -> JobInfo:
        return self._run(lambda session: _info(self._row(session, job_id)))

    def list_jobs(self, state: JobState | None = None, limit: int = 100) -> list[JobInfo]:
        query = select(JobRow).order_by(JobRow.id.desc()).limit(min(limit, MAX_LISTED))
        if state is not None:
            query = query.where(JobRow.state == state.value)
        return self._run(lambda session: [_info(row) for row in session.scalars(query)])

    def queued_ids(self) -> list[int]:
        query = select(JobRow.id).where(JobRow.state == JobState.QUEUED.value).order_by(JobRow.id)
        return self._run(lambda session: list(session.scalars(query)))

    def running_count(self) -> int:
        query = (
            select(func.count()).select_from(JobRow).where(JobRow.state == JobState.RUNNING.value)
        )
        return self._run(lambda session: int(session.scalar(query) or 0))

    def _move(self, job_id: int, from_states: tuple[JobState, ...], **values: Any) -> bool:
        statement = (
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.state.in_([s.value for s in from_states]))
            .values(**values)
        )
        return self._run(lambda session: bool(session.execute(statement).rowcount == 1))  # type: ignore[attr-defined]

    def claim(self, job_id: int, owner: str) -> bool:
        """Take a queued job to run it; False when another process took it first."""
        return self._move(
            job_id,
            (JobState.QUEUED,),
            state=JobState.RUNNING.value,
            owner=owner,
            started_at=utcnow(),
            progress=JobProgress(stage="starting").model_dump(),
        )

    def set_progress(self, job_id: int, progress: JobProgress) -> None:
        self._move(job_id, (JobState.RUNNING,), progress=progress.model_dump())

    def finish(
        self,
        job_id: int,
        state: JobState,
        *,
        result: dict[str, Any] | None = None,
        error: str = "",
        progress: JobProgress | None = None,
    ) -> bool:
        values: dict[str, Any] = {"state": state.value, "error": error, "finished_at": utcnow()}
        if result is not None:
            values["result"] = result
        if progress is not None:
            values["progress"] = progress.model_dump()
        return self._move(job_id, (JobState.QUEUED, JobState.RUNNING), **values)

    def request_cancel(self, job_id: int) -> JobInfo:
        """Cancel a queued job at once; ask the process running a running one to stop it."""
        job = self.get(job_id)
        if job.state.finished:
            raise ConflictError(f"job {job_id} already {job.state.value}; nothing to cancel")
        cancelled_queued = self._move(
            job_id,
            (JobState.QUEUED,),
            state=JobState.CANCELLED.value,
            error="cancelled before it started",
            finished_at=utcnow(),
            cancel_requested=True,
        )
        if not cancelled_queued:
            self._move(job_id, (JobState.RUNNING,), cancel_requested=True)
        return self.get(job_id)

    def cancel_requested(self, job_id: int) -> bool:
        return self._run(lambda session: bool(self._row(session, job_id).cancel_requested))

    def running_owners(self) -> dict[int, str]:
        """The running jobs and the server process (``host:pid``) running each."""
        query = select(JobRow.id, JobRow.owner).where(JobRow.state == JobState.RUNNING.value)
        return self._run(lambda session: {row[0]: row[1] or "" for row in session.execute(query)})
