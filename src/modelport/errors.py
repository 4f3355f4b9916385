"""Domain errors. They carry a domain code, never a wire status.

Each protocol adapter maps codes to its wire in one table (see ``modelport.api.errors``).
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Domain error codes shared by every layer and every wire."""

    NOT_FOUND = "not_found"
    INVALID_INPUT = "invalid_input"
    CONFLICT = "conflict"
    UNAVAILABLE = "unavailable"
    FORBIDDEN = "forbidden"
    UNAUTHENTICATED = "unauthenticated"
    RATE_LIMITED = "rate_limited"
    TOO_LARGE = "too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    ARTIFACT_CORRUPT = "artifact_corrupt"
    INTERNAL = "internal"


class ModelPortError(Exception):
    """Base error: a domain ``code`` and a message that says what to fix."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        """Seconds after which a retry may succeed (overload), when known."""

    def __str__(self) -> str:
        return self.message


class NotFoundError(ModelPortError):
    code = ErrorCode.NOT_FOUND


class InvalidInputError(ModelPortError):
    code = ErrorCode.INVALID_INPUT


class ConflictError(ModelPortError):
    code = ErrorCode.CONFLICT


class UnavailableError(ModelPortError):
    code = ErrorCode.UNAVAILABLE


class ForbiddenError(ModelPortError):
    code = ErrorCode.FORBIDDEN


class UnauthenticatedError(ModelPortError):
    code = ErrorCode.UNAUTHENTICATED


class RateLimitedError(ModelPortError):
    code = ErrorCode.RATE_LIMITED


class TooLargeError(ModelPortError):
    code = ErrorCode.TOO_LARGE


class UnsupportedMediaTypeError(ModelPortError):
    code = ErrorCode.UNSUPPORTED_MEDIA_TYPE


class ArtifactCorruptError(ModelPortError):
    code = ErrorCode.ARTIFACT_CORRUPT


_BY_CODE: dict[str, type[ModelPortError]] = {
    cls.code.value: cls
    for cls in (
        NotFoundError,
        InvalidInputError,
        ConflictError,
        UnavailableError,
        ForbiddenError,
        UnauthenticatedError,
        RateLimitedError,
        TooLargeError,
        UnsupportedMediaTypeError,
        ArtifactCorruptError,
    )
}


def error_from_code(code: str, message: str) -> ModelPortError:
    """Rebuild a domain error from its wire code (used by the client)."""
    return _BY_CODE.get(code, ModelPortError)(message)
