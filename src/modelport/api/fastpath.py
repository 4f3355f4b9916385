"""The inference fast path: a thin ASGI layer in front of the FastAPI app.

FastAPI's routing and dependency machinery costs more per request than a one-row
prediction, so the hot routes (``/predict``, ``/models/{ref}/predict``, V2 ``infer``) are
matched here first and answered by the same framework-free handlers that back their
documented FastAPI routes. Every hot route declares its scope, checked by the same
``authorize`` as every other route; everything else falls through to FastAPI.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from modelport.api.auth import authorize, authorize_now
from modelport.api.body import too_large_message
from modelport.api.errors import error_body
from modelport.api.handlers import (
    Reply,
    RequestMeta,
    default_reference,
    handle_infer,
    handle_predict,
    refuse_if_overloaded,
    start_predict,
)
from modelport.api.state import Services
from modelport.errors import ErrorCode, InvalidInputError, ModelPortError, TooLargeError
from modelport.registry.references import Reference, parse_reference, parse_version_selector
from modelport.serving.batching import ClientGone
from modelport.serving.dataplane import RowsCall
from modelport.types import Scope

log = logging.getLogger(__name__)

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
Handler = Callable[[Services, Reference, bytes, RequestMeta], Awaitable[Reply]]
Resolver = Callable[[Services, list[str]], Reference]


@dataclass(frozen=True)
class HotRoute:
    """A POST route served by the fast path; ``{...}`` segments are parameters."""

    path: str
    scope: Scope
    handler: Handler
    reference: Resolver

    @cached_property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.strip("/").split("/"))


HOT_ROUTES: tuple[HotRoute, ...] = (
    HotRoute("/predict", Scope.PREDICT, handle_predict, lambda s, _: default_reference(s)),
    HotRoute("/invocations", Scope.PREDICT, handle_predict, lambda s, _: default_reference(s)),
    HotRoute(
        "/models/{ref}/predict",
        Scope.PREDICT,
        handle_predict,
        lambda _, params: parse_reference(params[0]),
    ),
    HotRoute(
        "/models/{name}/versions/{version}/predict",
        Scope.PREDICT,
        handle_predict,
        lambda _, params: parse_version_selector(params[0], params[1]),
    ),
    HotRoute(
        "/v2/models/{name}/infer",
        Scope.PREDICT,
        handle_infer,
        lambda _, params: parse_version_selector(params[0], None),
    ),
    HotRoute(
        "/v2/models/{name}/versions/{version}/infer",
        Scope.PREDICT,
        handle_infer,
        lambda _, params: parse_version_selector(params[0], params[1]),
    ),
)


def _is_upload(scope: dict[str, Any]) -> bool:
    parts = scope["path"].strip("/").split("/")
    return (
        scope["method"] == "POST"
        and len(parts) == 5
        and parts[:3] == ["api", "v1", "models"]
        and parts[4] == "versions"
    )


class _ClientGone(Exception):
    pass


_MATCHED: dict[str, tuple[HotRoute, list[str]]] = {}
"""Recent hot paths and their route (bounded: paths come from clients)."""


def match_hot_route(path: str) -> tuple[HotRoute, list[str]] | None:
    matched = _MATCHED.get(path)
    if matched is None:
        matched = _match_route(path)
        if matched is not None:
            if len(_MATCHED) >= 4096:
                _MATCHED.clear()
            _MATCHED[path] = matched
    return matched


def _match_route(path: str) -> tuple[HotRoute, list[str]] | None:
    parts = path.strip("/").split("/")
    for route in HOT_ROUTES:
        segments = route.segments
        if len(segments) != len(parts):
            continue
        params: list[str] = []
        for want, got in zip(segments, parts, strict=True):
            if want.startswith("{"):
                if not got:
                    break
                params.append(got)
            elif want != got:
                break
        else:
            return route, params
    return None


async def _read_body(receive: Any, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLargeError(too_large_message(limit))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _send(
    send: Any,
    status: int,
    body: bytes,
    headers: dict[str, str],
    media_type: str = "application/json",
    encoded: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    raw_headers = [
        (b"content-type", media_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *encoded,
    ]
    if headers:
        raw_headers.extend((k.lower().encode(), v.encode()) for k, v in headers.items())
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def _send_error(
    send: Any, path: str, code: ErrorCode, message: str, retry_after: float | None = None
) -> None:
    status, body, headers = error_body(path, code, message, retry_after)
    await _send(send, status, body, headers)


def failure_reply(path: str, exc: Exception) -> Reply:
    """The reply to a hot route that raised ``exc``: its error JSON, or a 500 (logged)."""
    if isinstance(exc, ModelPortError):
        status, body, headers = error_body(path, exc.code, exc.message, exc.retry_after)
    else:
        log.error("unexpected error on POST %s", path, exc_info=exc)
        message = "internal server error; see the server log"
        status, body, headers = error_body(path, ErrorCode.INTERNAL, message)
    # A batcher's future may keep this exception; its traceback (the frames it passed
    # through, which hold that future) would make a reference cycle per failed request,
    # left to the garbage collector, whose full passes stall the loop under overload.
    exc.__traceback__ = None
    return Reply(body, status, headers)


def disconnect_of(receive: Any) -> ClientGone:
    """A wait that completes when the client closes the connection (the body was read)."""

    async def client_gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    return client_gone


class FastPath:
    """ASGI app: serves ``HOT_ROUTES`` directly, passes everything else to ``app``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self._fall_through(scope, receive, send)
            return
        matched = match_hot_route(scope["path"])
        if matched is None:
            await self._fall_through(scope, receive, send)
            return
        route, params = matched
        try:
            reply = await self._handle(scope, receive, route, params)
        except _ClientGone:
            return
        except Exception as exc:
            reply = failure_reply(scope["path"], exc)
        await _send(
            send, reply.status, reply.body, reply.headers, reply.media_type, reply.raw_headers
        )

    async def _fall_through(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """FastAPI's routes, with request bodies bounded (uploads have their own limit)."""
        if scope["type"] != "http" or _is_upload(scope):
            await self.app(scope, receive, send)
            return
        limit = self.app.state.services.settings.max_request_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) <= limit:
            await self.app(scope, receive, send)
            return
        if declared is None and scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        # Over the limit, or a body of unknown length: read it here, within the limit.
        try:
            body = await _read_body(receive, limit) if declared is None else b""
            if declared is not None:
                raise TooLargeError(too_large_message(limit))
        except _ClientGone:
            return
        except ModelPortError as exc:
            await _send_error(send, scope["path"], exc.code, exc.message)
            return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _handle(
        self, scope: dict[str, Any], receive: Any, route: HotRoute, params: list[str]
    ) -> Reply:
        services = self.services
        head = HotHeaders.of(scope["headers"])
        reference = await self._checked(route, params, head, authorized=False)
        body = await _read_body(receive, services.settings.max_request_bytes)
        return await route.handler(services, reference, body, head.meta(disconnect_of(receive)))

    async def _checked(
        self, route: HotRoute, params: list[str], head: HotHeaders, authorized: bool
    ) -> Reference:
        """What every hot request passes before its handler, in this order: the caller,
        the declared length, the reference."""
        services = self.services
        if not authorized:
            await authorize(services, head.authorization, route.scope)
        check_declared_length(head.content_length, services.settings.max_request_bytes)
        return route.reference(services, params)

    async def answer(
        self,
        route: HotRoute,
        params: list[str],
        head: HotHeaders,
        body: bytes,
        client_gone: ClientGone | None,
        authorized: bool = False,
        waited: float = 0.0,
    ) -> Reply:
        """A hot route's reply to a request already read whole (the direct HTTP protocol,
        ``modelport.server.protocol``): the same checks in the same order as ``_handle``;
        ``authorized`` when ``authorize_now`` said yes already; ``waited``: seconds the
        request waited unparsed (``RequestMeta.waited``)."""
        reference = await self._checked(route, params, head, authorized)
        meta = head.meta(client_gone, waited)
        return await route.handler(self.services, reference, body, meta)

    def screen_now(
        self, route: HotRoute, params: list[str], head: HotHeaders, waited: float = 0.0
    ) -> Screened:
        """What can be checked before the body is read, without I/O, in ``answer``'s
        order: the caller (from the key cache), the declared length, the reference, and
        for /predict whether the model's queue can take the request. Raises what the
        request gets as its answer (401, 403, 429, 413, 400, 503)."""
        services = self.services
        if authorize_now(services, head.authorization, route.scope) is None:
            return Screened(authorized=False)  # the key is looked up by ``answer``
        check_declared_length(head.content_length, services.settings.max_request_bytes)
        if route.handler is not handle_predict:
            return Screened(authorized=True)
        reference = route.reference(services, params)
        refuse_if_overloaded(services, reference, waited)
        return Screened(authorized=True, predict=reference)

    def start_now(
        self,
        route: HotRoute,
        params: list[str],
        head: HotHeaders,
        body: bytes,
        screened: Screened,
        waited: float = 0.0,
    ) -> RowsCall | None:
        """After ``screen_now`` let it through: the request queued without awaiting
        anything when it can be (``predict_reply`` answers it once its future is done),
        else None (``answer`` takes it). The body may come long after the headers: the
        version and its queue are asked again now, not taken from the screening."""
        if screened.predict is None:
            return None
        return start_predict(self.services, screened.predict, body, head.content_type or "", waited)

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services


