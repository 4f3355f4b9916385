"""The Hugging Face text-generation runtime in-process, on tiny GPT-2-style folders built
here: which folders it claims, what it refuses and why, what inspection records, V2
predict, and rows decoded together (joining and leaving a shared cache) giving exactly
the tokens transformers' ``generate`` gives each prompt alone."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from modelport.errors import InvalidInputError
from modelport.runtimes.hf_causal_lm import CausalLanguageModel
from modelport.runtimes.hf_generation import FORMAT, HFGenerationRuntime, generation_signature
from modelport.runtimes.plugins import InspectOptions, LoadOptions, detect_folder
from modelport.types import Datatype, Signature, TensorSpec
from tests.runtimes.tiny_language_model import build, with_config_change

RUNTIME = HFGenerationRuntime()
OPTIONS = InspectOptions(allow_pickle=False, uploader_is_admin=False, signature=None)
ENDING_PROMPTS = ["hello world", "Paris", "a"]
"""Prompts whose greedy continuation ends (end token) within 60 tokens."""
RUNNING_PROMPTS = ["hello", "once upon a time", "the quick brown fox"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("lm") / "tiny", context=128, end_scale=2.5)


@pytest.fixture(scope="module")
def model(folder: Path) -> CausalLanguageModel:
    options = LoadOptions(trusted=False, allow_pickle=False, threads=1)
    return RUNTIME.load(folder, FORMAT, generation_signature(), options)


def greedy(model: CausalLanguageModel, prompt: list[int], max_new_tokens: int) -> list[int]:
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        out = model.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=max_new_tokens,
            pad_token_id=min(model.end_tokens),
        )
    generated: list[int] = out[0, len(prompt) :].tolist()
    return generated


def test_claims_causal_language_model_folders_only(folder: Path, tmp_path: Path) -> None:
    assert RUNTIME.detect_folder(folder) == FORMAT
    runtime, fmt = detect_folder(folder)
    assert runtime.name == "huggingface-generation" and fmt == FORMAT
    encoder = with_config_change(folder, tmp_path / "encoder", architectures=["GPT2Model"])
    assert RUNTIME.detect_folder(encoder) is None
    assert RUNTIME.detect_folder(tmp_path) is None  # no config.json


def test_inspection_loads_the_folder_and_records_it(folder: Path) -> None:
    inspected = RUNTIME.inspect(folder, FORMAT, OPTIONS)
    assert inspected.format == FORMAT
    assert inspected.framework == "transformers"
    assert inspected.signature == generation_signature()
    assert inspected.params["architecture"] == "GPT2LMHeadModel"
    assert inspected.params["context_length"] == 128
    assert inspected.params["chat_template"] is True
    assert inspected.params["parameters"] > 1000
    assert not inspected.trusted
    renamed = Signature(
        inputs=[TensorSpec(name="prompt", datatype=Datatype.BYTES, shape=[-1])],
        outputs=[TensorSpec(name="text", datatype=Datatype.BYTES, shape=[-1])],
    )
    given = InspectOptions(allow_pickle=False, uploader_is_admin=False, signature=renamed)
    assert RUNTIME.inspect(folder, FORMAT, given).signature == renamed


def _refusal(folder: Path) -> str:
    with pytest.raises(InvalidInputError) as refused:
        RUNTIME.inspect(folder, FORMAT, OPTIONS)
    return refused.value.message


def test_refuses_pickles_custom_code_and_incomplete_folders(folder: Path, tmp_path: Path) -> None:
    pickled = shutil.copytree(folder, tmp_path / "pickled")
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    assert "safetensors" in _refusal(pickled)
    custom = with_config_change(folder, tmp_path / "custom", auto_map={"AutoConfig": "x.Y"})
    assert "auto_map" in _refusal(custom)
    tokenizer_code = shutil.copytree(folder, tmp_path / "tokenizer-code")
    settings = json.loads((tokenizer_code / "tokenizer_config.json").read_text())
    settings["auto_map"] = {"AutoTokenizer": ["evil.Tokenizer", None]}
    (tokenizer_code / "tokenizer_config.json").write_text(json.dumps(settings))
    assert "auto_map" in _refusal(tokenizer_code)
    no_tokenizer = shutil.copytree(folder, tmp_path / "no-tokenizer")
    (no_tokenizer / "tokenizer.json").unlink()
    assert "no tokenizer" in _refusal(no_tokenizer)
    escaping = shutil.copytree(folder, tmp_path / "escaping")
    index = {"weight_map": {"lm_head.weight": "../../elsewhere.safetensors"}}
    (escaping / "model.safetensors.index.json").write_text(json.dumps(index))
    assert "shards must be" in _refusal(escaping)
    broken = shutil.copytree(folder, tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{bad json")
    assert "could not be loaded" in _refusal(broken)
    garbage = shutil.copytree(folder, tmp_path / "garbage")
    (garbage / "config.json").write_text("[1, 2")
    with pytest.raises(InvalidInputError, match=r"config\.json"):
        RUNTIME.detect_folder(garbage)


def test_a_missing_framework_names_the_extra_to_install(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    assert "pip install 'modelport[huggingface]'" in _refusal(folder)


def test_v2_predict_continues_each_text_greedily(model: CausalLanguageModel) -> None:
    texts = np.array([b"hello", "Paris"], dtype=object)  # bytes or str
    answer = model.predict({"text": texts}, frozenset({"text"}))["text"]
    for prompt, text in zip(["hello", "Paris"], answer, strict=True):
        assert text == model.decode(greedy(model, model.encode(prompt), 16))
    with pytest.raises(InvalidInputError, match="UTF-8"):
        model.predict({"text": np.array([b"\xff\xfe"], dtype=object)}, frozenset())
    with pytest.raises(InvalidInputError, match="empty prompt"):
        model.predict({"text": np.array([b""], dtype=object)}, frozenset())
    with pytest.raises(InvalidInputError, match="context is 128 tokens"):
        model.predict({"text": np.array([b"word " * 200], dtype=object)}, frozenset())


def test_chat_prompts_come_from_the_template(model: CausalLanguageModel) -> None:
    messages = [{"role": "user", "content": "hi"}]
    assert model.chat_prompt(messages) == "user: hi\nassistant:"
    no_template = CausalLanguageModel.__new__(CausalLanguageModel)
    no_template.has_chat_template = False
    with pytest.raises(InvalidInputError, match="no chat template"):
        no_template.chat_prompt(messages)


def _decode_together(model: CausalLanguageModel, arrivals: dict[int, list[int]]) -> dict[int, Any]:
    """Greedy decoding in one shared batch; prompt ``i`` joins at step ``arrivals`` key
    and leaves at its end token or after 60 tokens."""
    batch = model.new_batch()
    rows: list[tuple[int, list[int]]] = []  # (prompt number, generated tokens)
    finished: dict[int, list[int]] = {}
    waiting = sorted(arrivals.items())
    step = 0
    while waiting or rows:
        logits = []
        if rows:
            logits.append(batch.advance([tokens[-1] for _, tokens in rows]))
        while waiting and waiting[0][0] <= step:
            number = len(finished) + len(rows)
            batch_prompt = waiting.pop(0)[1]
            rows.append((number, []))
            logits.append(batch.join(batch_prompt, 1))
        if logits:
            for (_, tokens), row in zip(rows, np.concatenate(logits), strict=True):
                tokens.append(int(np.argmax(row)))
        done = [
            i
            for i, (_, tokens) in enumerate(rows)
            if tokens and (tokens[-1] in model.end_tokens or len(tokens) == 60)
        ]
        for i in done:
            finished[rows[i][0]] = rows[i][1]
        kept = [i for i in range(len(rows)) if i not in done]
        if done:
            batch.keep(kept)
            rows = [rows[i] for i in kept]
        step += 1
    return finished


def test_rows_decoded_together_equal_generate_alone(model: CausalLanguageModel) -> None:
    prompts = [model.encode(p) for p in [*ENDING_PROMPTS, *RUNNING_PROMPTS]]
    alone = [greedy(model, prompt, 60) for prompt in prompts]
    ended = [tokens[-1] in model.end_tokens for tokens in alone]
    assert ended == [True] * len(ENDING_PROMPTS) + [False] * len(RUNNING_PROMPTS)
    # Staggered arrivals: rows join a batch whose rows have different lengths, and leave
    # it (end token) while others go on.
    arrivals = {step: prompt for step, prompt in zip([0, 2, 3, 5, 11, 12], prompts, strict=True)}
    together = _decode_together(model, arrivals)
    assert [together[i] for i in range(len(prompts))] == alone


def test_copies_of_a_prompt_share_its_prefill(model: CausalLanguageModel) -> None:
    batch = model.new_batch()
    prompt = model.encode("once upon a time")
    logits = batch.join(prompt, copies=3)
    assert logits.shape[0] == 3 == batch.rows
    np.testing.assert_array_equal(logits[0], logits[2])
    batch.keep([1])
    assert batch.rows == 1
    batch.keep([])
    assert batch.rows == 0


def test_a_safetensors_index_that_is_not_an_object_is_refused(folder: Path, tmp_path: Path) -> None:
    # A list here was an AttributeError (a 500 at upload) before the fix.
    for document in ([1, 2], "text", {"weight_map": ["model.safetensors"]}):
        odd = shutil.copytree(folder, tmp_path / f"odd-{type(document).__name__}")
        (odd / "model.safetensors.index.json").write_text(json.dumps(document))
        assert "model.safetensors.index.json" in _refusal(odd)
