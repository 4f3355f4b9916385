"""One DataPlane call per request, whatever the protocol.

It resolves the reference (cached until the registry changes), gets the loaded version
from the model cache, validates the inputs against the signature, submits them to the
model's batcher and keeps the statistics.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

import numpy as np

from modelport.errors import InvalidInputError, ModelPortError, UnavailableError
from modelport.registry import Registry
from modelport.registry.references import Reference
from modelport.runtimes.base import Tensors
from modelport.serving.batching import Admission, ClientGone, Pending
from modelport.serving.inference import InferenceRequest, InferenceResponse, tensor_of
from modelport.serving.model_cache import ModelCache, ServedModel
from modelport.serving.validation import check_inputs, check_requested_outputs, check_rows
from modelport.types import VersionInfo


class DataPlane:
    """Resolve → load once → validate → batch → predict."""

    def __init__(
        self, registry: Registry, models: ModelCache, resolve_ttl_s: float | None = None
    ) -> None:
        self.registry = registry
        self.models = models
        self._resolve_ttl = resolve_ttl_s
        """Other processes change the registry too: re-read resolutions this often."""
        self._resolved: dict[Reference, tuple[int, float, VersionInfo]] = {}
        self._unloaded: set[str] = set()
        """Models unloaded explicitly (repository extension): not served until loaded."""

    def resolved(self, reference: Reference) -> VersionInfo | None:
        """The cached resolution of ``reference``, while still valid (no I/O)."""
        cached = self._resolved.get(reference)
        if (
            cached is not None
            and cached[0] == self.registry.generation
            and time.monotonic() < cached[1]
        ):
            return cached[2]
        return None

    async def resolve(self, reference: Reference) -> VersionInfo:
        cached = self.resolved(reference)
        if cached is not None:
            return cached
        generation = self.registry.generation
        version = await asyncio.to_thread(self.registry.resolve, reference)
        if len(self._resolved) > 10_000:
            self._resolved.clear()
        ttl = math.inf if self._resolve_ttl is None else self._resolve_ttl
        expires = time.monotonic() + ttl
        self._resolved[reference] = (generation, expires, version)
        return version

    async def served(self, reference: Reference) -> ServedModel:
        if reference.name in self._unloaded:
            raise UnavailableError(self.unloaded_reason(reference.name))
        served = self.served_now(reference)  # the usual case, without awaiting anything
        if served is not None:
            return served
        return await self.models.get(await self.resolve(reference))

    async def is_ready(self, reference: Reference) -> bool:
        """Whether the version ``reference`` names can serve now (loading it if needed);
        an unknown model raises NotFoundError."""
        version = await self.resolve(reference)
        try:
            await self.served(Reference(version.model, version=version.version))
        except ModelPortError:
            return False
        return True

    def unloaded_reason(self, name: str) -> str:
        if name in self._unloaded:
            return (
                f"model '{name}' was unloaded; load it again with "
                f"POST /v2/repository/models/{name}/load"
            )
        return "not loaded yet (models load on first use)"

    async def registry_model(self, name: str) -> None:
        """Raise NotFoundError unless ``name`` is a registered model."""
        await asyncio.to_thread(self.registry.get_model, name)

    async def load(self, reference: Reference) -> ServedModel:
        self._unloaded.discard(reference.name)
        return await self.served(reference)

    async def unload(self, name: str) -> None:
        self._unloaded.add(name)
        await self.models.unload(name)

    async def infer(
        self,
        reference: Reference,
        request: InferenceRequest,
        client_gone: ClientGone | None = None,
        waited: float = 0.0,
    ) -> InferenceResponse:
        """Run one request; outputs come back in the order requested (or the defaults).
        ``client_gone`` completes if the caller disconnects (its queued rows are dropped);
        ``waited``: seconds the request spent in the server before it was parsed."""
        started = time.perf_counter_ns() - int(waited * 1e9)
        served = await self.served(reference)
        signature = served.version.signature
        try:
            inputs = check_inputs(signature, request.inputs, served.finite_inputs_only)
            if request.outputs:
                names = check_requested_outputs(signature, request.outputs, [])
                wanted = frozenset(names)
            else:
                names, wanted = served.default_outputs, served.default_output_set
            timeout = _timeout_parameter(request.parameters) if request.parameters else None
            results = await served.batcher.submit(inputs, wanted, timeout, client_gone, waited)
        except ModelPortError:
            served.stats.failed(time.perf_counter_ns() - started)
            raise
        rows = len(next(iter(inputs.values()))) if inputs else 0
        served.stats.succeeded(time.perf_counter_ns() - started, rows)
        if request.decode_ns:
            served.stats.compute_input.add(request.decode_ns)
        return InferenceResponse(
            model_name=served.version.model,
            model_version=served.version.version,
            outputs=[tensor_of(name, results[name]) for name in names],
            id=request.id,
        )

    def served_now(self, reference: Reference) -> ServedModel | None:
        """The loaded version ``reference`` names, when known without any I/O."""
        version = self.resolved(reference)
        if version is None or reference.name in self._unloaded:
            return None
        return self.models.current(version)

    def admit_row(self, served: ServedModel, waited: float = 0.0) -> Admission:
        """Refuse at once, before its body is decoded, a request the version's queue could
        not take even with one row (the same answer ``start_rows`` would give later); a
        one-row request then need not be asked again."""
        try:
            return served.batcher.admit(1, waited=waited)
        except ModelPortError:
            served.stats.failed(int(waited * 1e9))
            raise

    def start_rows(
        self,
        served: ServedModel,
        rows: np.ndarray,
        one_row_admission: Admission | None = None,
        waited: float = 0.0,
    ) -> RowsCall:
        """The short path for a row matrix sent to a model with one ``[-1, n]`` numeric
        input (``served.row_input``): the same checks as ``infer``, fewer steps, and no
        waiting: the rows are queued, the returned call's ``future`` completes."""
        started = time.perf_counter_ns() - int(waited * 1e9)
        spec = served.row_input
        assert spec is not None
        try:
            rows = check_rows(spec, rows, served.finite_inputs_only)
            admission = one_row_admission if len(rows) == 1 else None
            item = served.batcher.enqueue(
                {spec.name: rows}, served.default_output_set, None, admission, waited
            )
        except ModelPortError:
            served.stats.failed(time.perf_counter_ns() - started)
            raise
        served.short_path_requests += 1
        return RowsCall(served, item, started)

    def record_output_encoding(self, response: InferenceResponse, ns: int) -> None:
        served = self.models.find(response.model_name, response.model_version)
        if served is not None:
            served.stats.compute_output.add(ns)

    async def close(self) -> None:
        await self.models.close()


