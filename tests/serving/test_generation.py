"""The generation scheduler in-process with a real tiny language model: concurrent
requests decoded together give the text each gets alone (end tokens included), stop
strings, seeds, cancellation and unloading; and its text and sampling pieces."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from modelport.errors import InvalidInputError, UnavailableError
from modelport.runtimes.hf_causal_lm import CausalLanguageModel
from modelport.runtimes.hf_generation import FORMAT, HFGenerationRuntime, generation_signature
from modelport.runtimes.plugins import LoadOptions
from modelport.serving.generated_text import IncrementalText, StopStrings
from modelport.serving.generation import GenerationScheduler, scheduler_for
from modelport.serving.sampling import Sampling, choose_token, random_source
from tests.runtimes.test_hf_generation import ENDING_PROMPTS, RUNNING_PROMPTS, greedy
from tests.runtimes.tiny_language_model import build

GREEDY = Sampling(max_tokens=60, temperature=0)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> CausalLanguageModel:
    folder = build(tmp_path_factory.mktemp("lm") / "tiny", context=128, end_scale=2.5)
    options = LoadOptions(trusted=False, allow_pickle=False, threads=1)
    return HFGenerationRuntime().load(folder, FORMAT, generation_signature(), options)


def _scheduler(model: CausalLanguageModel, max_sequences: int | None = None) -> GenerationScheduler:
    scheduler = scheduler_for(model, max_sequences)
    assert scheduler is not None
    return scheduler


def test_concurrent_requests_get_their_own_greedy_text(model: CausalLanguageModel) -> None:
    prompts = [*ENDING_PROMPTS, *RUNNING_PROMPTS]
    expected = []
    for prompt in prompts:
        tokens = greedy(model, model.encode(prompt), 60)
        reason = "stop" if tokens[-1] in model.end_tokens else "length"
        expected.append((model.decode(tokens), reason, len(tokens)))

    async def run() -> GenerationScheduler:
        scheduler = _scheduler(model, max_sequences=4)  # some wait for room

        async def one(prompt: str, delay: int) -> tuple[str, str | None, int]:
            for _ in range(delay):
                await asyncio.sleep(0)
            generation = scheduler.submit([model.encode(prompt)], 1, GREEDY)
            [result] = await generation.result()
            return result.text, result.finish_reason, generation.completion_tokens

        answers = await asyncio.gather(*(one(p, i) for i, p in enumerate(prompts)))
        assert list(answers) == expected
        return scheduler

    scheduler = asyncio.run(run())
    counters = scheduler.counters
    assert counters.largest_batch == 4
    assert counters.tokens == sum(count for _, _, count in expected)
    assert counters.steps < counters.tokens
    assert scheduler.active == 0 and scheduler.waiting == 0


def test_stop_strings_seeds_and_choices(model: CausalLanguageModel) -> None:
    prompt = model.encode("once upon a time")
    full = model.decode(greedy(model, prompt, 60))
    stop = full[15:18]

    async def run() -> None:
        scheduler = _scheduler(model)
        stopped = scheduler.submit([prompt], 1, Sampling(60, 0, stop=("\x00never", stop)))
        [result] = await stopped.result()
        assert (result.text, result.finish_reason) == (full[: full.find(stop)], "stop")
        sampled = Sampling(20, temperature=1.5, top_p=0.95, seed=11)
        first = await scheduler.submit([prompt], 3, sampled).result()
        again = await scheduler.submit([prompt], 3, sampled).result()
        assert [r.text for r in first] == [r.text for r in again]
        assert len({r.text for r in first}) == 3  # each choice has its own random stream
        with pytest.raises(InvalidInputError, match="1 to 127 tokens"):
            scheduler.submit([[1] * 128], 1, GREEDY)

    asyncio.run(run())


def test_a_cancelled_request_leaves_the_batch(model: CausalLanguageModel) -> None:
    async def run() -> None:
        scheduler = _scheduler(model)
        prompt = model.encode(RUNNING_PROMPTS[0])
        generation = scheduler.submit([prompt], 1, Sampling(120, 0))
        other = scheduler.submit([prompt], 1, Sampling(30, 0))
        updates = generation.updates()
        await anext(updates)
        generation.cancel()
        with pytest.raises(UnavailableError, match="cancelled"):
            await anext(updates)
        [result] = await other.result()
        assert result.finish_reason == "length"
        while scheduler.busy:
            await asyncio.sleep(0.001)
        assert scheduler.counters.cancelled == 1
        assert generation.completion_tokens < 40  # stopped with the other, not at 120

    asyncio.run(run())


def test_unloading_fails_unfinished_requests(model: CausalLanguageModel) -> None:
    async def run() -> None:
        scheduler = _scheduler(model, max_sequences=1)
        running = scheduler.submit([model.encode("hello")], 1, Sampling(100, 0))
        waiting = scheduler.submit([model.encode("hello")], 1, Sampling(100, 0))
        await anext(running.updates())
        await scheduler.close()
        for generation in (running, waiting):
            with pytest.raises(UnavailableError, match="unloaded"):
                await generation.result()
        with pytest.raises(UnavailableError):
            scheduler.submit([model.encode("hello")], 1, GREEDY)

    asyncio.run(run())


def test_incremental_text_never_splits_a_character(model: CausalLanguageModel) -> None:
    text = "Ünïcödé, 漢字 and 🙂 emoji"
    tokens = model.encode(text)
    assert len(tokens) > len(text) // 2  # byte-level: characters span several tokens
    decoded = IncrementalText(model.decode)
    pieces = [decoded.add(token) for token in tokens]
    pieces.append(decoded.flush())
    assert "".join(pieces) == model.decode(tokens) == text
    assert not any("\ufffd" in piece for piece in pieces)
    assert "" in pieces  # some tokens completed no character


def test_stop_strings_across_pieces() -> None:
    stops = StopStrings(["END", "xyz"])
    assert stops.push("hello E") == ("hello ", False)  # "E" may start "END"
    assert stops.push("N") == ("", False)
    assert stops.push("Dless") == ("", True)
    stops = StopStrings(["END", "xyz"])
    assert stops.push("aEN") == ("a", False)
    assert stops.push("x") == ("EN", False)  # "ENx" cannot start "END"; "x" may start "xyz"
    assert stops.push("yz and more") == ("", True)
    unfinished = StopStrings(["abc"])
    assert unfinished.push("xab") == ("x", False)
    assert unfinished.push("", final=True) == ("ab", False)


def test_sampling_greedy_nucleus_and_seeds() -> None:
    logits = np.log(np.array([0.1, 0.6, 0.3], dtype=np.float32))
    assert choose_token(logits, Sampling(1, temperature=0), random_source(Sampling(1), 0)) == 1
    nucleus = Sampling(1, temperature=1.0, top_p=0.5, seed=1)
    random = random_source(nucleus, 0)
    assert {choose_token(logits, nucleus, random) for _ in range(50)} == {1}
    seeded = Sampling(1, temperature=1.0, seed=42)
    draws = [choose_token(logits, seeded, random_source(seeded, 0)) for _ in range(5)]
    assert len(set(draws)) == 1  # the same seed and choice: the same token
    random = random_source(seeded, 0)
    counts = np.bincount([choose_token(logits, seeded, random) for _ in range(4000)], minlength=3)
    np.testing.assert_allclose(counts / 4000, [0.1, 0.6, 0.3], atol=0.03)


SLOW_TEMPLATE = (
    "{% for i in range(10000) %}{% for j in range(3000) %}{% endfor %}{% endfor %}"
    "{% for message in messages %}{{ message['content'] }}{% endfor %}assistant:"
)


def test_a_chat_template_that_runs_too_long_is_a_503(
    model: CausalLanguageModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The template is the uploader's code: past its time limit the request gets a clear
    503 while the template keeps its own thread (not the event loop, not shared threads)."""
    from modelport.serving import generation

    monkeypatch.setattr(generation, "CHAT_TEMPLATE_TIMEOUT_S", 0.2)
    messages = [{"role": "user", "content": "hi"}]
    original = model.tokenizer.chat_template
    model.tokenizer.chat_template = SLOW_TEMPLATE

    async def run() -> None:
        scheduler = _scheduler(model)
        try:
            loop_turns = 0

            async def count_turns() -> None:
                nonlocal loop_turns
                while True:
                    await asyncio.sleep(0.01)
                    loop_turns += 1

            counter = asyncio.create_task(count_turns())
            with pytest.raises(UnavailableError, match=r"did not render within 0\.2 s"):
                await scheduler.chat_prompt(messages)
            counter.cancel()
            assert loop_turns >= 5  # the loop kept turning while the template ran
        finally:
            await scheduler.close()

    try:
        asyncio.run(run())
    finally:
        model.tokenizer.chat_template = original
