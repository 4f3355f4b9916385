"""One generation request as its caller and the scheduler see it: the caller reads the
text its choices gain (``Generation.updates``) and may cancel; each choice is a sequence
that turns its tokens into text, watching for end tokens, stop strings and its token
budget."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from modelport.errors import ModelPortError, UnavailableError
from modelport.serving.generated_text import IncrementalText, StopStrings
from modelport.serving.sampling import Sampling


@dataclass(frozen=True)
class ChoiceUpdate:
    """New text of one choice; ``finish_reason`` ("stop" or "length") on its last."""

    choice: int
    text: str
    finish_reason: str | None = None


@dataclass
class ChoiceResult:
    text: str = ""
    finish_reason: str | None = None


class Generation:
    """One request being generated: iterate ``updates()`` (or await ``result()``), and
    ``cancel()`` when the caller goes away."""

    def __init__(self, prompt_tokens: int, choices: int) -> None:
        self.prompt_tokens = prompt_tokens
        self.choices = choices
        self.completion_tokens = 0
        self.cancelled = False
        self.counted_as_cancelled = False
        self._open = choices
        self._queue: asyncio.Queue[ChoiceUpdate | ModelPortError] = asyncio.Queue()

    @property
    def done(self) -> bool:
        return self._open == 0

    def cancel(self) -> None:
        """Stop generating for this request (at the next step); whoever still waits for
        its updates gets an error at once."""
        if not self.done and not self.cancelled:
            self.cancelled = True
            self._queue.put_nowait(UnavailableError("the request was cancelled"))

    async def updates(self) -> AsyncIterator[ChoiceUpdate]:
        """Text as it is generated, until every choice has finished."""
        while self._open:
            if self.cancelled:
                self._open = 0
                raise UnavailableError("the request was cancelled")
            update = await self._queue.get()
            if isinstance(update, ModelPortError):
                self._open = 0
                raise update
            if update.finish_reason is not None:
                self._open -= 1
            yield update

    async def result(self) -> list[ChoiceResult]:
        """Every choice's whole text and finish reason."""
        results = [ChoiceResult() for _ in range(self.choices)]
        async for update in self.updates():
            result = results[update.choice]
            result.text += update.text
            result.finish_reason = update.finish_reason or result.finish_reason
        return results

    def publish(self, update: ChoiceUpdate) -> None:
        """Hand the caller new text (the scheduler calls this)."""
        self._queue.put_nowait(update)

    def fail(self, error: ModelPortError) -> None:
        """End the request with ``error`` (the scheduler calls this)."""
        if not self.done:
            self._queue.put_nowait(error)


@dataclass(eq=False)
class Choice:
    """One sequence being generated; after it joins, only the decoding thread touches it."""

    generation: Generation
    index: int
    prompt: list[int]
    sampling: Sampling
    random: np.random.Generator
    text: IncrementalText
    stops: StopStrings
    room: int
    """Tokens it may generate: ``max_tokens``, within the model's context."""
    end_tokens: frozenset[int]
    generated: int = 0
    last_token: int = -1
    finished: bool = False

    def accept(self, token: int) -> ChoiceUpdate | None:
        """Take the next token; the update to publish, if any."""
        self.generated += 1
        self.last_token = token
        if token in self.end_tokens:
            return self._finish("stop", "", self.text.flush())
        piece, stopped = self.stops.push(self.text.add(token))
        if stopped:
            self.finished = True
            return ChoiceUpdate(self.index, piece, "stop")
        if self.generated >= self.room:
            return self._finish("length", piece, self.text.flush())
        return ChoiceUpdate(self.index, piece) if piece else None

    def _finish(self, reason: str, delivered: str, rest: str) -> ChoiceUpdate:
        self.finished = True
        more, stopped = self.stops.push(rest, final=True)
        return ChoiceUpdate(self.index, delivered + more, "stop" if stopped else reason)
