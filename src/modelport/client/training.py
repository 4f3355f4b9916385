"""The client's datasets and training jobs methods (mixed into ``Client``).

Example::

    client = Client("http://127.0.0.1:8080", api_key="mp_...")
    client.push_dataset("houses.csv", "houses")
    job = client.submit_job(spec_from_text(Path("spec.yaml").read_text()))
    job = client.wait_for_job(job.id)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from modelport.errors import InvalidInputError
from modelport.pipeline_spec import PipelineSpec
from modelport.training_types import (
    DatasetInfo,
    DatasetPreview,
    DatasetVersionInfo,
    JobInfo,
    JobState,
)


def _segment(value: str) -> str:
    return quote(value, safe="")


class TrainingMethods:
    """Datasets and jobs; ``_request`` is the client's one way to the server."""

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        raise NotImplementedError

    # datasets -----------------------------------------------------------------------------

    def push_dataset(
        self,
        path: str | Path,
        name: str,
        *,
        description: str = "",
        format: str | None = None,
    ) -> DatasetVersionInfo:
        """Upload a CSV or Parquet file as the next version of dataset ``name``."""
        path = Path(path)
        if not path.is_file():
            raise InvalidInputError(f"no such file: {path}")
        fields = {"description": description, **({"format": format} if format else {})}
        with path.open("rb") as stream:
            response = self._request(
                "POST",
                f"/api/v1/datasets/{_segment(name)}/versions",
                data=fields,
                files={"file": (path.name, stream, "application/octet-stream")},
            )
        return DatasetVersionInfo.model_validate(response.json())

    def list_datasets(self) -> list[DatasetInfo]:
        response = self._request("GET", "/api/v1/datasets")
        return [DatasetInfo.model_validate(item) for item in response.json()]

    def get_dataset(self, name: str) -> DatasetInfo:
        response = self._request("GET", f"/api/v1/datasets/{_segment(name)}")
        return DatasetInfo.model_validate(response.json())

    def list_dataset_versions(self, name: str) -> list[DatasetVersionInfo]:
        response = self._request("GET", f"/api/v1/datasets/{_segment(name)}/versions")
        return [DatasetVersionInfo.model_validate(item) for item in response.json()]

    def get_dataset_version(self, name: str, version: int) -> DatasetVersionInfo:
        response = self._request("GET", f"/api/v1/datasets/{_segment(name)}/versions/{version}")
        return DatasetVersionInfo.model_validate(response.json())

    def preview_dataset(self, name: str, version: int, limit: int = 20) -> DatasetPreview:
        response = self._request(
            "GET",
            f"/api/v1/datasets/{_segment(name)}/versions/{version}/preview",
            params={"limit": limit},
        )
        return DatasetPreview.model_validate(response.json())

    # jobs ---------------------------------------------------------------------------------

    def submit_job(self, spec: PipelineSpec | dict[str, Any]) -> JobInfo:
        """Queue a training job; the spec's dataset must be registered (``name[@N]``)."""
        body = spec.as_json() if isinstance(spec, PipelineSpec) else spec
        return JobInfo.model_validate(self._request("POST", "/api/v1/jobs", json=body).json())

    def list_jobs(self, state: JobState | str | None = None, limit: int = 100) -> list[JobInfo]:
        params: dict[str, Any] = {"limit": limit}
        if state is not None:
            params["state"] = JobState(state).value
        response = self._request("GET", "/api/v1/jobs", params=params)
        return [JobInfo.model_validate(item) for item in response.json()]

    def get_job(self, job_id: int) -> JobInfo:
        return JobInfo.model_validate(self._request("GET", f"/api/v1/jobs/{job_id}").json())

    def cancel_job(self, job_id: int) -> JobInfo:
        response = self._request("POST", f"/api/v1/jobs/{job_id}/cancel")
        return JobInfo.model_validate(response.json())

    def job_logs(self, job_id: int, offset: int = 0) -> tuple[str, int]:
        """Log text from byte ``offset`` and the offset to ask from next time."""
        response = self._request(
            "GET", f"/api/v1/jobs/{job_id}/logs", params={"offset": offset}
        ).json()
        return str(response["text"]), int(response["next_offset"])

    def wait_for_job(
        self,
        job_id: int,
        *,
        timeout: float | None = None,
        poll_s: float = 0.5,
        on_update: Callable[[JobInfo], None] | None = None,
    ) -> JobInfo:
        """Poll until the job finishes (or ``timeout`` seconds pass: the job as it is)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if on_update is not None:
                on_update(job)
            if job.state.finished or (deadline is not None and time.monotonic() > deadline):
                return job
            time.sleep(poll_s)
