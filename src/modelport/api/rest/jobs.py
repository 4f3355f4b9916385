"""Training jobs API under ``/api/v1/jobs``: submit a pipeline spec, follow its state,
progress and log, cancel it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from modelport.api.auth import require
from modelport.api.training_state import training_of
from modelport.pipeline_spec import load_spec
from modelport.training_types import JobInfo, JobState
from modelport.types import Principal, Scope

router = APIRouter(prefix="/api/v1", tags=["jobs"])
JobId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class JobLog(BaseModel):
    """A slice of a job's log: ask again from ``next_offset`` for what follows."""

    job: int
    offset: int
    next_offset: int
    text: str


@router.post("/jobs", status_code=201, summary="Submit a training pipeline")
async def submit_job(
    body: dict[str, Any], request: Request, principal: Principal = require(Scope.WRITE)
) -> JobInfo:
    """The body is a pipeline spec (see ``modelport.pipeline_spec``); its ``dataset`` is a
    registered dataset, ``name`` or ``name@version``. The job is queued at once and runs in
    a worker process."""
    spec = load_spec(body)
    jobs = training_of(request).jobs
    return await run_in_threadpool(jobs.submit, spec, principal.name)


@router.get("/jobs", summary="List training jobs, newest first")
async def list_jobs(
    request: Request,
    state: JobState | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    _: Principal = require(Scope.READ),
) -> list[JobInfo]:
    return await run_in_threadpool(training_of(request).jobs.store.list_jobs, state, limit)


@router.get("/jobs/{job_id}", summary="A job's state, progress and result")
async def get_job(job_id: JobId, request: Request, _: Principal = require(Scope.READ)) -> JobInfo:
    return await run_in_threadpool(training_of(request).jobs.store.get, job_id)


@router.get("/jobs/{job_id}/logs", summary="A job's log from a byte offset")
async def job_logs(
    job_id: JobId,
    request: Request,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    _: Principal = require(Scope.READ),
) -> JobLog:
    text, next_offset = await run_in_threadpool(training_of(request).jobs.read_log, job_id, offset)
    return JobLog(job=job_id, offset=offset, next_offset=next_offset, text=text)


@router.post("/jobs/{job_id}/cancel", summary="Cancel a queued or running job")
async def cancel_job(
    job_id: JobId, request: Request, _: Principal = require(Scope.WRITE)
) -> JobInfo:
    """A queued job is cancelled at once; a running one is stopped within a second (its
    worker process is terminated). A job already registering its model completes."""
    return await run_in_threadpool(training_of(request).jobs.cancel, job_id)
