"""``POST /v1/chat/completions`` and ``POST /v1/completions``, as OpenAI's API answers
them, for ModelPort's text-generation models.

A request is checked, its prompt rendered (chat messages through the tokenizer's chat
template) and tokenized, then handed to the model's generation scheduler, which decodes
it together with every other request in flight (``serving/generation.py``). Answers come
whole or, with ``stream``, as server-sent events ending with ``data: [DONE]``. When the
client goes away (a closed stream, a dropped connection) the request leaves the batch at
the next decoding step, so the model stops generating for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from modelport.api.auth import require
from modelport.api.errors import error_body
from modelport.api.fastpath import disconnect_of
from modelport.api.handlers import model_headers, off_loop_if_large
from modelport.api.openai.completion_request import (
    GenerationRequest,
    parse_chat_request,
    parse_completion_request,
)
from modelport.api.openai.completion_shapes import DONE, AnswerShape, event
from modelport.api.openai.documents import read_document
from modelport.api.rest.encoding import dump_json, header_dict
from modelport.api.state import Services, services_of
from modelport.errors import InvalidInputError, ModelPortError
from modelport.serving.generation import GenerationScheduler
from modelport.serving.generation_requests import Generation
from modelport.serving.model_cache import ServedModel
from modelport.serving.sampling import Sampling
from modelport.serving.text_generators import TextGenerator
from modelport.types import Principal
from modelport.types import Scope as AccessScope

router = APIRouter(prefix="/v1", tags=["openai"])

COMPLETIONS_DEFAULT_MAX_TOKENS = 16
"""OpenAI's default for ``/v1/completions``; chat generates until the model ends (or its
context is full)."""


@router.post("/chat/completions", summary="OpenAI chat completions from a language model")
async def chat_completions(
    request: Request, _: Principal = require(AccessScope.PREDICT)
) -> Response:
    services = services_of(request)
    call = parse_chat_request(await read_document(request, '{"model": "...", ...}'))
    served, scheduler = await _text_model(services, call)
    model = scheduler.model
    messages = list(call.messages)
    prompt = await scheduler.chat_prompt(messages)  # off the loop, with a time limit
    tokens = await off_loop_if_large(len(prompt), model.encode, prompt, False)
    return await _answer(request, served, scheduler, call, [tokens], chat=True)


@router.post("/completions", summary="OpenAI (legacy) completions from a language model")
async def completions(request: Request, _: Principal = require(AccessScope.PREDICT)) -> Response:
    services = services_of(request)
    call = parse_completion_request(await read_document(request, '{"model": "...", ...}'))
    served, scheduler = await _text_model(services, call)
    size = sum(len(prompt) for prompt in call.prompts)
    prompts = await off_loop_if_large(size, _encode_all, scheduler.model, call.prompts)
    return await _answer(request, served, scheduler, call, prompts, chat=False)


async def _text_model(
    services: Services, call: GenerationRequest
) -> tuple[ServedModel, GenerationScheduler]:
    served = await services.dataplane.served(call.reference)
    if served.generation is None:
        version = served.version
        raise InvalidInputError(
            f"model '{call.model}' (version {version.version}, format {version.format}) does "
            "not generate text; /v1/chat/completions and /v1/completions serve causal "
            "language models (a Hugging Face folder pushed with `modelport models push DIR`)"
            + (
                "; embedding models answer on /v1/embeddings"
                if "embedding" in version.format
                else ""
            )
        )
    return served, served.generation


def _encode_all(model: TextGenerator, prompts: tuple[str, ...]) -> list[list[int]]:
    return [model.encode(prompt) for prompt in prompts]


def _sampling(
    call: GenerationRequest, prompts: list[list[int]], context: int, chat: bool
) -> Sampling:
    """The request's sampling settings, with ``max_tokens`` checked against the room the
    longest prompt leaves in the model's context."""
    longest = max(len(prompt) for prompt in prompts)
    if min(len(prompt) for prompt in prompts) == 0:
        raise InvalidInputError("the prompt is empty (0 tokens); send some text")
    if longest >= context:
        raise InvalidInputError(
            f"the prompt has {longest} tokens but this model's context is {context} tokens; "
            "shorten the prompt"
        )
    room = context - longest
    max_tokens = call.max_tokens
    if max_tokens is None:
        max_tokens = room if chat else min(COMPLETIONS_DEFAULT_MAX_TOKENS, room)
    elif max_tokens > room:
        raise InvalidInputError(
            f"max_tokens is {max_tokens}, but this model's context is {context} tokens and the "
            f"prompt takes {longest}: ask for at most {room} tokens"
        )
    return Sampling(max_tokens, call.temperature, call.top_p, call.seed, call.stop)


async def _answer(
    request: Request,
    served: ServedModel,
    scheduler: GenerationScheduler,
    call: GenerationRequest,
    prompts: list[list[int]],
    chat: bool,
) -> Response:
    started = time.perf_counter_ns()
    sampling = _sampling(call, prompts, scheduler.model.context_length, chat)
    generation = scheduler.submit(prompts, call.n, sampling)
    version = served.version
    shape = AnswerShape(chat, call.model, f"{version.model}@{version.version}")
    headers = header_dict(model_headers(version.model, version.version))
    if call.stream:
        stream = _events(shape, generation, call.include_usage, served, started)
        return EventStream(stream, generation.cancel, headers)
    watch = asyncio.ensure_future(disconnect_of(request.receive)())
    watch.add_done_callback(lambda done: _cancel_if_gone(done, generation))
    try:
        results = await generation.result()
    except ModelPortError:
        served.stats.failed(time.perf_counter_ns() - started)
        raise
    finally:
        watch.cancel()
        generation.cancel()  # a no-op once done; stops the work if this task is cancelled
    served.stats.succeeded(time.perf_counter_ns() - started, generation.choices)
    body = dump_json(shape.whole(results, generation))
    return Response(body, media_type="application/json", headers=headers)


def _cancel_if_gone(watch: asyncio.Future[None], generation: Generation) -> None:
    if not watch.cancelled() and watch.exception() is None:
        generation.cancel()


async def _events(
    shape: AnswerShape,
    generation: Generation,
    include_usage: bool,
    served: ServedModel,
    started: int,
) -> AsyncIterator[bytes]:
    for chunk in shape.opening(generation.choices):
        yield event(chunk)
    try:
        async for update in generation.updates():
            for chunk in shape.chunks(update):
                yield event(chunk)
    except ModelPortError as exc:  # the answer has started: the error travels as an event
        served.stats.failed(time.perf_counter_ns() - started)
        _, body, _ = error_body("/v1", exc.code, exc.message)
        yield b"data: " + body + b"\n\n"
        return
    served.stats.succeeded(time.perf_counter_ns() - started, generation.choices)
    if include_usage:
        yield event(shape.usage_chunk(generation))
    yield DONE


class EventStream(StreamingResponse):
    """Server-sent events that call ``on_close`` however the response ends: completed,
    failed, or cut short because the client disconnected."""

    def __init__(
        self, chunks: AsyncIterator[bytes], on_close: Callable[[], None], headers: dict[str, str]
    ) -> None:
        super().__init__(
            chunks,
            media_type="text/event-stream",
            headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()
            with contextlib.suppress(Exception):
                await self.body_iterator.aclose()  # type: ignore[attr-defined]
