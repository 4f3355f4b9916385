"""Datasets API under ``/api/v1/datasets``: streamed upload of CSV or Parquet files,
listing, versions with their schema, and a preview of the first rows."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from modelport.api.auth import require
from modelport.api.multipart import UploadForm, stream_upload
from modelport.api.state import services_of
from modelport.api.text import check_text
from modelport.api.training_state import training_of
from modelport.datasets import DatasetCatalog, detect_format, profile_file
from modelport.datasets.catalog import validate_dataset_name
from modelport.datasets.files import preview_rows
from modelport.storage.artifacts import BlobWriter
from modelport.training_types import DatasetInfo, DatasetPreview, DatasetVersionInfo
from modelport.types import Principal, Scope

router = APIRouter(prefix="/api/v1", tags=["datasets"])
VersionNumber = Annotated[int, Path(ge=1, le=2**31 - 1)]
MAX_PREVIEW_ROWS = 1000


def _register(
    catalog: DatasetCatalog, name: str, form: UploadForm, writer: BlobWriter, principal: Principal
) -> DatasetVersionInfo:
    """Profile the uploaded file, then commit its blob and add the version (in that order:
    a file that cannot be read leaves nothing behind)."""
    declared = (form.fields.get("format") or "").strip().lower() or None
    filename = check_text(form.filename or "", "filename", 256)
    description = check_text(form.fields.get("description", ""), "description", 10_000)
    fmt = detect_format(writer.temp_path, filename, declared)
    profile = profile_file(writer.temp_path, fmt)
    blob = writer.commit()
    return catalog.create_version(
        name,
        blob,
        profile,
        filename=filename,
        description=description,
        created_by=principal.name,
    )


@router.post("/datasets/{name}/versions", status_code=201, summary="Upload a dataset version")
async def upload_dataset(
    name: str, request: Request, principal: Principal = require(Scope.WRITE)
) -> DatasetVersionInfo:
    """Multipart form: ``file`` (a CSV with a header row, or a Parquet file), optional
    ``format`` (``csv`` or ``parquet``; default from the file) and ``description``. The
    dataset is created when missing."""
    validate_dataset_name(name)
    services = services_of(request)
    catalog = training_of(request).datasets
    form = await stream_upload(request, catalog.artifacts, services.settings.max_upload_bytes)
    assert form.file is not None
    writer = form.file
    try:
        return await run_in_threadpool(_register, catalog, name, form, writer, principal)
    finally:
        writer.discard()  # no-op once committed


@router.get("/datasets", summary="List datasets")
async def list_datasets(request: Request, _: Principal = require(Scope.READ)) -> list[DatasetInfo]:
    return await run_in_threadpool(training_of(request).datasets.list_datasets)


@router.get("/datasets/{name}", summary="Get a dataset")
async def get_dataset(
    name: str, request: Request, _: Principal = require(Scope.READ)
) -> DatasetInfo:
    return await run_in_threadpool(training_of(request).datasets.get_dataset, name)


@router.get("/datasets/{name}/versions", summary="List a dataset's versions")
async def list_dataset_versions(
    name: str, request: Request, _: Principal = require(Scope.READ)
) -> list[DatasetVersionInfo]:
    return await run_in_threadpool(training_of(request).datasets.list_versions, name)


@router.get("/datasets/{name}/versions/{version}", summary="Get a dataset version")
async def get_dataset_version(
    name: str, version: VersionNumber, request: Request, _: Principal = require(Scope.READ)
) -> DatasetVersionInfo:
    return await run_in_threadpool(training_of(request).datasets.get_version, name, version)


def _preview(catalog: DatasetCatalog, name: str, version: int, limit: int) -> DatasetPreview:
    info = catalog.get_version(name, version)
    columns, rows = preview_rows(catalog.file_of(info), info.format, limit)
    return DatasetPreview(dataset=name, version=version, columns=columns, rows=rows)


@router.get("/datasets/{name}/versions/{version}/preview", summary="The first rows")
async def preview_dataset(
    name: str,
    version: VersionNumber,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_PREVIEW_ROWS)] = 20,
    _: Principal = require(Scope.READ),
) -> DatasetPreview:
    catalog = training_of(request).datasets
    return await run_in_threadpool(_preview, catalog, name, version, limit)
