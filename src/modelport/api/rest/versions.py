"""Management API for versions: streamed upload, listing, metadata, artifact download."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import StreamingResponse

from modelport.api.auth import require
from modelport.api.multipart import UploadForm, stream_upload
from modelport.api.state import Services, services_of
from modelport.api.text import check_tags, check_text
from modelport.errors import InvalidInputError
from modelport.registry.references import validate_alias, validate_name
from modelport.runtimes.loader import inspect_upload
from modelport.storage.artifacts import BlobWriter
from modelport.types import Principal, Role, Scope, ServingConfig, Signature, VersionInfo

router = APIRouter(prefix="/api/v1", tags=["versions"])
VersionNumber = Annotated[int, Path(ge=1, le=2**31 - 1)]
ARTIFACT_SUFFIX = {"skops": ".skops", "pickle": ".joblib"}


def _json_field(form: UploadForm, name: str, default: Any) -> Any:
    raw = form.fields.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = orjson.loads(raw)  # bounded nesting; NaN and Infinity are refused
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"form field '{name}' must be valid JSON: {exc}") from None
    if not isinstance(value, type(default)):
        raise InvalidInputError(f"form field '{name}' must be a JSON {type(default).__name__}")
    return value


def _metrics(form: UploadForm) -> dict[str, float]:
    metrics = _json_field(form, "metrics", {})
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in metrics.values()):
        raise InvalidInputError("form field 'metrics' must map names to numbers")
    return {str(k): float(v) for k, v in metrics.items()}


def _string_map(form: UploadForm, name: str) -> dict[str, str]:
    value = _json_field(form, name, {})
    if not all(isinstance(v, str) for v in value.values()):
        raise InvalidInputError(f"form field '{name}' must map names to strings")
    return check_tags({str(k): v for k, v in value.items()}, name)


def _signature(form: UploadForm) -> Signature | None:
    raw = _json_field(form, "signature", {})
    if not raw:
        return None
    try:
        return Signature.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInputError(f"form field 'signature' is not a valid signature: {exc}") from None


def _serving(form: UploadForm) -> ServingConfig | None:
    raw = _json_field(form, "serving", {})
    try:
        return ServingConfig.model_validate(raw) if raw else None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidInputError(f"form field 'serving' is not valid: {problems}") from None


def _register(
    services: Services, name: str, form: UploadForm, writer: BlobWriter, principal: Principal
) -> VersionInfo:
    alias = form.fields.get("alias") or None
    if alias is not None:
        validate_alias(alias)
    metrics, params, tags, serving = (
        _metrics(form),
        _json_field(form, "params", {}),
        _string_map(form, "tags"),
        _serving(form),
    )
    inspected = inspect_upload(
        writer.temp_path,
        allow_pickle=services.settings.allow_pickle,
        uploader_is_admin=principal.role is Role.ADMIN,
        signature=_signature(form),
    )
    blob = writer.commit()
    registry = services.registry
    version = registry.create_version(
        name,
        blob,
        inspected,
        metrics=metrics,
        params=params,
        tags=tags,
        description=check_text(form.fields.get("description", ""), "description", 10_000),
        created_by=principal.name,
        serving=serving,
    )
    if alias is not None:
        registry.set_alias(name, alias, version.version, principal.name)
        version = registry.get_version(name, version.version)
    return version


@router.post("/models/{name}/versions", status_code=201, summary="Upload a new version")
async def upload_version(
    name: str, request: Request, principal: Principal = require(Scope.WRITE)
) -> VersionInfo:
    """Multipart form: ``file`` (skops), optional ``alias``, ``description`` and JSON fields
    ``metrics``, ``params``, ``tags``, ``signature``, ``serving``. The model is created
    when missing."""
    validate_name(name)
    services = services_of(request)
    form = await stream_upload(
        request, services.registry.artifacts, services.settings.max_upload_bytes
    )
    assert form.file is not None
    writer = form.file
    try:
        return await run_in_threadpool(_register, services, name, form, writer, principal)
    finally:
        writer.discard()  # no-op once committed


@router.get("/models/{name}/versions", summary="List versions")
async def list_versions(
    name: str, request: Request, _: Principal = require(Scope.READ)
) -> list[VersionInfo]:
    validate_name(name)
    return await run_in_threadpool(services_of(request).registry.list_versions, name)


@router.get("/models/{name}/versions/{version}", summary="Get a version")
async def get_version(
    name: str, version: VersionNumber, request: Request, _: Principal = require(Scope.READ)
) -> VersionInfo:
    validate_name(name)
    return await run_in_threadpool(services_of(request).registry.get_version, name, version)


@router.put("/models/{name}/versions/{version}/serving", summary="Change how a version is served")
async def set_serving(
    name: str,
    version: VersionNumber,
    body: ServingConfig,
    request: Request,
    _: Principal = require(Scope.WRITE),
) -> VersionInfo:
    """Batching (``max_batch_size``, ``max_batch_delay_ms``), ``latency_target_ms`` and
    ``workers``; a loaded version picks the change up on its next request."""
    validate_name(name)
    registry = services_of(request).registry
    return await run_in_threadpool(registry.set_serving, name, version, body)


@router.get("/models/{name}/versions/{version}/artifact", summary="Download the artifact")
async def download_artifact(
    name: str, version: VersionNumber, request: Request, _: Principal = require(Scope.READ)
) -> StreamingResponse:
    validate_name(name)
    registry = services_of(request).registry
    info = await run_in_threadpool(registry.get_version, name, version)
    await run_in_threadpool(registry.artifacts.verified_path, info.artifact_sha256)
    filename = f"{name}-v{version}{ARTIFACT_SUFFIX.get(info.format, '')}"
    return StreamingResponse(
        registry.artifacts.iter_blob(info.artifact_sha256),
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Content-Length": str(info.artifact_size),
            "X-Artifact-Sha256": info.artifact_sha256,
        },
    )
