"""Reading request bodies: size limits, content types, and JSON with clear errors."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from modelport.errors import InvalidInputError, TooLargeError, UnsupportedMediaTypeError

# curl -d sends form-urlencoded by default; the Flask tutorial's clients rely on that.
JSON_CONTENT_TYPES = frozenset(
    {"", "application/json", "application/x-www-form-urlencoded", "text/json"}
)


_JSON_AS_SENT: set[str] = set()
"""Content-Type values seen to be JSON (a client sends the same one every time)."""


def check_json_content_type(content_type: str) -> None:
    if content_type in _JSON_AS_SENT:
        return
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type in JSON_CONTENT_TYPES or media_type.endswith("+json"):
        if len(_JSON_AS_SENT) < 64:
            _JSON_AS_SENT.add(content_type)
        return
    raise UnsupportedMediaTypeError(
        f"unsupported Content-Type '{media_type[:64]}': send a JSON body with "
        "'Content-Type: application/json'"
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) anything over ``limit`` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise InvalidInputError("Content-Length must be a non-negative integer")
        if int(declared) > limit:
            raise TooLargeError(too_large_message(limit))
        body = await request.body()
        if len(body) > limit:
            raise TooLargeError(too_large_message(limit))
        return body
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLargeError(too_large_message(limit))
        chunks.append(chunk)
    return b"".join(chunks)


def too_large_message(limit: int) -> str:
    return (
        f"request body is larger than the limit of {limit} bytes; send fewer rows per "
        "request (or raise MODELPORT_MAX_REQUEST_BYTES on the server)"
    )


def parse_json(body: bytes) -> Any:
    if not body:
        raise InvalidInputError("the request body is empty; send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        reason = str(exc)
        if "recursion" in reason.lower() or "depth limit" in reason.lower():
            raise InvalidInputError("the JSON body is nested too deeply") from None
        if any(token in body for token in (b"NaN", b"Infinity")):
            raise InvalidInputError(
                "the body is not valid JSON: NaN and Infinity are not JSON numbers; send "
                "finite numbers only"
            ) from None
        raise InvalidInputError(f"the body is not valid JSON: {reason}") from None


def json_object(
    body: bytes, content_type: str, example: str = '{"features": [[...]]}'
) -> dict[str, Any]:
    """The body as a JSON object, after checking its content type; ``example`` shows the
    route's own shape in the error."""
    check_json_content_type(content_type)
    document = parse_json(body)
    if not isinstance(document, dict):
        raise InvalidInputError(f"the JSON body must be an object, e.g. {example}")
    return document
