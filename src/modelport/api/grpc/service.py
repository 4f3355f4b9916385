"""``inference.GRPCInferenceService``: the same DataPlane, auth and errors as REST.

Every RPC but ServerLive and ServerReady needs the ``authorization: Bearer <key>``
metadata, checked by the same ``authorize`` as the REST routes.

The service runs on gRPC's synchronous server: its thread pool takes many calls at once
(grpc.aio hands them to the event loop one by one, so every call would be predicted
alone). Each worker thread decodes its request and encodes its response, and sends the
DataPlane work to the server's event loop, where concurrent calls from gRPC and REST
queue up together and share predict calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import wraps
from typing import Any, TypeVar

import grpc

from modelport.about import VERSION
from modelport.access.roles import role_allows
from modelport.api import v2_codec
from modelport.api.auth import authorize, bearer_key
from modelport.api.grpc.codec import decode_infer_request, encode_infer_response, from_document
from modelport.api.grpc.errors import GRPC_STATUS
from modelport.api.grpc.protocol import inference_pb2 as pb
from modelport.api.grpc.protocol import inference_pb2_grpc as pb_grpc
from modelport.api.rest.v2 import EXTENSIONS
from modelport.api.state import Services
from modelport.errors import ErrorCode, InvalidInputError, ModelPortError
from modelport.registry.references import Reference, parse_version_selector
from modelport.types import Scope

log = logging.getLogger(__name__)
Message = TypeVar("Message")
Result = TypeVar("Result")
Handler = Callable[[Any, Any, grpc.ServicerContext], Message]
GRPC_WORKERS = 64
"""Calls served at once; a ModelStreamInfer stream holds one worker while it is open."""


def _authorization(context: grpc.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


def _abort(context: grpc.ServicerContext, exc: ModelPortError) -> None:
    """End the call with the error's status; overload adds ``retry-after`` (seconds) to
    the trailing metadata, as HTTP's Retry-After."""
    if exc.retry_after is not None:
        context.set_trailing_metadata((("retry-after", str(int(exc.retry_after))),))
    context.abort(GRPC_STATUS[exc.code], exc.message)


