"""One table from domain error codes to HTTP statuses, and the three JSON error shapes:
``{"error": "..."}`` under ``/v2`` (Open Inference Protocol), OpenAI's error object
``{"error": {"message", "type", "param", "code"}}`` under ``/v1`` and
``{"error": {"code": "...", "message": "..."}}`` everywhere else."""

from __future__ import annotations

import logging
import math

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from modelport.errors import ErrorCode, ModelPortError

log = logging.getLogger(__name__)

HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_INPUT: 400,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL: 500,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.ARTIFACT_CORRUPT: 503,
}

OPENAI_ERROR_TYPE: dict[int, str] = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}
"""OpenAI's ``error.type`` by status (what its SDK's exception classes map from); any
other status is an ``invalid_request_error``."""

_CODE_BY_HTTP_STATUS: dict[int, ErrorCode] = {
    400: ErrorCode.INVALID_INPUT,
    401: ErrorCode.UNAUTHENTICATED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.INVALID_INPUT,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    429: ErrorCode.RATE_LIMITED,
    503: ErrorCode.UNAVAILABLE,
}


def error_body(
    path: str, code: ErrorCode, message: str, retry_after: float | None = None
) -> tuple[int, bytes, dict[str, str]]:
    """Status, JSON body and extra headers for a domain error on ``path``."""
    status = HTTP_STATUS[code]
    if path == "/v2" or path.startswith("/v2/"):
        body = orjson.dumps({"error": message})
    elif path == "/v1" or path.startswith("/v1/"):
        body = orjson.dumps(
            {
                "error": {
                    "message": message,
                    "type": OPENAI_ERROR_TYPE.get(status, "invalid_request_error"),
                    "param": None,
                    "code": code.value,
                }
            }
        )
    else:
        body = orjson.dumps({"error": {"code": code.value, "message": message}})
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return status, body, headers


def error_response(
    path: str, code: ErrorCode, message: str, retry_after: float | None = None
) -> Response:
    status, body, headers = error_body(path, code, message, retry_after)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelPortError)
    exc.__traceback__ = None  # see fastpath.failure_reply: no reference cycle per failure
    return error_response(request.url.path, exc.code, exc.message, exc.retry_after)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _CODE_BY_HTTP_STATUS.get(exc.status_code, ErrorCode.INVALID_INPUT)
    message = str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path}; see /docs for the API"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    response = error_response(request.url.path, code, message)
    response.status_code = exc.status_code
    return response


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        problems.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    return error_response(request.url.path, ErrorCode.INVALID_INPUT, "; ".join(problems))


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(
        request.url.path, ErrorCode.INTERNAL, "internal server error; see the server log"
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ModelPortError, _domain_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