@dataclass(frozen=True)
class Screened:
    """What ``FastPath.screen_now`` found before the body was read."""

    authorized: bool
    predict: Reference | None = None
    """For /predict routes let through: the model reference."""


@dataclass(frozen=True)
class HotHeaders:
    """The request headers a hot route reads."""

    authorization: str | None = None
    content_type: str | None = None
    content_length: bytes | None = None
    inference_header_length: str | None = None
    transfer_encoding: bool = False

    @classmethod
    def of(cls, headers: list[tuple[bytes, bytes]]) -> HotHeaders:
        authorization = content_type = content_length = header_length = None
        transfer_encoding = False
        for name, value in headers:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                content_length = value
            elif name == b"inference-header-content-length":
                header_length = value.decode("latin-1")
            elif name == b"transfer-encoding":
                transfer_encoding = True
        return cls(authorization, content_type, content_length, header_length, transfer_encoding)

    def meta(self, client_gone: ClientGone | None, waited: float = 0.0) -> RequestMeta:
        return RequestMeta(
            self.content_type or "", self.inference_header_length, client_gone, waited
        )


def check_declared_length(content_length: bytes | None, limit: int) -> None:
    if content_length is not None:
        if not (content_length.isascii() and content_length.isdigit()):
            raise InvalidInputError("Content-Length must be a non-negative integer")
        if int(content_length) > limit:
            raise TooLargeError(too_large_message(limit))