def rpc(scope: Scope | None) -> Callable[[Handler[Message]], Handler[Message]]:
    """Authorize ``scope`` (None: public) and turn domain errors into gRPC statuses."""

    def decorate(handler: Handler[Message]) -> Handler[Message]:
        @wraps(handler)
        def wrapper(self: InferenceService, request: Any, context: grpc.ServicerContext) -> Message:
            try:
                if scope is not None:
                    self.authorize(context, scope)
                return handler(self, request, context)
            except ModelPortError as exc:
                _abort(context, exc)
            except Exception:
                log.exception("unexpected error in %s", handler.__name__)
                context.abort(GRPC_STATUS[ErrorCode.INTERNAL], "internal server error")
            raise AssertionError("unreachable")  # context.abort always raises

        wrapper.scope = scope  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _reference(name: str, version: str) -> Reference:
    return parse_version_selector(name, version or None)


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    """The V2 gRPC service over the shared services."""

    def __init__(self, services: Services, loop: asyncio.AbstractEventLoop) -> None:
        self.services = services
        self._loop = loop

    def authorize(self, context: grpc.ServicerContext, scope: Scope) -> None:
        """Check the caller's key: from the key cache in this thread when it can, else on
        the event loop (one round trip fewer per call on the hot path)."""
        header = _authorization(context)
        if not self.services.settings.no_auth:
            hit, principal = self.services.keys.cached(bearer_key(header))
            if hit and principal is not None and role_allows(principal.role, scope):
                self.services.limiter.check(principal)
                return
        self.on_loop(authorize(self.services, header, scope))

    def on_loop(self, work: Coroutine[Any, Any, Result]) -> Result:
        """Run ``work`` on the server's event loop (where the DataPlane lives) and wait."""
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    @rpc(None)
    def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    @rpc(None)
    def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=True)

    @rpc(Scope.PREDICT)
    def ModelReady(self, request: Any, context: Any) -> Any:
        reference = _reference(request.name, request.version)
        ready = self.on_loop(self.services.dataplane.is_ready(reference))
        return pb.ModelReadyResponse(ready=ready)

    @rpc(Scope.PREDICT)
    def ServerMetadata(self, request: Any, context: Any) -> Any:
        return pb.ServerMetadataResponse(name="modelport", version=VERSION, extensions=EXTENSIONS)

    @rpc(Scope.PREDICT)
    def ModelMetadata(self, request: Any, context: Any) -> Any:
        reference = _reference(request.name, request.version)
        version = self.on_loop(self.services.dataplane.resolve(reference))
        return from_document(v2_codec.model_metadata(version), pb.ModelMetadataResponse)

    def _infer(self, request: Any) -> Any:
        if not request.model_name:
            raise InvalidInputError("model_name is required")
        started = time.perf_counter_ns()
        decoded = decode_infer_request(request)
        decoded.decode_ns = time.perf_counter_ns() - started
        reference = _reference(request.model_name, request.model_version)
        dataplane = self.services.dataplane
        response = self.on_loop(dataplane.infer(reference, decoded))
        started = time.perf_counter_ns()
        message = encode_infer_response(response)
        elapsed = time.perf_counter_ns() - started
        self._loop.call_soon_threadsafe(dataplane.record_output_encoding, response, elapsed)
        return message

    @rpc(Scope.PREDICT)
    def ModelInfer(self, request: Any, context: Any) -> Any:
        return self._infer(request)

    def ModelStreamInfer(
        self, requests: Iterator[Any], context: grpc.ServicerContext
    ) -> Iterator[Any]:
        """One response per request; a failing request answers with ``error_message`` and
        the stream goes on."""
        try:
            self.authorize(context, Scope.PREDICT)
        except ModelPortError as exc:
            _abort(context, exc)
        for request in requests:
            try:
                yield pb.ModelStreamInferResponse(infer_response=self._infer(request))
            except ModelPortError as exc:
                yield pb.ModelStreamInferResponse(error_message=exc.message)

    ModelStreamInfer.scope = Scope.PREDICT  # type: ignore[attr-defined]

    @rpc(Scope.PREDICT)
    def ModelStatistics(self, request: Any, context: Any) -> Any:
        reference = _reference(request.name, request.version) if request.name else None
        stats = self.on_loop(self.services.repository.statistics(reference))
        return from_document(v2_codec.encode_statistics(stats), pb.ModelStatisticsResponse)

    @rpc(Scope.PREDICT)
    def RepositoryIndex(self, request: Any, context: Any) -> Any:
        entries = self.on_loop(self.services.repository.index(request.ready))
        return pb.RepositoryIndexResponse(
            models=[
                pb.RepositoryIndexResponse.ModelIndex(
                    name=e.name, version=e.version, state=e.state, reason=e.reason
                )
                for e in entries
            ]
        )

    @rpc(Scope.WRITE)
    def RepositoryModelLoad(self, request: Any, context: Any) -> Any:
        name = _reference(request.model_name, "").name
        self.on_loop(self.services.repository.load(name))
        return pb.RepositoryModelLoadResponse()

    @rpc(Scope.WRITE)
    def RepositoryModelUnload(self, request: Any, context: Any) -> Any:
        name = _reference(request.model_name, "").name
        self.on_loop(self.services.repository.unload(name))
        return pb.RepositoryModelUnloadResponse()


def start_grpc_server(
    services: Services, host: str, port: int, loop: asyncio.AbstractEventLoop
) -> grpc.Server:
    """Serve the V2 gRPC service on ``host:port``; DataPlane work runs on ``loop``. With
    several server processes each binds the port (SO_REUSEPORT) and the kernel spreads
    the connections; a single process refuses a port another program holds."""
    limit = services.settings.max_request_bytes
    server = grpc.server(
        ThreadPoolExecutor(GRPC_WORKERS, thread_name_prefix="modelport-grpc"),
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", int(services.settings.workers > 1)),
        ],
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(  # type: ignore[no-untyped-call]
        InferenceService(services, loop), server
    )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if server.add_insecure_port(address) == 0:
        raise OSError(f"cannot listen for gRPC on {address}")
    server.start()
    return server
