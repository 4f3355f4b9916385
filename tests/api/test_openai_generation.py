"""OpenAI-compatible text generation with the real ``openai`` client against a real server
serving a tiny GPT-2-style model built here: greedy text equal to transformers' own
``generate``, chat templates, streaming, seeds, stop strings, ``n``, usage counts,
concurrent requests decoded together step by step, cancelled streams that stop the
model, and hostile requests and folders answered with clear 4xx errors."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import torch

from modelport.client.packing import pack_folder
from tests.api.test_management import upload
from tests.conftest import ADMIN_KEY
from tests.models import regression, save_skops
from tests.runtimes.tiny_language_model import build, with_config_change
from tests.servers import ServerProcess, start_server

MODEL = "tiny"
PROMPTS = ["hello world", "once upon a time", "Ünïcödé and 🙂 emoji", "the lazy dog"]
CHAT = [
    {"role": "system", "content": "You are tiny."},
    {"role": "user", "content": "What is the capital of France?"},
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("generation")
    tiny = build(root / "tiny", end_scale=0)
    return {
        "root": root,
        "tiny": tiny,
        "plain": build(root / "plain", end_scale=0, chat_template=False),
    }


@pytest.fixture(scope="module")
def gen_server(folders: dict[str, Path]) -> Iterator[ServerProcess]:
    root = folders["root"]
    env = {"HF_HUB_OFFLINE": "1"}
    with start_server(root / "data", "--no-demo", admin_key=ADMIN_KEY, env=env) as server:
        with server.http(ADMIN_KEY) as admin:
            for name in (MODEL, "plain"):
                archive = pack_folder(folders[name], root / f"{name}.tar.gz")
                pushed = upload(admin, name, archive, alias="prod")
                assert pushed.status_code == 201, pushed.text
                assert pushed.json()["format"] == "hf-text-generation"
            linear = save_skops(regression()[0], root / "linear.skops")
            assert upload(admin, "linear", linear).status_code == 201
        yield server


@pytest.fixture(scope="module")
def admin(gen_server: ServerProcess) -> Iterator[httpx.Client]:
    with gen_server.http(ADMIN_KEY) as client:
        yield client


@pytest.fixture(scope="module")
def key(admin: httpx.Client) -> str:
    created = admin.post("/api/v1/keys", json={"name": "generate", "role": "predict"})
    assert created.status_code == 201, created.text
    secret: str = created.json()["key"]
    return secret


@pytest.fixture(scope="module")
def client(gen_server: ServerProcess, key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gen_server.url}/v1", api_key=key, max_retries=0) as sdk:
        yield sdk


class Reference:
    """The same folder in transformers, generating greedily as ``generate`` does."""

    def __init__(self, folder: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()

    def ids(self, prompt: str, special_tokens: bool = True) -> list[int]:
        ids: list[int] = self.tokenizer(prompt, add_special_tokens=special_tokens).input_ids
        return ids

    def chat_ids(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return self.ids(text, special_tokens=False)

    def greedy(self, ids: list[int], max_new_tokens: int) -> tuple[str, int]:
        """The text and the number of tokens ``generate(do_sample=False)`` makes."""
        prompt = torch.tensor([ids])
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=prompt,
                attention_mask=torch.ones_like(prompt),
                do_sample=False,
                max_new_tokens=max_new_tokens,
                pad_token_id=self.tokenizer.eos_token_id,
            )
        new = out[0, len(ids) :].tolist()
        return self.tokenizer.decode(new, skip_special_tokens=True), len(new)


@pytest.fixture(scope="module")
def reference(folders: dict[str, Path]) -> Reference:
    return Reference(folders["tiny"])


def _generation(admin: httpx.Client, model: str = MODEL) -> dict[str, Any]:
    loaded = admin.get("/api/v1/serving").json()["loaded"]
    state: dict[str, Any] = next(v for v in loaded if v["model"] == model)["generation"]
    return state


def test_completions_greedy_equal_transformers_generate(
    client: openai.OpenAI, reference: Reference
) -> None:
    for prompt in PROMPTS:
        expected, count = reference.greedy(reference.ids(prompt), 24)
        answer = client.completions.create(model=MODEL, prompt=prompt, max_tokens=24, temperature=0)
        assert answer.choices[0].text == expected
        assert answer.choices[0].finish_reason == "length"
        assert answer.object == "text_completion"
        assert answer.model == MODEL
        assert answer.system_fingerprint == f"{MODEL}@1"
        assert answer.usage is not None
        assert answer.usage.prompt_tokens == len(reference.ids(prompt))
        assert answer.usage.completion_tokens == count == 24
        assert answer.usage.total_tokens == answer.usage.prompt_tokens + 24


def test_chat_renders_the_chat_template_and_equals_generate(
    client: openai.OpenAI, reference: Reference
) -> None:
    ids = reference.chat_ids(CHAT)
    expected, _ = reference.greedy(ids, 30)
    for model in (MODEL, f"{MODEL}@1", f"{MODEL}@prod"):
        answer = client.chat.completions.create(
            model=model, messages=CHAT, max_tokens=30, temperature=0
        )
        choice = answer.choices[0]
        assert choice.message.role == "assistant"
        assert choice.message.content == expected
        assert choice.finish_reason == "length"
        assert answer.usage is not None
        assert answer.usage.prompt_tokens == len(ids)
        assert answer.usage.completion_tokens == 30
    # max_completion_tokens (the newer name) takes precedence over max_tokens.
    newer = client.chat.completions.create(
        model=MODEL, messages=CHAT, max_completion_tokens=7, max_tokens=30, temperature=0
    )
    assert newer.usage is not None and newer.usage.completion_tokens == 7


def test_streams_carry_the_same_text_as_whole_answers(
    client: openai.OpenAI, reference: Reference
) -> None:
    expected, _ = reference.greedy(reference.chat_ids(CHAT), 40)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=CHAT,
        max_tokens=40,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected
    assert len(chunks) > 10  # token by token, not all at once
    finishing = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishing[-1] == "length" and set(finishing[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 40
    assert {c.object for c in chunks} == {"chat.completion.chunk"}

    prompt = PROMPTS[2]
    expected, _ = reference.greedy(reference.ids(prompt), 40)
    pieces = list(
        client.completions.create(
            model=MODEL, prompt=prompt, max_tokens=40, temperature=0, stream=True
        )
    )
    assert "".join(p.choices[0].text for p in pieces) == expected
    assert pieces[-1].choices[0].finish_reason == "length"


def test_raw_stream_is_server_sent_events_ending_with_done(
    gen_server: ServerProcess, key: str
) -> None:
    body = {"model": MODEL, "prompt": "hello", "max_tokens": 5, "stream": True}
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.stream(
        "POST", f"{gen_server.url}/v1/completions", json=body, headers=headers
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    events = [block for block in raw.split("\n\n") if block]
    assert all(block.startswith("data: ") for block in events)
    assert events[-1] == "data: [DONE]"


def test_a_seed_makes_sampling_reproducible(client: openai.OpenAI) -> None:
    def sample(seed: int) -> str:
        answer = client.completions.create(
            model=MODEL, prompt="hello", max_tokens=32, temperature=1.2, top_p=0.9, seed=seed
        )
        return answer.choices[0].text

    first = sample(7)
    assert sample(7) == first
    assert sample(8) != first
    streamed = client.completions.create(
        model=MODEL, prompt="hello", max_tokens=32, temperature=1.2, top_p=0.9, seed=7, stream=True
    )
    assert "".join(chunk.choices[0].text for chunk in streamed) == first


def test_stop_strings_end_the_text_before_them(client: openai.OpenAI, reference: Reference) -> None:
    full, _ = reference.greedy(reference.ids("once upon a time"), 60)
    stop = full[20:23]
    assert len(stop) == 3 and stop.strip()
    expected = full[: full.find(stop)]
    answer = client.completions.create(
        model=MODEL, prompt="once upon a time", max_tokens=60, temperature=0, stop=stop
    )
    assert answer.choices[0].text == expected
    assert answer.choices[0].finish_reason == "stop"
    streamed = client.completions.create(
        model=MODEL,
        prompt="once upon a time",
        max_tokens=60,
        temperature=0,
        stop=["never appears \x00", stop],
        stream=True,
    )
    chunks = list(streamed)
    assert "".join(c.choices[0].text for c in chunks) == expected
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_n_choices_and_a_list_of_prompts(client: openai.OpenAI, reference: Reference) -> None:
    sampled = client.chat.completions.create(
        model=MODEL, messages=CHAT, n=2, max_tokens=12, temperature=1.0, seed=3
    )
    assert [c.index for c in sampled.choices] == [0, 1]
    assert sampled.choices[0].message.content != sampled.choices[1].message.content
    assert sampled.usage is not None and sampled.usage.completion_tokens == 24
    greedy = client.completions.create(
        model=MODEL, prompt=PROMPTS[:2], n=2, max_tokens=10, temperature=0
    )
    texts = [choice.text for choice in sorted(greedy.choices, key=lambda c: c.index)]
    first, _ = reference.greedy(reference.ids(PROMPTS[0]), 10)
    second, _ = reference.greedy(reference.ids(PROMPTS[1]), 10)
    assert texts == [first, first, second, second]
    assert greedy.usage is not None
    assert greedy.usage.prompt_tokens == sum(len(reference.ids(p)) for p in PROMPTS[:2])


def test_v2_and_predict_continue_texts_greedily(admin: httpx.Client, reference: Reference) -> None:
    expected = [reference.greedy(reference.ids(p), 16)[0] for p in PROMPTS[:2]]
    inference = {
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": PROMPTS[:2]}]
    }
    answer = admin.post(f"/v2/models/{MODEL}/infer", json=inference)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == expected


def test_concurrent_requests_share_decoding_steps(
    client: openai.OpenAI, admin: httpx.Client, reference: Reference
) -> None:
    prompts = [f"{word} upon a time" for word in ("once", "twice", "hello", "the", "dog", "fox")]
    alone = [reference.greedy(reference.ids(p), 64)[0] for p in prompts]
    before = _generation(admin)
    start = threading.Barrier(len(prompts))

    def complete(prompt: str) -> str:
        start.wait()
        answer = client.completions.create(model=MODEL, prompt=prompt, max_tokens=64, temperature=0)
        return answer.choices[0].text

    with ThreadPoolExecutor(len(prompts)) as pool:
        together = list(pool.map(complete, prompts))
    assert together == alone
    after = _generation(admin)
    steps = after["steps"] - before["steps"]
    tokens = after["tokens_generated"] - before["tokens_generated"]
    assert tokens == 64 * len(prompts)
    assert steps < tokens / 2  # one at a time would take one step per token
    assert after["largest_batch"] >= 3
    metrics = admin.get("/metrics").text
    assert f'modelport_generation_tokens_total{{model="{MODEL}",version="1"}}' in metrics


def _wait_for_cancellation(admin: httpx.Client, cancelled_before: int) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = _generation(admin)
        if state["cancelled"] > cancelled_before and state["active"] == 0:
            return state
        time.sleep(0.02)
    raise AssertionError(f"the generation was not cancelled: {_generation(admin)}")


def test_closing_a_stream_stops_generation(client: openai.OpenAI, admin: httpx.Client) -> None:
    before = _generation(admin)
    stream = client.completions.create(
        model=MODEL, prompt="hello", max_tokens=1000, temperature=0, stream=True
    )
    for received, _ in enumerate(stream, start=1):
        if received == 3:
            break
    stream.close()
    state = _wait_for_cancellation(admin, before["cancelled"])
    generated = state["tokens_generated"] - before["tokens_generated"]
    assert generated < 500, generated
    # Nothing generates for the closed stream any more: a 5-token request adds 5 tokens.
    client.completions.create(model=MODEL, prompt="hello", max_tokens=5, temperature=0)
    assert _generation(admin)["tokens_generated"] == state["tokens_generated"] + 5


def test_a_client_that_gives_up_waiting_stops_generation(
    gen_server: ServerProcess, key: str, admin: httpx.Client
) -> None:
    before = _generation(admin)
    body = {"model": MODEL, "prompt": "hello", "max_tokens": 1000, "temperature": 0}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{gen_server.url}/v1/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(10, read=0.3),
        )
    state = _wait_for_cancellation(admin, before["cancelled"])
    assert state["tokens_generated"] - before["tokens_generated"] < 500


BAD_CHAT: list[tuple[dict[str, Any], str]] = [
    ({"messages": []}, "'messages' is required"),
    ({"messages": "hello"}, "'messages' is required"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "role must be one of"),
    ({"messages": [{"role": "user", "content": 5}]}, "content must be a string"),
    ({"messages": [{"role": "user"}, 3]}, "must be an object"),
    (
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
        "only text parts",
    ),
    ({"max_tokens": 0}, "'max_tokens' must be a positive integer"),
    ({"max_tokens": -5}, "'max_tokens' must be a positive integer"),
    ({"max_tokens": 1.5}, "'max_tokens' must be a positive integer"),
    ({"max_tokens": 10**12}, "ask for at most"),
    ({"max_completion_tokens": True}, "must be a positive integer"),
    ({"n": 0}, "'n' must be an integer from 1 to 16"),
    ({"n": 17}, "'n' must be an integer from 1 to 16"),
    ({"temperature": 2.5}, "'temperature' must be a number from 0 to 2"),
    ({"temperature": "hot"}, "'temperature' must be a number"),
    ({"top_p": -0.1}, "'top_p' must be a number from 0 to 1"),
    ({"seed": "lucky"}, "'seed' must be an integer"),
    ({"seed": 2**63 + 5}, "'seed' must be an integer"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "at most 4 strings"),
    ({"stop": [""]}, "each 'stop' string"),
    ({"stop": 3}, "'stop' must be a string"),
    ({"stream": "yes"}, "'stream' must be true or false"),
    ({"stream_options": {"include_usage": True}}, "only with stream=true"),
    ({"logprobs": True}, "'logprobs' is not supported"),
    ({"tools": [{"type": "function"}]}, "'tools' is not supported"),
    ({"model": None}, "'model' is required"),
    ({"model": "../etc"}, "invalid model name"),
    ({"model": "linear"}, "does not generate text"),
    ({"model": "plain"}, "has no chat template"),
]


@pytest.mark.parametrize(("change", "message"), BAD_CHAT)
def test_bad_chat_requests_get_clear_400s(
    client: openai.OpenAI, change: dict[str, Any], message: str
) -> None:
    body: dict[str, Any] = {"model": MODEL, "messages": CHAT, "max_tokens": 4, **change}
    with pytest.raises(openai.BadRequestError, match=message.replace("(", r"\(")) as caught:
        client.chat.completions.create(**body)
    assert caught.value.status_code == 400
    assert caught.value.body is not None
    assert isinstance(caught.value.body, dict) and caught.value.body["type"] == (
        "invalid_request_error"
    )


BAD_COMPLETIONS: list[tuple[dict[str, Any], str]] = [
    ({"prompt": ""}, "the prompt is empty"),
    ({"prompt": None}, "must be a string"),
    ({"prompt": [1, 2, 3]}, "token ids"),
    ({"prompt": ["ok", 5.5]}, "'prompt\\[1\\]' must be a string"),
    ({"prompt": ["x"] * 33}, "a list of 1 to 32 strings"),
    ({"prompt": ["x"] * 10, "n": 10}, "at most 64 per request"),
    ({"prompt": "word " * 1100}, "context is 1024 tokens"),
    ({"max_tokens": 1024}, "ask for at most"),
    ({"echo": True}, "'echo' is not supported"),
    ({"best_of": 3}, "'best_of' is not supported"),
    ({"frequency_penalty": 0.5}, "'frequency_penalty' is not supported"),
]


@pytest.mark.parametrize(("change", "message"), BAD_COMPLETIONS)
def test_bad_completion_requests_get_clear_400s(
    client: openai.OpenAI, change: dict[str, Any], message: str
) -> None:
    body: dict[str, Any] = {"model": MODEL, "prompt": "hello", "max_tokens": 4, **change}
    with pytest.raises(openai.BadRequestError, match=message):
        client.completions.create(**body)


def test_unknown_models_bad_keys_and_bad_bodies(
    gen_server: ServerProcess, client: openai.OpenAI, key: str
) -> None:
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.completions.create(model="no-such-model", prompt="hi")
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=f"{MODEL}@9", messages=CHAT)
    with openai.OpenAI(
        base_url=f"{gen_server.url}/v1", api_key="mp_wrong-key", max_retries=0
    ) as stranger:
        with pytest.raises(openai.AuthenticationError):
            stranger.chat.completions.create(model=MODEL, messages=CHAT)
    url = f"{gen_server.url}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    for body in (b"{not json", b"[1, 2]", b"", b'{"model": "tiny", "messages": ' * 5000):
        answer = httpx.post(url, content=body, headers=headers)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["type"] == "invalid_request_error"
    anonymous = httpx.post(url, json={"model": MODEL, "messages": CHAT})
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "authentication_error"


def _pickled_weights(tiny: Path, target: Path) -> Path:
    from safetensors.torch import load_file

    shutil.copytree(tiny, target)
    state = load_file(target / "model.safetensors")
    (target / "model.safetensors").unlink()
    torch.save(state, target / "pytorch_model.bin")
    return target


def _without_tokenizer(tiny: Path, target: Path) -> Path:
    shutil.copytree(tiny, target)
    (target / "tokenizer.json").unlink()
    return target


HOSTILE_FOLDERS = [
    ("pickled", _pickled_weights, "pytorch_model.bin, a pickle"),
    (
        "auto-map",
        lambda tiny, target: with_config_change(
            tiny, target, auto_map={"AutoModelForCausalLM": "evil.Model"}
        ),
        "auto_map",
    ),
    ("no-tokenizer", _without_tokenizer, "has no tokenizer"),
    (
        "unknown-type",
        lambda tiny, target: with_config_change(tiny, target, model_type="not-a-real-model"),
        "could not be loaded",
    ),
]


@pytest.mark.parametrize(("name", "make", "message"), HOSTILE_FOLDERS)
def test_hostile_folders_are_refused_at_upload(
    admin: httpx.Client,
    folders: dict[str, Path],
    gen_server: ServerProcess,
    client: openai.OpenAI,
    name: str,
    make: Any,
    message: str,
) -> None:
    root = folders["root"] / "hostile"
    root.mkdir(exist_ok=True)
    folder = make(folders["tiny"], root / name)
    answer = upload(admin, f"hostile-{name}", pack_folder(folder, root / f"{name}.tar.gz"))
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]["message"]
    assert gen_server.is_healthy()
    ok = client.completions.create(model=MODEL, prompt="still here", max_tokens=2)
    assert ok.usage is not None and ok.usage.completion_tokens == 2


SLOW_TEMPLATE = (
    "{% for i in range(10000) %}{% for j in range(4000) %}{% endfor %}{% endfor %}"
    "{% for message in messages %}{{ message['content'] }}{% endfor %}assistant:"
)


def test_a_slow_chat_template_does_not_stall_the_server(
    admin: httpx.Client, folders: dict[str, Path], gen_server: ServerProcess, key: str
) -> None:
    # The template is the uploader's: rendering it on the event loop froze every other
    # request (health checks included) for as long as it ran, before the fix.
    folder = folders["root"] / "slow-template"
    shutil.copytree(folders["tiny"], folder)
    (folder / "chat_template.jinja").write_text(SLOW_TEMPLATE)
    pushed = upload(admin, "slow-template", pack_folder(folder, folder.with_suffix(".tar.gz")))
    assert pushed.status_code == 201, pushed.text
    body: dict[str, Any] = {
        "model": "slow-template",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 1,
    }
    headers = {"Authorization": f"Bearer {key}"}
    url = f"{gen_server.url}/v1/chat/completions"
    assert httpx.post(url, json=body, headers=headers, timeout=120).status_code == 200  # loaded
    answers: list[int] = []
    chat = threading.Thread(
        target=lambda: answers.append(
            httpx.post(url, json=body, headers=headers, timeout=120).status_code
        )
    )
    started = time.perf_counter()
    chat.start()
    time.sleep(0.3)  # the chat is rendering its template by now
    slowest = 0.0
    while chat.is_alive():
        asked = time.perf_counter()
        assert httpx.get(f"{gen_server.url}/v2/health/live", timeout=60).status_code == 200
        slowest = max(slowest, time.perf_counter() - asked)
    chat.join()
    assert answers == [200]
    assert time.perf_counter() - started > 1.0  # the template really was slow...
    assert slowest < 0.5, slowest  # ...and the server kept answering meanwhile
