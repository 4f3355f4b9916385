"""One DataPlane call per request, whatever the protocol.

It resolves the reference (cached until the registry changes), gets the loaded version
from the model cache, validates the input against the signature, and submits the rows
to the model's batcher.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from modelport.errors import InvalidInputError
from modelport.registry import Registry
from modelport.registry.references import Reference
from modelport.runtimes.dtypes import datatype_of
from modelport.serving.inference import InferenceRequest, InferenceResponse, Tensor
from modelport.serving.model_cache import ModelCache, ServedModel
from modelport.serving.validation import check_features, check_requested_outputs
from modelport.types import VersionInfo


@dataclass
class Prediction:
    version: VersionInfo
    outputs: dict[str, np.ndarray]


class DataPlane:
    """Resolve → load once → validate → batch → predict."""

    def __init__(self, registry: Registry, models: ModelCache) -> None:
        self.registry = registry
        self.models = models
        self._resolved: dict[Reference, tuple[int, VersionInfo]] = {}

    async def resolve(self, reference: Reference) -> VersionInfo:
        generation = self.registry.generation
        cached = self._resolved.get(reference)
        if cached is not None and cached[0] == generation:
            return cached[1]
        version = await asyncio.to_thread(self.registry.resolve, reference)
        if len(self._resolved) > 10_000:
            self._resolved.clear()
        self._resolved[reference] = (generation, version)
        return version

    async def served(self, reference: Reference) -> ServedModel:
        return await self.models.get(await self.resolve(reference))

    async def predict(
        self,
        reference: Reference,
        features: np.ndarray,
        outputs: frozenset[str] = frozenset({"predict"}),
    ) -> Prediction:
        return await self._predict(await self.served(reference), features, outputs)

    @staticmethod
    async def _predict(
        served: ServedModel, features: np.ndarray, outputs: frozenset[str]
    ) -> Prediction:
        rows = check_features(served.version, features)
        results = await served.batcher.submit(rows, outputs)
        return Prediction(served.version, results)

    async def infer(self, reference: Reference, request: InferenceRequest) -> InferenceResponse:
        served = await self.served(reference)
        signature = served.version.signature
        if len(request.inputs) != len(signature.inputs):
            expected = ", ".join(f"'{spec.name}'" for spec in signature.inputs)
            raise InvalidInputError(
                f"model '{served.version.model}' takes {len(signature.inputs)} input(s) "
                f"({expected}), the request has {len(request.inputs)}"
            )
        requested = check_requested_outputs(signature, request.outputs)
        prediction = await self._predict(served, request.inputs[0].data, frozenset(requested))
        tensors = [
            Tensor(
                name=name,
                datatype=datatype_of(prediction.outputs[name].dtype),
                shape=list(prediction.outputs[name].shape),
                data=prediction.outputs[name],
            )
            for name in requested
        ]
        return InferenceResponse(
            model_name=served.version.model,
            model_version=served.version.version,
            outputs=tensors,
            id=request.id,
        )

    async def close(self) -> None:
        await self.models.close()
