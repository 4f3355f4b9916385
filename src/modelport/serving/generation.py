"""Text generation for many callers at once: continuous batching, one decoding step at a
time.

Each loaded text-generation model has one :class:`GenerationScheduler`. A request becomes
one *choice* per prompt and ``n``; choices wait until the batch has room, then join it at
the next step (their prompt is run once, its cache merged into the batch's). Every step
runs the model once for all active choices on the scheduler's own thread (the event loop
never waits for torch), picks each choice's next token with its own sampling settings,
and hands each request the text its choices gained. A finished choice (end token, stop
string, ``max_tokens``) or a cancelled request (the client went away) leaves the batch
at the next step, so nothing is generated for nobody.

The model is driven through the :class:`TextGenerator` protocol; the Hugging Face runtime
(``runtimes/hf_causal_lm.py``) implements it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from modelport.errors import InvalidInputError, ModelPortError, UnavailableError
from modelport.serving.generated_text import IncrementalText, StopStrings
from modelport.serving.generation_requests import Choice, ChoiceUpdate, Generation
from modelport.serving.sampling import Sampling, choose_token, random_source
from modelport.serving.text_generators import DecodingBatch, TextGenerator

log = logging.getLogger(__name__)

DEFAULT_MAX_SEQUENCES = 64
"""Choices decoded together at most (a version's ``max_batch_size`` overrides it)."""
MAX_WAITING_CHOICES = 4096
"""Choices waiting for room in the batch; beyond this, requests get a 503 at once."""


@dataclass
class GenerationCounters:
    """What the scheduler has done since the model loaded."""

    requests: int = 0
    steps: int = 0
    """Decoding steps (one model call for every active choice)."""
    tokens: int = 0
    """Tokens generated, all choices together."""
    largest_batch: int = 0
    """Most choices one step served."""
    cancelled: int = 0
    """Requests dropped before they finished because their client went away."""


@dataclass
class _Step:
    """What one decoding step does, decided on the event loop."""

    keep: list[int] | None
    """Rows of the batch that stay (None: all)."""
    continuing: list[Choice]
    joining: list[list[Choice]] = field(default_factory=list)
    """Groups of choices that share a prompt."""

    @property
    def choices(self) -> list[Choice]:
        return [*self.continuing, *(choice for group in self.joining for choice in group)]


CHAT_TEMPLATE_TIMEOUT_S = 10.0


class GenerationScheduler:
    """Continuous batching for one loaded model (see the module docstring)."""

    def __init__(self, model: TextGenerator, max_sequences: int | None = None) -> None:
        self.model = model
        self.max_sequences = max_sequences or DEFAULT_MAX_SEQUENCES
        self.counters = GenerationCounters()
        self._waiting: deque[list[Choice]] = deque()
        self._active: list[Choice] = []
        self._batch: DecodingBatch | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, "modelport-generate")
        self._templates = ThreadPoolExecutor(1, "modelport-chat-template")
        self._closed = False

    @property
    def active(self) -> int:
        """Choices in the batch now."""
        return len(self._active)

    @property
    def waiting(self) -> int:
        """Choices waiting for room in the batch."""
        return sum(len(group) for group in self._waiting)

    @property
    def busy(self) -> bool:
        return bool(self._active or self._waiting)

    def submit(self, prompts: list[list[int]], n: int, sampling: Sampling) -> Generation:
        """Start generating ``n`` choices for each prompt (choice ``p * n + j`` is the
        ``j``-th of prompt ``p``); refused at once when the model is closed or overloaded."""
        if self._closed:
            raise UnavailableError("the model is being unloaded; retry shortly", retry_after=1)
        if self.waiting + len(prompts) * n > MAX_WAITING_CHOICES:
            raise UnavailableError(
                f"the model is overloaded ({self.waiting} choices waiting); retry shortly",
                retry_after=1,
            )
        context = self.model.context_length
        for prompt in prompts:
            if not prompt or len(prompt) >= context:
                raise InvalidInputError(
                    f"a prompt must have 1 to {context - 1} tokens (it has {len(prompt)})"
                )
        generation = Generation(sum(len(prompt) for prompt in prompts), len(prompts) * n)
        for number, prompt in enumerate(prompts):
            room = min(sampling.max_tokens, context - len(prompt))
            group = [
                self._choice(generation, number * n + j, prompt, sampling, room) for j in range(n)
            ]
            self._waiting.append(group)
        self.counters.requests += 1
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        return generation

    def _choice(
        self, generation: Generation, index: int, prompt: list[int], sampling: Sampling, room: int
    ) -> Choice:
        return Choice(
            generation,
            index,
            prompt,
            sampling,
            random_source(sampling, index),
            IncrementalText(self.model.decode),
            StopStrings(sampling.stop),
            room,
            self.model.end_tokens,
        )

    async def _run(self) -> None:
        try:
            await self._steps()
        except Exception as exc:  # a bug here must not leave callers waiting forever
            log.exception("the generation scheduler stopped")
            self._fail_everyone(ModelPortError(f"text generation failed: {exc}"))
        finally:
            self._task = None

    async def _steps(self) -> None:
        """Decoding steps until no choice is left (or the scheduler closes)."""
        loop = asyncio.get_running_loop()
        while not self._closed:
            step = self._plan()
            if step is None:
                return
            try:
                updates = await loop.run_in_executor(self._executor, self._decode, step)
            except Exception as exc:  # the model failed: these choices cannot go on
                log.exception("text generation step failed")
                self._abandon_batch(step, exc)
                continue
            self._count(step)
            for choice, update in zip(step.choices, updates, strict=True):
                if update is not None:
                    choice.generation.publish(update)

    def _plan(self) -> _Step | None:
        """Drop finished and cancelled choices, let waiting ones join; None: no work."""
        kept = [
            row
            for row, choice in enumerate(self._active)
            if not choice.finished and not self._gone(choice.generation)
        ]
        continuing = [self._active[row] for row in kept]
        step = _Step(None if len(kept) == len(self._active) else kept, continuing)
        room = self.max_sequences - len(continuing)
        while self._waiting:
            group = self._waiting[0]
            if self._gone(group[0].generation):
                self._waiting.popleft()
                continue
            if len(group) > room and (continuing or step.joining):
                break
            step.joining.append(self._waiting.popleft())
            room -= len(group)
        self._active = step.choices
        if not self._active:
            self._batch = None  # nothing cached any more
            return None
        return step

    def _gone(self, generation: Generation) -> bool:
        if generation.cancelled and not generation.counted_as_cancelled:
            generation.counted_as_cancelled = True
            self.counters.cancelled += 1
        return generation.cancelled

    def _decode(self, step: _Step) -> list[ChoiceUpdate | None]:
        """One step, on the decoding thread: run the model, choose every next token."""
        if self._batch is None:
            self._batch = self.model.new_batch()
        batch = self._batch
        if step.keep is not None:
            batch.keep(step.keep)
        logits = []
        if step.continuing:
            logits.append(batch.advance([choice.last_token for choice in step.continuing]))
        for group in step.joining:
            logits.append(batch.join(group[0].prompt, len(group)))
        rows = np.concatenate(logits) if len(logits) > 1 else logits[0]
        updates = []
        for row, choice in enumerate(step.choices):
            updates.append(choice.accept(choose_token(rows[row], choice.sampling, choice.random)))
        return updates

    def _count(self, step: _Step) -> None:
        choices = step.choices
        counters = self.counters
        counters.steps += 1
        counters.tokens += len(choices)
        counters.largest_batch = max(counters.largest_batch, len(choices))
        for choice in choices:
            choice.generation.completion_tokens += 1

    def _abandon_batch(self, step: _Step, exc: Exception) -> None:
        error = (
            exc
            if isinstance(exc, ModelPortError)
            else ModelPortError(f"text generation failed: {exc}")
        )
        for choice in step.choices:
            choice.finished = True
            choice.generation.fail(error)
        self._active = []
        self._batch = None

    def _fail_everyone(self, error: ModelPortError) -> None:
        for choice in self._active:
            choice.finished = True
            choice.generation.fail(error)
        for group in self._waiting:
            group[0].generation.fail(error)
        self._waiting.clear()
        self._active = []
        self._batch = None

    async def close(self) -> None:
        """Fail every unfinished request (the model is being unloaded) and stop."""
        self._closed = True
        self._fail_everyone(
            UnavailableError("the model was unloaded during generation; retry", retry_after=1)
        )
        task = self._task
        if task is not None:
            await asyncio.wait([task])
        self._active = []
        self._batch = None
        self._executor.shutdown(wait=False)
        self._templates.shutdown(wait=False)

    async def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        """The model's chat template rendered for ``messages``, on this model's own
        template thread and within ``CHAT_TEMPLATE_TIMEOUT_S``: the template is the
        uploader's code and may take any time, so a slow one delays only this model's chat
        requests (they get a 503), never the event loop or the threads other work shares."""
        rendering = asyncio.get_running_loop().run_in_executor(
            self._templates, self.model.chat_prompt, messages
        )
        try:
            return await asyncio.wait_for(rendering, CHAT_TEMPLATE_TIMEOUT_S)
        except TimeoutError:
            raise UnavailableError(
                f"this model's chat template did not render within {CHAT_TEMPLATE_TIMEOUT_S:g} "
                "s; use /v1/completions with a plain prompt, or fix the template"
            ) from None


def scheduler_for(model: object, max_sequences: int | None = None) -> GenerationScheduler | None:
    """A scheduler when ``model`` generates text, else None."""
    if isinstance(model, TextGenerator):
        return GenerationScheduler(model, max_sequences)
    return None
