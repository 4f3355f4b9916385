"""A training server for the pipeline tests and helpers to run jobs on it."""

from __future__ import annotations

import time
from typing import Any

import httpx

JOB_TIMEOUT_S = 240.0


def wait_for(admin: httpx.Client, job_id: int, states: tuple[str, ...]) -> dict[str, Any]:
    """Poll the job until it is in one of ``states`` (a job that ends elsewhere fails)."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        job: dict[str, Any] = admin.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        if job["state"] in ("succeeded", "failed", "cancelled"):
            raise AssertionError(f"job {job_id} ended {job['state']}: {job['error']}")
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not reach {states} in {JOB_TIMEOUT_S}s")


def run_job(admin: httpx.Client, spec: dict[str, Any], end: str = "succeeded") -> dict[str, Any]:
    response = admin.post("/api/v1/jobs", json=spec)
    assert response.status_code == 201, response.text
    return wait_for(admin, response.json()["id"], (end,))