def _timeout_parameter(parameters: dict[str, object]) -> float | None:
    """The V2 request parameter ``timeout``, in microseconds as Triton defines it."""
    value = parameters.get("timeout")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidInputError("parameter 'timeout' must be a positive number of microseconds")
    return value / 1e6


@dataclass(eq=False)
class RowsCall:
    """Rows queued by ``DataPlane.start_rows``; ``outcome()`` once ``future`` is done."""

    served: ServedModel
    item: Pending
    started_ns: int

    @property
    def future(self) -> asyncio.Future[Tensors]:
        return self.item.future

    def outcome(self) -> np.ndarray:
        """The default output's rows, or the request's error (counted either way)."""
        stats = self.served.stats
        try:
            results = self.item.future.result()
        except ModelPortError:
            stats.failed(time.perf_counter_ns() - self.started_ns)
            raise
        stats.succeeded(time.perf_counter_ns() - self.started_ns, self.item.rows)
        return results[self.served.default_outputs[0]]

    async def wait(self, client_gone: ClientGone | None = None) -> None:
        """Until ``future`` is done (see ``Batcher.wait``)."""
        await self.served.batcher.wait(self.item, client_gone)

    def abandon(self) -> None:
        """The client is gone: its rows leave the queue."""
        self.served.batcher.abandon(self.item)
