"""OpenAI's answer shapes for chat completions and (legacy) completions, whole and as
stream chunks (server-sent events), so the openai SDK and other clients read them as
they read OpenAI's."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from modelport.serving.generation_requests import ChoiceResult, ChoiceUpdate, Generation

DONE = b"data: [DONE]\n\n"


def event(chunk: dict[str, Any]) -> bytes:
    """One server-sent event carrying ``chunk``."""
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def usage_of(generation: Generation) -> dict[str, int]:
    prompt, completion = generation.prompt_tokens, generation.completion_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class AnswerShape:
    """The answers of one request: chat (``chat=True``) or completions."""

    def __init__(self, chat: bool, model: str, fingerprint: str) -> None:
        self.chat = chat
        self._head: dict[str, Any] = {
            "id": ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex,
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": fingerprint,
        }
        if chat:
            self._chunk_head = {**self._head, "object": "chat.completion.chunk"}
        else:
            self._chunk_head = self._head

    def whole(self, results: list[ChoiceResult], generation: Generation) -> dict[str, Any]:
        """The answer of a request that did not stream."""
        choices = [self._choice(index, result) for index, result in enumerate(results)]
        return {**self._head, "choices": choices, "usage": usage_of(generation)}

    def _choice(self, index: int, result: ChoiceResult) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": index}
        if self.chat:
            choice["message"] = {"role": "assistant", "content": result.text}
        else:
            choice["text"] = result.text
        choice["logprobs"] = None
        choice["finish_reason"] = result.finish_reason
        return choice

    def opening(self, choices: int) -> list[dict[str, Any]]:
        """Chunks sent before any text: chat streams name the assistant role first."""
        if not self.chat:
            return []
        return [
            self._chunk(index, {"role": "assistant", "content": ""}) for index in range(choices)
        ]

    def chunks(self, update: ChoiceUpdate) -> list[dict[str, Any]]:
        """The chunks of one update: its text, then (for a choice's last update, as
        OpenAI does for chat) a chunk with the finish reason and an empty delta."""
        if not self.chat:
            return [self._chunk(update.choice, update.text, update.finish_reason)]
        chunks = []
        if update.text:
            chunks.append(self._chunk(update.choice, {"content": update.text}))
        if update.finish_reason is not None:
            chunks.append(self._chunk(update.choice, {}, update.finish_reason))
        return chunks

    def usage_chunk(self, generation: Generation) -> dict[str, Any]:
        """The last chunk when the client asked for usage (``stream_options``)."""
        return {**self._chunk_head, "choices": [], "usage": usage_of(generation)}

    def _chunk(self, index: int, content: Any, finish_reason: str | None = None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": index}
        if self.chat:
            choice["delta"] = content
        else:
            choice["text"] = content
        choice["logprobs"] = None
        choice["finish_reason"] = finish_reason
        return {**self._chunk_head, "choices": [choice]}
