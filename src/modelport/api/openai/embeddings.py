"""``POST /v1/embeddings``, as OpenAI's API answers it, for ModelPort's embedding models.

A request becomes one DataPlane call with its texts as the ``text`` input, so texts of
concurrent requests share the model's predict calls (the DataPlane batches them). Any
version whose signature takes one BYTES input and gives an ``embedding`` output
``[-1, dim]`` (FP32) is an embedding model; its ``tokens`` output, when it has one, gives
the usage counts. ``dimensions`` keeps the first components of each vector (Matryoshka
style) and, for a model whose vectors are normalized, normalizes them again.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from modelport.api.auth import require
from modelport.api.handlers import Reply, model_headers, off_loop_if_large
from modelport.api.openai.documents import read_document
from modelport.api.openai.embedding_request import EmbeddingRequest, parse_embedding_request
from modelport.api.rest.encoding import dump_json, json_ready, reply_response
from modelport.api.state import services_of
from modelport.errors import InvalidInputError
from modelport.registry.references import Reference
from modelport.serving.inference import InferenceRequest, Tensor
from modelport.types import Datatype, Principal, Scope, VersionInfo

router = APIRouter(prefix="/v1", tags=["openai"])


@router.post("/embeddings", summary="OpenAI embeddings: one vector per input text")
async def create_embeddings(request: Request, _: Principal = require(Scope.PREDICT)) -> Response:
    services = services_of(request)
    document = await read_document(request, '{"model": "...", "input": "..."}')
    call = parse_embedding_request(document)
    version = await services.dataplane.resolve(call.reference)
    width = embedding_width(version)
    if call.dimensions is not None and call.dimensions > width:
        raise InvalidInputError(
            f"'dimensions' is {call.dimensions} but model '{call.model}' gives vectors of "
            f"{width} dimensions; ask for at most {width}"
        )
    texts = np.empty(len(call.texts), dtype=object)
    texts[:] = call.texts
    outputs = ["embedding"]
    if any(spec.name == "tokens" for spec in version.signature.outputs):
        outputs.append("tokens")
    inference = InferenceRequest(
        inputs=[Tensor("text", Datatype.BYTES, [len(texts)], texts)], outputs=outputs
    )
    # The version resolved above answers (its width was checked), even if an alias moves.
    pinned = Reference(version.model, version=version.version)
    response = await services.dataplane.infer(pinned, inference)
    vectors = response.outputs[0].data
    tokens = int(response.outputs[1].data.sum()) if len(outputs) > 1 else 0
    if call.dimensions is not None:
        vectors = shortened(vectors, call.dimensions, bool(version.params.get("normalized")))
    answer = await off_loop_if_large(
        vectors.nbytes, encoded_answer, call, vectors.astype(np.float32, copy=False), tokens
    )
    return reply_response(
        Reply(answer, raw_headers=model_headers(response.model_name, response.model_version))
    )


def embedding_width(version: VersionInfo) -> int:
    """The vector width of an embedding model; a clear refusal for any other model."""
    signature = version.signature
    inputs_text = [spec.datatype for spec in signature.inputs] == [Datatype.BYTES]
    for spec in signature.outputs:
        if (
            inputs_text
            and spec.name == "embedding"
            and spec.datatype is Datatype.FP32
            and len(spec.shape) == 2
            and spec.shape[1] > 0
        ):
            return spec.shape[1]
    raise InvalidInputError(
        f"model '{version.model}' (version {version.version}, format {version.format}) is not "
        "an embedding model; /v1/embeddings serves embedding models such as "
        "sentence-transformers folders (push the folder with `modelport models push DIR`)"
    )


def shortened(vectors: np.ndarray, dimensions: int, normalized: bool) -> np.ndarray:
    """The first ``dimensions`` components of each vector, normalized again when the
    model's vectors are."""
    # A copy: the slice may be the model's own (read-only) output, when it is contiguous.
    kept = np.array(vectors[:, :dimensions], dtype=np.float32, order="C", copy=True)
    if normalized:
        norms = np.linalg.norm(kept, axis=1, keepdims=True)
        kept /= np.maximum(norms, 1e-12)
    return kept


def encoded_answer(call: EmbeddingRequest, vectors: np.ndarray, tokens: int) -> bytes:
    """OpenAI's answer: float lists, or base64 of little-endian float32 (what the openai
    SDK asks for by default, and decodes)."""
    data: list[dict[str, Any]]
    if call.encoding_format == "base64":
        raw = np.ascontiguousarray(vectors, dtype="<f4")
        data = [
            {"object": "embedding", "index": i, "embedding": base64.b64encode(row).decode()}
            for i, row in enumerate(raw)
        ]
    else:
        rows = json_ready(np.ascontiguousarray(vectors))
        data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)]
    return dump_json(
        {
            "object": "list",
            "data": data,
            "model": call.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
