"""Reading an OpenAI request's JSON body, shared by the /v1 routes."""

from __future__ import annotations

from starlette.requests import Request

from modelport.api.body import json_object, read_body
from modelport.api.handlers import off_loop_if_large
from modelport.api.state import services_of


async def read_document(request: Request, example: str) -> dict[str, object]:
    """The body as a JSON object (bounded, off the loop when large); ``example`` shows the
    route's shape in the error for anything else."""
    body = await read_body(request, services_of(request).settings.max_request_bytes)
    content_type = request.headers.get("content-type", "")
    return await off_loop_if_large(len(body), json_object, body, content_type, example)
