"""``inference.GRPCInferenceService``: the same DataPlane, auth and errors as REST.

Every RPC but ServerLive and ServerReady needs the ``authorization: Bearer <key>``
metadata, checked by the same ``authorize`` as the REST routes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar

import grpc

from modelport.about import VERSION
from modelport.api import v2_codec
from modelport.api.auth import authorize
from modelport.api.grpc.codec import decode_infer_request, encode_infer_response, from_document
from modelport.api.grpc.errors import GRPC_STATUS
from modelport.api.grpc.protocol import inference_pb2 as pb
from modelport.api.grpc.protocol import inference_pb2_grpc as pb_grpc
from modelport.api.rest.v2 import EXTENSIONS
from modelport.api.state import Services
from modelport.errors import ErrorCode, ModelPortError
from modelport.registry.references import Reference, parse_version_selector
from modelport.types import Scope

log = logging.getLogger(__name__)
Message = TypeVar("Message")
Handler = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[Message]]


def _authorization(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


def rpc(scope: Scope | None) -> Callable[[Handler[Message]], Handler[Message]]:
    """Authorize ``scope`` (None: public) and turn domain errors into gRPC statuses."""

    def decorate(handler: Handler[Message]) -> Handler[Message]:
        @wraps(handler)
        async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Message:
            try:
                if scope is not None:
                    await authorize(self.services, _authorization(context), scope)
                return await handler(self, request, context)
            except ModelPortError as exc:
                await context.abort(GRPC_STATUS[exc.code], exc.message)
            except Exception:
                log.exception("unexpected error in %s", handler.__name__)
                await context.abort(GRPC_STATUS[ErrorCode.INTERNAL], "internal server error")
            raise AssertionError("unreachable")  # context.abort always raises

        wrapper.scope = scope  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _reference(name: str, version: str) -> Reference:
    return parse_version_selector(name, version or None)


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    """The V2 gRPC service over the shared services."""

    def __init__(self, services: Services) -> None:
        self.services = services

    @rpc(None)
    async def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    @rpc(None)
    async def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=True)

    @rpc(Scope.PREDICT)
    async def ModelReady(self, request: Any, context: Any) -> Any:
        dataplane = self.services.dataplane
        version = await dataplane.resolve(_reference(request.name, request.version))
        try:
            await dataplane.served(_reference(version.model, str(version.version)))
        except ModelPortError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    @rpc(Scope.PREDICT)
    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        return pb.ServerMetadataResponse(name="modelport", version=VERSION, extensions=EXTENSIONS)

    @rpc(Scope.PREDICT)
    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        version = await self.services.dataplane.resolve(_reference(request.name, request.version))
        return from_document(v2_codec.model_metadata(version), pb.ModelMetadataResponse)

    async def _infer(self, request: Any) -> Any:
        if not request.model_name:
            raise_invalid("model_name is required")
        started = time.perf_counter_ns()
        decoded = decode_infer_request(request)
        decoded.decode_ns = time.perf_counter_ns() - started
        reference = _reference(request.model_name, request.model_version)
        dataplane = self.services.dataplane
        response = await dataplane.infer(reference, decoded)
        started = time.perf_counter_ns()
        message = encode_infer_response(response)
        dataplane.record_output_encoding(response, time.perf_counter_ns() - started)
        return message

    @rpc(Scope.PREDICT)
    async def ModelInfer(self, request: Any, context: Any) -> Any:
        return await self._infer(request)

    async def ModelStreamInfer(
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        """One response per request; a failing request answers with ``error_message`` and
        the stream goes on."""
        try:
            await authorize(self.services, _authorization(context), Scope.PREDICT)
        except ModelPortError as exc:
            await context.abort(GRPC_STATUS[exc.code], exc.message)
        async for request in requests:
            try:
                yield pb.ModelStreamInferResponse(infer_response=await self._infer(request))
            except ModelPortError as exc:
                yield pb.ModelStreamInferResponse(error_message=exc.message)

    ModelStreamInfer.scope = Scope.PREDICT  # type: ignore[attr-defined]

    @rpc(Scope.PREDICT)
    async def ModelStatistics(self, request: Any, context: Any) -> Any:
        reference = _reference(request.name, request.version) if request.name else None
        stats = await self.services.repository.statistics(reference)
        document = v2_codec.encode_statistics(stats)
        return from_document(document, pb.ModelStatisticsResponse)

    @rpc(Scope.PREDICT)
    async def RepositoryIndex(self, request: Any, context: Any) -> Any:
        entries = await self.services.repository.index(request.ready)
        return pb.RepositoryIndexResponse(
            models=[
                pb.RepositoryIndexResponse.ModelIndex(
                    name=e.name, version=e.version, state=e.state, reason=e.reason
                )
                for e in entries
            ]
        )

    @rpc(Scope.WRITE)
    async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:
        await self.services.repository.load(_reference(request.model_name, "").name)
        return pb.RepositoryModelLoadResponse()

    @rpc(Scope.WRITE)
    async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:
        await self.services.repository.unload(_reference(request.model_name, "").name)
        return pb.RepositoryModelUnloadResponse()


def raise_invalid(message: str) -> None:
    from modelport.errors import InvalidInputError

    raise InvalidInputError(message)


async def start_grpc_server(services: Services, host: str, port: int) -> grpc.aio.Server:
    """Serve the V2 gRPC service on ``host:port`` in the running event loop."""
    limit = services.settings.max_request_bytes
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
        ]
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(  # type: ignore[no-untyped-call]
        InferenceService(services), server
    )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if server.add_insecure_port(address) == 0:
        raise OSError(f"cannot listen for gRPC on {address}")
    await server.start()
    return server
