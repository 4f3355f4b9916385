"""What the datasets and jobs adapters need, kept on ``app.state.training``."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from modelport.datasets import DatasetCatalog
from modelport.pipelines.jobs import JobManager


@dataclass
class TrainingServices:
    datasets: DatasetCatalog
    jobs: JobManager


def training_of(request: Request) -> TrainingServices:
    training: TrainingServices = request.app.state.training
    return training
