"""The binary tensor data extension with hand-built HTTP bodies: a JSON header of
``Inference-Header-Content-Length`` bytes followed by raw tensor bytes, and the raw form
(header length 0, the whole body is the single input). Every hostile body gets a 400 that
says what is wrong, and the server stays healthy."""

from __future__ import annotations

import json
import struct
from typing import Any, NamedTuple

import httpx
import numpy as np
import pytest

from tests.api.test_management import upload
from tests.models import IDENTITY_TYPES, identity_onnx, stress_values
from tests.servers import ServerProcess

IDENTITY = "binary-identity"
SMALL = "binary-small"  # one FP32 input of shape [-1, 3]
DATATYPES = list(IDENTITY_TYPES)


@pytest.fixture(scope="module")
def models(admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> None:
    directory = tmp_path_factory.mktemp("binary-models")
    for name, datatypes in ((IDENTITY, None), (SMALL, ["FP32"])):
        response = upload(admin, name, identity_onnx(directory / f"{name}.onnx", datatypes))
        assert response.status_code == 201, response.text


# --- Building and reading bodies ---


def raw_tensor(datatype: str, array: np.ndarray) -> bytes:
    if datatype == "BYTES":
        return b"".join(struct.pack("<I", len(item)) + item for item in array.ravel().tolist())
    return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()


def binary_request(
    document: dict[str, Any], chunks: list[bytes] = (), header_length: int | None = None
) -> tuple[bytes, dict[str, str]]:
    header = json.dumps(document).encode()
    length = len(header) if header_length is None else header_length
    return header + b"".join(chunks), {
        "Inference-Header-Content-Length": str(length),
        "Content-Type": "application/octet-stream",
    }


def binary_input(name: str, datatype: str, shape: list[int], raw: bytes) -> dict[str, Any]:
    return {
        "name": name,
        "datatype": datatype,
        "shape": shape,
        "parameters": {"binary_data_size": len(raw)},
    }


class RawTensor(NamedTuple):
    """An input sent as given, e.g. BF16 bytes for a float input."""

    datatype: str
    shape: list[int]
    raw: bytes


def identity_request(
    chosen: dict[str, Any], extra: dict[str, Any] | None = None
) -> tuple[bytes, dict[str, str]]:
    """Every input of the identity model in binary: ``chosen`` arrays (or ``RawTensor``s),
    zeros elsewhere."""
    first = next(iter(chosen.values()))
    rows = first.shape[0]
    inputs, chunks = [], []
    for datatype in DATATYPES:
        array = chosen.get(datatype)
        if isinstance(array, RawTensor):
            inputs.append(binary_input(f"in_{datatype.lower()}", *array))
            chunks.append(array.raw)
            continue
        if array is None:
            array = (
                np.array([b""] * rows * 3, dtype=object).reshape(rows, 3)
                if datatype == "BYTES"
                else np.zeros((rows, 3), dtype=stress_values(datatype).dtype)
            )
        raw = raw_tensor(datatype, array)
        inputs.append(binary_input(f"in_{datatype.lower()}", datatype, list(array.shape), raw))
        chunks.append(raw)
    return binary_request({"inputs": inputs, **(extra or {})}, chunks)


def read_response(response: httpx.Response) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The JSON header and every output as an array (binary or JSON)."""
    assert response.status_code == 200, response.text
    length = response.headers.get("inference-header-content-length")
    body = response.content
    header_length = int(length) if length is not None else len(body)
    document = json.loads(body[:header_length])
    offset = header_length
    arrays: dict[str, np.ndarray] = {}
    for output in document["outputs"]:
        datatype = output["datatype"]
        dtype = np.dtype(object) if datatype == "BYTES" else stress_values(datatype).dtype
        size = output.get("parameters", {}).get("binary_data_size")
        if size is None:
            data = output["data"]
            if datatype == "BYTES":
                data = [item.encode() for item in data]
            arrays[output["name"]] = np.array(data, dtype=dtype).reshape(output["shape"])
            continue
        raw = body[offset : offset + size]
        offset += size
        if datatype == "BYTES":
            items, cursor = [], 0
            while cursor < len(raw):
                (item_length,) = struct.unpack_from("<I", raw, cursor)
                items.append(raw[cursor + 4 : cursor + 4 + item_length])
                cursor += 4 + item_length
            arrays[output["name"]] = np.array(items, dtype=object).reshape(output["shape"])
        else:
            flat = np.frombuffer(raw, dtype=dtype.newbyteorder("<"))
            arrays[output["name"]] = flat.astype(dtype).reshape(output["shape"])
    assert offset == len(body), "bytes left over after the last binary output"
    return document, arrays


def assert_exact(expected: np.ndarray, got: np.ndarray, what: str = "") -> None:
    assert got.shape == expected.shape, what
    if expected.dtype == np.object_:
        assert got.ravel().tolist() == expected.ravel().tolist(), what
        return
    assert got.dtype == expected.dtype, what
    if expected.dtype.kind == "f":
        bits = f"u{expected.dtype.itemsize}"
        assert np.array_equal(got.view(bits), expected.view(bits)), f"{what}: {got}"
    else:
        assert np.array_equal(got, expected), f"{what}: {got}"


def post(client: httpx.Client, model: str, request: tuple[bytes, dict[str, str]]) -> httpx.Response:
    content, headers = request
    return client.post(f"/v2/models/{model}/infer", content=content, headers=headers)


def assert_healthy(server: ServerProcess, admin: httpx.Client) -> None:
    assert httpx.get(f"{server.url}/v2/health/live", timeout=10).status_code == 200
    body = {"inputs": [{"name": "in_fp32", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
    response = admin.post(f"/v2/models/{SMALL}/infer", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [1.0, 2.0, 3.0]


# --- Well-formed binary requests ---


def test_every_datatype_round_trips_through_binary_bodies(
    models: None, admin: httpx.Client
) -> None:
    chosen = {datatype: stress_values(datatype)[:2] for datatype in DATATYPES}
    extra = {"id": "binary-all", "parameters": {"binary_data_output": True}}
    document, arrays = read_response(post(admin, IDENTITY, identity_request(chosen, extra)))
    assert document["id"] == "binary-all"
    assert [o["name"] for o in document["outputs"]] == [f"out_{dt.lower()}" for dt in DATATYPES]
    assert all("data" not in output for output in document["outputs"])
    for datatype, values in chosen.items():
        assert_exact(values, arrays[f"out_{datatype.lower()}"], datatype)


@pytest.mark.parametrize("datatype", DATATYPES)
def test_binary_input_json_output(models: None, admin: httpx.Client, datatype: str) -> None:
    """Binary in, JSON out (no binary_data asked for): exact wherever JSON can say it."""
    values = stress_values(datatype, finite=True)
    output = {"name": f"out_{datatype.lower()}"}
    document, arrays = read_response(
        post(admin, IDENTITY, identity_request({datatype: values}, {"outputs": [output]}))
    )
    assert "data" in document["outputs"][0]
    assert_exact(values, arrays[f"out_{datatype.lower()}"], datatype)


def test_outputs_are_chosen_and_binary_per_output(models: None, admin: httpx.Client) -> None:
    chosen = {"INT8": stress_values("INT8"), "BYTES": stress_values("BYTES")[:2]}
    chosen["FP64"] = stress_values("FP64")[:2]
    outputs = [
        {"name": "out_fp64", "parameters": {"binary_data": True}},
        {"name": "out_int8"},
        {"name": "out_bytes", "parameters": {"binary_data": True}},
    ]
    document, arrays = read_response(
        post(admin, IDENTITY, identity_request(chosen, {"outputs": outputs}))
    )
    assert [o["name"] for o in document["outputs"]] == ["out_fp64", "out_int8", "out_bytes"]
    fp64, int8, text = document["outputs"]
    assert fp64["parameters"]["binary_data_size"] == 6 * 8 and "data" not in fp64
    assert int8["data"] == chosen["INT8"].ravel().tolist()
    assert "data" not in text
    for datatype, values in chosen.items():
        assert_exact(values, arrays[f"out_{datatype.lower()}"], datatype)
    # binary_data_output for all, one output turned back to JSON
    outputs = [{"name": "out_int8", "parameters": {"binary_data": False}}, {"name": "out_fp64"}]
    extra = {"outputs": outputs, "parameters": {"binary_data_output": True}}
    document, arrays = read_response(post(admin, IDENTITY, identity_request(chosen, extra)))
    int8, fp64 = document["outputs"]
    assert "data" in int8 and "data" not in fp64
    assert_exact(chosen["FP64"], arrays["out_fp64"])


def test_parameters_and_id_are_accepted(models: None, admin: httpx.Client) -> None:
    body = {
        "id": "with-parameters-\u00e9",
        "parameters": {"priority": 0, "note": "x", "flag": True, "nested": {"a": [1]}},
        "inputs": [
            {
                "name": "in_fp32",
                "shape": [1, 3],
                "datatype": "FP32",
                "data": [0.5, -1.5, 2.5],
                "parameters": {"note": "tensor", "n": 3},
            }
        ],
        "outputs": [{"name": "out_fp32", "parameters": {"note": "out"}}],
    }
    response = admin.post(f"/v2/models/{SMALL}/infer", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "with-parameters-\u00e9"
    assert response.json()["outputs"][0]["data"] == [0.5, -1.5, 2.5]


def test_mixed_json_and_binary_inputs(models: None, admin: httpx.Client) -> None:
    values = stress_values("FP32")[:2]
    raw = raw_tensor("FP32", values)
    inputs = [binary_input("in_fp32", "FP32", [2, 3], raw)]
    document = {
        "inputs": inputs,
        "outputs": [{"name": "out_fp32", "parameters": {"binary_data": True}}],
    }
    _, arrays = read_response(post(admin, SMALL, binary_request(document, [raw])))
    assert_exact(values, arrays["out_fp32"])
    # A JSON tensor in the header, no binary part: header length = whole body.
    json_only = {
        "inputs": [{"name": "in_fp32", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]
    }
    _, arrays = read_response(post(admin, SMALL, binary_request(json_only)))
    assert arrays["out_fp32"].tolist() == [[1.0, 2.0, 3.0]]


def test_raw_binary_request(models: None, admin: httpx.Client) -> None:
    """Header length 0: the whole body is the single input's bytes; outputs are binary."""
    values = stress_values("FP32")  # five rows, NaNs and infinities included
    response = admin.post(
        f"/v2/models/{SMALL}/infer",
        content=raw_tensor("FP32", values),
        headers={"Inference-Header-Content-Length": "0"},
    )
    assert response.headers["content-type"] == "application/octet-stream"
    document, arrays = read_response(response)
    [output] = document["outputs"]
    assert output["name"] == "out_fp32" and output["shape"] == [5, 3]
    assert output["parameters"]["binary_data_size"] == values.nbytes
    assert_exact(values, arrays["out_fp32"])


def test_bf16_is_widened_exactly(models: None, admin: httpx.Client) -> None:
    """BF16 bytes for a float input reach the model widened without rounding."""
    bits = np.array([0x0001, 0x8000, 0x7F7F, 0x3F80, 0x7F80, 0x7FC1], dtype=np.uint16)
    bf16 = RawTensor("BF16", [2, 3], bits.astype("<u2").tobytes())
    for datatype, dtype in (("FP32", np.float32), ("FP64", np.float64)):
        output = {"name": f"out_{datatype.lower()}", "parameters": {"binary_data": True}}
        request = identity_request(
            {"INT8": np.zeros((2, 3), np.int8), datatype: bf16}, {"outputs": [output]}
        )
        _, arrays = read_response(post(admin, IDENTITY, request))
        widened = (bits.astype(np.uint32) << 16).view(np.float32).astype(dtype).reshape(2, 3)
        assert_exact(widened, arrays[output["name"]], datatype)


def test_invalid_utf8_bytes(models: None, admin: httpx.Client, server: ServerProcess) -> None:
    """BYTES that are not UTF-8 cannot reach an ONNX string tensor: a 400 (or, if the server
    passes them through, exactly the same bytes back, also as JSON without a 500)."""
    values = np.array([b"\xff\xfe", b"ok", b"\xc3("], dtype=object).reshape(1, 3)
    for output in (
        {"name": "out_bytes", "parameters": {"binary_data": True}},
        {"name": "out_bytes"},
    ):
        response = post(admin, IDENTITY, identity_request({"BYTES": values}, {"outputs": [output]}))
        assert response.status_code in (200, 400), response.text
        if response.status_code == 400:
            assert "utf-8" in response.json()["error"].lower()
        elif "binary_data" in output.get("parameters", {}):
            assert_exact(values, read_response(response)[1]["out_bytes"])
    assert_healthy(server, admin)


# --- Hostile bodies ---

FP32_ROW = raw_tensor("FP32", np.array([[1, 2, 3]], dtype=np.float32))


def fp32(shape: list[int], raw: bytes = FP32_ROW, **extra: Any) -> tuple[bytes, dict[str, str]]:
    tensor = binary_input("in_fp32", "FP32", shape, raw)
    tensor["parameters"].update(extra)
    return binary_request({"inputs": [tensor]}, [raw])


def fp32_json(
    shape: list[Any], data: Any = (1, 2, 3), **tensor: Any
) -> tuple[bytes, dict[str, str]]:
    item = {"name": "in_fp32", "shape": shape, "datatype": "FP32", "data": list(data), **tensor}
    return json.dumps({"inputs": [item]}).encode(), {"Content-Type": "application/json"}


def bytes_input(raw: bytes, shape: list[int] | None = None) -> tuple[bytes, dict[str, str]]:
    """Only ``in_bytes`` matters: the request fails while decoding it."""
    tensor = binary_input("in_bytes", "BYTES", shape or [1, 3], raw)
    return binary_request({"inputs": [tensor]}, [raw])


def with_header_length(value: str | bytes) -> tuple[bytes, dict[str, Any]]:
    content, headers = fp32([1, 3])
    headers["Inference-Header-Content-Length"] = value
    return content, headers


def prefixed(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def header_not_json() -> tuple[bytes, dict[str, str]]:
    header = b"{not json"
    return header + FP32_ROW, {"Inference-Header-Content-Length": str(len(header))}


def truncated(request: tuple[bytes, dict[str, str]], cut: int) -> tuple[bytes, dict[str, str]]:
    return request[0][:-cut], request[1]


def padded(request: tuple[bytes, dict[str, str]], extra: bytes) -> tuple[bytes, dict[str, str]]:
    return request[0] + extra, request[1]


HOSTILE: list[tuple[str, str, tuple[bytes, dict[str, Any]], str]] = [
    ("header length past the body", SMALL, with_header_length("100000"), "larger than the body"),
    ("header length over 2^31", SMALL, with_header_length(str(2**31 + 7)), "larger than the body"),
    ("header length over 2^64", SMALL, with_header_length(str(2**64)), "larger than the body"),
    ("negative header length", SMALL, with_header_length("-5"), "non-negative integer"),
    ("non-numeric header length", SMALL, with_header_length("twelve"), "non-negative integer"),
    ("hex header length", SMALL, with_header_length("0x10"), "non-negative integer"),
    (
        "superscript digit header length",
        SMALL,
        with_header_length("\u00b2".encode("latin-1")),
        "non-negative integer",
    ),
    ("binary_data_size past the end", SMALL, truncated(fp32([1, 3]), 4), "past the end"),
    (
        "extra bytes after the last input",
        SMALL,
        padded(fp32([1, 3]), b"\0" * 4),
        "after the last binary input",
    ),
    (
        "negative binary_data_size",
        SMALL,
        binary_request(
            {
                "inputs": [
                    {
                        "name": "in_fp32",
                        "shape": [1, 3],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": -12},
                    }
                ]
            },
            [FP32_ROW],
        ),
        "binary_data_size",
    ),
    (
        "binary_data_size and data",
        SMALL,
        binary_request(
            {"inputs": [{**binary_input("in_fp32", "FP32", [1, 3], FP32_ROW), "data": [1, 2, 3]}]},
            [FP32_ROW],
        ),
        "both",
    ),
    (
        "truncated BYTES length prefix",
        IDENTITY,
        bytes_input(prefixed(b"a", b"b") + b"\x01\x00"),
        "truncated BYTES length prefix",
    ),
    (
        "BYTES element longer than the rest",
        IDENTITY,
        bytes_input(prefixed(b"a", b"b") + struct.pack("<I", 99) + b"c"),
        "claims 99 bytes",
    ),
    (
        "BYTES element of 2^32-1 bytes",
        IDENTITY,
        bytes_input(struct.pack("<I", 2**32 - 1) + b"x"),
        "claims 4294967295 bytes",
    ),
    (
        "BYTES count disagrees with shape",
        IDENTITY,
        bytes_input(prefixed(b"a", b"b")),
        "needs 3 BYTES elements",
    ),
    (
        "BOOL byte 2",
        IDENTITY,
        binary_request(
            {"inputs": [binary_input("in_bool", "BOOL", [1, 3], b"\x01\x02\x00")]},
            [b"\x01\x02\x00"],
        ),
        "0 or 1",
    ),
    ("shape 2^63 (JSON)", SMALL, fp32_json([2**63]), "too large"),
    ("shape 2^63 (binary)", SMALL, fp32([2**63, 3]), "too large"),
    ("shape [2^62, 2^62] (JSON)", SMALL, fp32_json([2**62, 2**62]), "needs"),
    ("shape [2^62, 2^62] (binary)", SMALL, fp32([2**62, 2**62]), "needs"),
    ("shape [2^62, 2^62] (BYTES)", IDENTITY, bytes_input(prefixed(b"a"), [2**62, 2**62]), "needs"),
    ("negative dimension (JSON)", SMALL, fp32_json([-1, 3]), "negative"),
    ("negative dimension (binary)", SMALL, fp32([-1, 3]), "negative"),
    ("shape disagrees with data (JSON)", SMALL, fp32_json([2, 3]), "needs 6 values"),
    ("shape disagrees with data (binary)", SMALL, fp32([2, 3]), "needs 24 bytes"),
    (
        "duplicate input names",
        SMALL,
        binary_request(
            {"inputs": [binary_input("in_fp32", "FP32", [1, 3], FP32_ROW)] * 2}, [FP32_ROW] * 2
        ),
        "more than once",
    ),
    (
        "unknown output",
        SMALL,
        binary_request(
            {
                "inputs": [binary_input("in_fp32", "FP32", [1, 3], FP32_ROW)],
                "outputs": [{"name": "nope"}],
            },
            [FP32_ROW],
        ),
        "unknown output 'nope'",
    ),
    ("header is not JSON", SMALL, header_not_json(), "not valid JSON"),
    (
        "body is not JSON",
        SMALL,
        (b"inputs=1", {"Content-Type": "application/json"}),
        "not valid JSON",
    ),
    (
        "header is a JSON list",
        SMALL,
        (b"[1, 2]", {"Inference-Header-Content-Length": "6"}),
        "object",
    ),
    (
        "raw body of the wrong length",
        SMALL,
        (b"\0" * 13, {"Inference-Header-Content-Length": "0"}),
        "does not fit",
    ),
    (
        "raw body for a model with many inputs",
        IDENTITY,
        (b"\0" * 12, {"Inference-Header-Content-Length": "0"}),
        "exactly one input",
    ),
    ("BF16 as JSON", SMALL, fp32_json([1, 3], datatype="BF16"), "binary"),
    (
        "lone surrogate in JSON BYTES",
        IDENTITY,
        (
            b'{"inputs": [{"name": "in_bytes", "shape": [1, 3], "datatype": "BYTES", '
            b'"data": ["\\ud800", "a", "b"]}]}',
            {"Content-Type": "application/json"},
        ),
        "",
    ),
]


@pytest.mark.parametrize(
    ("model", "request_", "message"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
def test_hostile_bodies_get_400_and_the_server_stays_healthy(
    models: None,
    admin: httpx.Client,
    server: ServerProcess,
    model: str,
    request_: tuple[bytes, dict[str, Any]],
    message: str,
) -> None:
    response = post(admin, model, request_)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert isinstance(error, str) and message in error
    assert_healthy(server, admin)
