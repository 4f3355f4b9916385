"""Assembly of the train-to-deploy side: the dataset catalog and the job manager."""

from __future__ import annotations

from modelport.api.training_state import TrainingServices
from modelport.config import Settings
from modelport.datasets import DatasetCatalog
from modelport.pipelines.job_store import JobStore
from modelport.pipelines.jobs import JobManager, JobSettings
from modelport.registry import Registry


def build_training(settings: Settings, registry: Registry) -> TrainingServices:
    """Datasets and jobs on the registry's own database sessions and artifact store."""
    sessions = registry.sessions
    datasets = DatasetCatalog(sessions, registry.artifacts)
    jobs = JobManager(
        JobStore(sessions),
        datasets,
        registry,
        JobSettings(settings.data_dir, settings.max_training_jobs, settings.max_upload_bytes),
    )
    return TrainingServices(datasets, jobs)
