"""The inference handlers, free of any web framework: bytes in, bytes out.

Both the FastAPI routes (documented in OpenAPI) and the fast path (``fastpath.py``)
call these, so the two can never disagree.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from modelport.api.body import json_object
from modelport.api.codec import rows_from_json
from modelport.api.rest.encoding import dump_json, json_ready
from modelport.api.state import Services
from modelport.api.v2_codec import decode_request, encode_response
from modelport.errors import InvalidInputError, NotFoundError
from modelport.registry.references import Reference, parse_reference


@dataclass
class Reply:
    body: bytes
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def default_reference(services: Services) -> Reference:
    default = services.settings.default_model
    if not default:
        raise NotFoundError(
            "no default model is set; use POST /models/{name}/predict or start the server "
            "with MODELPORT_DEFAULT_MODEL"
        )
    return parse_reference(default)


async def handle_predict(
    services: Services, reference: Reference, body: bytes, content_type: str
) -> Reply:
    """``{"features": [[...]]}`` → ``{"prediction": [...]}`` (the Flask tutorial's JSON)."""
    document = json_object(body, content_type)
    if "features" not in document:
        raise InvalidInputError('the body needs a "features" field: {"features": [[...], ...]}')
    features = rows_from_json(document["features"])
    response = await services.dataplane.predict(reference, features)
    return Reply(
        dump_json({"prediction": json_ready(response.outputs[0].data)}),
        headers={
            "X-Model-Name": response.model_name,
            "X-Model-Version": str(response.model_version),
        },
    )


async def handle_infer(
    services: Services, reference: Reference, body: bytes, content_type: str
) -> Reply:
    """Open Inference Protocol V2 JSON inference."""
    started = time.perf_counter_ns()
    request = decode_request(json_object(body, content_type))
    request.decode_ns = time.perf_counter_ns() - started
    response = await services.dataplane.infer(reference, request)
    started = time.perf_counter_ns()
    reply = Reply(dump_json(encode_response(response)))
    services.dataplane.record_output_encoding(response, time.perf_counter_ns() - started)
    return reply
