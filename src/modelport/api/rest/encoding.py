"""Fast JSON responses for the hot path (orjson, numpy arrays serialised natively)."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import Response

from modelport.errors import InvalidInputError
from modelport.tensors.dtypes import all_finite

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def json_ready(array: np.ndarray) -> Any:
    """An array orjson can write: numeric arrays as they are, text as a list of str."""
    if array.dtype.kind in "biuf":
        if array.dtype.kind == "f" and not all_finite(array):
            raise InvalidInputError(
                "the model's output for this input is NaN or infinite, which JSON cannot "
                "carry; check the input values (or ask for binary outputs on V2)"
            )
        return np.ascontiguousarray(array)
    return [_text(item) for item in array.ravel().tolist()] if array.ndim else array.tolist()


def _text(item: Any) -> Any:
    if isinstance(item, bytes):
        return item.decode("utf-8", errors="replace")
    return item


def dump_json(content: Any) -> bytes:
    return orjson.dumps(content, option=_OPTIONS)


def header_dict(raw_headers: tuple[tuple[bytes, bytes], ...]) -> dict[str, str]:
    """Encoded headers (``model_headers``) as Starlette takes them."""
    return {name.decode(): value.decode() for name, value in raw_headers}


def reply_response(reply: Any) -> Response:
    """A Starlette response for a handler's ``Reply``."""
    return Response(
        reply.body,
        status_code=reply.status,
        media_type=reply.media_type,
        headers={**reply.headers, **header_dict(reply.raw_headers)},
    )


def request_meta(request: Request) -> Any:
    from modelport.api.handlers import RequestMeta

    return RequestMeta(
        request.headers.get("content-type", ""),
        request.headers.get("inference-header-content-length"),
    )


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(content, option=_OPTIONS),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )
