"""The inference handlers, free of any web framework: bytes in, bytes out.

Both the FastAPI routes (documented in OpenAPI) and the fast path (``fastpath.py``)
call these, so the two can never disagree.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from modelport.api.body import json_object
from modelport.api.codec import rows_from_json
from modelport.api.rest.encoding import dump_json, json_ready
from modelport.api.state import Services
from modelport.api.tabular import body_kind, tensors_from_body
from modelport.api.v2_codec import (
    OutputChoice,
    decode_raw_request,
    decode_request,
    encode_response,
    stack_columns,
)
from modelport.errors import InvalidInputError, NotFoundError
from modelport.registry.references import Reference, parse_reference
from modelport.serving.batching import ClientGone
from modelport.serving.dataplane import RowsCall
from modelport.serving.inference import InferenceRequest, Tensor
from modelport.serving.model_cache import ServedModel
from modelport.types import Signature


@dataclass
class Reply:
    body: bytes
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"
    raw_headers: tuple[tuple[bytes, bytes], ...] = ()
    """Headers already encoded (lower-case names), sent as they are."""


@functools.lru_cache(maxsize=4096)
def model_headers(name: str, version: int) -> tuple[tuple[bytes, bytes], ...]:
    """``X-Model-Name`` and ``X-Model-Version``: which version answered."""
    return ((b"x-model-name", name.encode()), (b"x-model-version", str(version).encode()))


@dataclass(frozen=True)
class RequestMeta:
    """The request headers the handlers care about."""

    content_type: str = ""
    inference_header_length: str | None = None
    client_gone: ClientGone | None = None
    """Completes when the client disconnects: its queued rows are then dropped."""
    waited: float = 0.0
    """Seconds the request waited in the server, read but not yet parsed (a flood defers
    parsing to later turns of the event loop); they count against its deadline."""


def default_reference(services: Services) -> Reference:
    default = services.settings.default_model
    if not default:
        raise NotFoundError(
            "no default model is set; use POST /models/{name}/predict or start the server "
            "with MODELPORT_DEFAULT_MODEL"
        )
    return parse_reference(default)


async def handle_predict(
    services: Services, reference: Reference, body: bytes, meta: RequestMeta
) -> Reply:
    """``{"features": [[...]]}`` → ``{"prediction": [...]}`` (the Flask tutorial's JSON);
    ``instances`` and MLflow's ``dataframe_split``/``dataframe_records``/``inputs`` bodies
    answer ``{"predictions": [...]}`` as KServe V1 and MLflow do."""
    call = start_predict(services, reference, body, meta.content_type, meta.waited)
    if call is not None:
        await call.wait(meta.client_gone)
        return predict_reply(call)
    dataplane = services.dataplane
    version = await dataplane.resolve(reference)
    document, kind, inputs = await off_loop_if_large(
        len(body), _decode_tabular, body, meta.content_type, version.signature
    )
    request = InferenceRequest(inputs=inputs, parameters=_params(document.get("params")))
    response = await dataplane.infer(reference, request, meta.client_gone, meta.waited)
    key = "prediction" if kind == "features" else "predictions"
    return Reply(
        dump_json({key: json_ready(response.outputs[0].data)}),
        raw_headers=model_headers(response.model_name, response.model_version),
    )


def start_predict(
    services: Services, reference: Reference, body: bytes, content_type: str, waited: float = 0.0
) -> RowsCall | None:
    """The tutorial's body for a loaded one-input numeric model, queued without awaiting
    anything (``predict_reply`` once its future is done); None when ``handle_predict``'s
    general path must take the request. Raises what the request gets as an error."""
    dataplane = services.dataplane
    served = _short_path_model(services, reference)
    if served is None or len(body) >= OFF_LOOP_BYTES:
        return None
    admission = None
    if b'"params"' not in body:  # no per-request timeout: the server's default applies
        admission = dataplane.admit_row(served, waited)  # overloaded: say so before decoding
    document = json_object(body, content_type)
    if len(document) != 1 or "features" not in document:
        return None
    rows = rows_from_json(document["features"])
    return dataplane.start_rows(served, rows, admission, waited)


def refuse_if_overloaded(services: Services, reference: Reference, waited: float = 0.0) -> None:
    """Refuse at once (503), before its body is even read, a /predict request for a
    loaded version whose queue could not take one more row."""
    served = _short_path_model(services, reference)
    if served is not None:
        services.dataplane.admit_row(served, waited)


def _short_path_model(services: Services, reference: Reference) -> ServedModel | None:
    """The loaded version ``reference`` names, if it takes row matrices directly."""
    served = services.dataplane.served_now(reference)
    return served if served is not None and served.row_input is not None else None


def predict_reply(call: RowsCall) -> Reply:
    """The reply to a ``start_predict`` call whose future is done (raises its error)."""
    result = call.outcome()
    version = call.served.version
    return Reply(
        dump_json({"prediction": json_ready(result)}),
        raw_headers=model_headers(version.model, version.version),
    )


OFF_LOOP_BYTES = 256 * 1024
"""Bodies at least this large are decoded in a worker thread, so that one big request
cannot stall every other request (health checks included) on the event loop."""

T = TypeVar("T")


async def off_loop_if_large(size: int, work: Callable[..., T], *args: Any) -> T:
    if size >= OFF_LOOP_BYTES:
        return await asyncio.to_thread(work, *args)
    return work(*args)


def _decode_tabular(
    body: bytes, content_type: str, signature: Signature
) -> tuple[dict[str, Any], str, list[Tensor]]:
    document = json_object(body, content_type)
    kind = body_kind(document)
    return document, kind, tensors_from_body(kind, document[kind], signature)


def _params(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError('"params" must be an object')
    return value


def binary_header_length(value: str | None, body_length: int) -> int | None:
    """The JSON header's length from ``Inference-Header-Content-Length`` (None: no header)."""
    if value is None:
        return None
    if not (value.strip().isascii() and value.strip().isdigit()):
        raise InvalidInputError("Inference-Header-Content-Length must be a non-negative integer")
    length = int(value)
    if length > body_length:
        raise InvalidInputError(
            f"Inference-Header-Content-Length {value[:24]} is larger than the body "
            f"({body_length} bytes)"
        )
    return length


async def _decode_infer(
    services: Services, reference: Reference, body: bytes, meta: RequestMeta
) -> tuple[InferenceRequest, OutputChoice]:
    header_length = binary_header_length(meta.inference_header_length, len(body))
    if header_length is None:
        document = await off_loop_if_large(len(body), json_object, body, meta.content_type)
        return await off_loop_if_large(len(body), decode_request, document)
    if header_length == 0:
        version = await services.dataplane.resolve(reference)
        if len(version.signature.inputs) != 1:
            raise InvalidInputError("a raw binary request needs a model with exactly one input")
        spec = version.signature.inputs[0]
        request = decode_raw_request(body, spec.name, spec.datatype, spec.shape)
        return request, OutputChoice(None, {}, binary_default=True)
    document = json_object(body[:header_length], "application/json")
    binary = memoryview(body)[header_length:]
    return await off_loop_if_large(header_length, decode_request, document, binary)


async def handle_infer(
    services: Services, reference: Reference, body: bytes, meta: RequestMeta
) -> Reply:
    """Open Inference Protocol V2 inference: JSON tensors or the binary tensor extension."""
    started = time.perf_counter_ns()
    request, choice = await _decode_infer(services, reference, body, meta)
    if request.parameters.get("content_type") == "pd":
        version = await services.dataplane.resolve(reference)
        specs = version.signature.inputs
        if len(specs) == 1 and len(request.inputs) > 1:
            stack_columns(request, specs[0].name)
    request.decode_ns = time.perf_counter_ns() - started
    response = await services.dataplane.infer(reference, request, meta.client_gone, meta.waited)
    started = time.perf_counter_ns()
    header, chunks = encode_response(response, choice)
    header_bytes = await off_loop_if_large(len(body), dump_json, header)
    if chunks:
        reply = Reply(
            b"".join([header_bytes, *chunks]),
            headers={"Inference-Header-Content-Length": str(len(header_bytes))},
            media_type="application/octet-stream",
        )
    else:
        reply = Reply(header_bytes)
    services.dataplane.record_output_encoding(response, time.perf_counter_ns() - started)
    return reply
