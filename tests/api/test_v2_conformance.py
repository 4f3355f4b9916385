"""Open Inference Protocol V2 conformance, driven by the real ``tritonclient[http,grpc]``.

An ONNX identity model (one Identity node per datatype) makes every value the client
sends come straight back, so each datatype is checked for an exact, bit-for-bit round
trip over HTTP with the binary tensor extension on and off, and over gRPC with raw and
typed contents. Repository, statistics, streaming and error mapping are checked with
models pushed here, so no other test's requests show up in the counts.

This module never imports ``modelport.api.grpc`` (its generated protobuf module and
tritonclient's ``service_pb2`` register the same names): the server runs in a subprocess.
"""

from __future__ import annotations

import contextlib
import queue
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import ml_dtypes
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.api.test_management import upload
from tests.conftest import ADMIN_KEY
from tests.models import IDENTITY_TYPES, identity_onnx, stress_values
from tests.servers import ServerProcess

DATATYPES = list(IDENTITY_TYPES)
NUMPY = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}
IDENTITY = "conformance-identity"
TYPED = "conformance-typed"  # every datatype that has a typed gRPC contents field
SMALL = "conformance-small"  # a single FP32 input: streaming and error cases
TYPED_TYPES = [datatype for datatype in DATATYPES if datatype != "FP16"]


def http_auth() -> dict[str, str]:
    # tritonclient.http adds Inference-Header-Content-Length to the dict it is given, so
    # every call needs a fresh one.
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


def grpc_auth(key: str = ADMIN_KEY) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def push(admin: httpx.Client, name: str, directory: Path, datatypes: list[str] | None) -> str:
    response = upload(admin, name, identity_onnx(directory / f"{name}.onnx", datatypes))
    assert response.status_code == 201, response.text
    return name


@pytest.fixture(scope="module")
def models(admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("conformance-models")
    return {
        "identity": push(admin, IDENTITY, directory, None),
        "typed": push(admin, TYPED, directory, TYPED_TYPES),
        "small": push(admin, SMALL, directory, ["FP32"]),
    }


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}", network_timeout=30)
    yield client
    client.close()


@pytest.fixture(scope="module")
def grpc_client(server: ServerProcess) -> Iterator[grpcclient.InferenceServerClient]:
    client = grpcclient.InferenceServerClient(url=f"127.0.0.1:{server.grpc_port}")
    yield client
    client.close()


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Iterator[Any]:
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def fresh_model(admin: httpx.Client, tmp_path: Path, name: str) -> str:
    """A single-FP32-input identity model only this test uses."""
    return push(admin, name, tmp_path, ["FP32"])


# --- Comparing results exactly ---


def as_bytes(item: Any) -> bytes:
    return item if isinstance(item, bytes) else str(item).encode("utf-8")


def assert_exact(expected: np.ndarray, got: np.ndarray | None, what: str = "") -> None:
    """Equal shapes, datatypes and values; floats compared by their bit patterns (so NaN
    payloads, -0.0 and subnormals count), BYTES as the bytes of each element."""
    assert got is not None, f"{what}: no such output"
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    if expected.dtype == np.object_:
        assert [as_bytes(x) for x in got.ravel()] == [as_bytes(x) for x in expected.ravel()], what
        return
    assert got.dtype == expected.dtype, f"{what}: dtype {got.dtype} != {expected.dtype}"
    if expected.dtype.kind == "f":
        bits = f"u{expected.dtype.itemsize}"
        assert np.array_equal(got.view(bits), expected.view(bits)), f"{what}: {got} != {expected}"
    else:
        assert np.array_equal(got, expected), f"{what}: {got} != {expected}"


def filler(datatype: str, rows: int) -> np.ndarray:
    if datatype == "BYTES":
        return np.array([b"-"] * rows * 3, dtype=object).reshape(rows, 3)
    return np.zeros((rows, 3), dtype=NUMPY[datatype])


def feeds(datatypes: list[str], chosen: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """An array for every input: ``chosen`` ones, the rest filled to the same batch."""
    rows = next(iter(chosen.values())).shape[0]
    return {dt: chosen[dt] if dt in chosen else filler(dt, rows) for dt in datatypes}


def http_inputs(arrays: dict[str, np.ndarray], binary: bool) -> list[httpclient.InferInput]:
    inputs = []
    for datatype, array in arrays.items():
        tensor = httpclient.InferInput(f"in_{datatype.lower()}", list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs


def grpc_inputs(arrays: dict[str, np.ndarray]) -> list[grpcclient.InferInput]:
    inputs = []
    for datatype, array in arrays.items():
        tensor = grpcclient.InferInput(f"in_{datatype.lower()}", list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


def small_input(array: np.ndarray, client: Any = grpcclient) -> list[Any]:
    tensor = client.InferInput("in_fp32", list(array.shape), "FP32")
    tensor.set_data_from_numpy(array)
    return [tensor]


# --- Server and model metadata, health ---


def test_server_metadata_lists_the_extensions(
    http: httpclient.InferenceServerClient, grpc_client: grpcclient.InferenceServerClient
) -> None:
    rest = http.get_server_metadata(headers=http_auth())
    assert rest["name"] == "modelport"
    assert {"binary_tensor_data", "model_repository", "statistics"} <= set(rest["extensions"])
    over_grpc = grpc_client.get_server_metadata(headers=grpc_auth(), as_json=True)
    assert over_grpc["name"] == "modelport"
    assert set(over_grpc["extensions"]) == set(rest["extensions"])


def test_liveness_and_readiness_need_no_key(
    http: httpclient.InferenceServerClient, grpc_client: grpcclient.InferenceServerClient
) -> None:
    assert http.is_server_live() and http.is_server_ready()
    assert grpc_client.is_server_live() and grpc_client.is_server_ready()


def test_model_metadata_and_readiness(
    models: dict[str, str],
    http: httpclient.InferenceServerClient,
    grpc_client: grpcclient.InferenceServerClient,
) -> None:
    rest = http.get_model_metadata(IDENTITY, headers=http_auth())
    assert rest["name"] == IDENTITY and rest["versions"] == ["1"]
    assert rest["platform"] == "onnxruntime_onnx"
    expected_inputs = [
        {"name": f"in_{dt.lower()}", "datatype": dt, "shape": [-1, 3]} for dt in DATATYPES
    ]
    assert rest["inputs"] == expected_inputs
    assert [o["name"] for o in rest["outputs"]] == [f"out_{dt.lower()}" for dt in DATATYPES]
    assert http.get_model_metadata(IDENTITY, "1", headers=http_auth()) == rest
    over_grpc = grpc_client.get_model_metadata(IDENTITY, headers=grpc_auth(), as_json=True)
    assert over_grpc["name"] == IDENTITY and over_grpc["platform"] == "onnxruntime_onnx"
    assert [(i["name"], i["datatype"], i["shape"]) for i in over_grpc["inputs"]] == [
        (i["name"], i["datatype"], ["-1", "3"])
        for i in expected_inputs  # int64 as JSON strings
    ]
    assert http.is_model_ready(IDENTITY, headers=http_auth())
    assert grpc_client.is_model_ready(IDENTITY, headers=grpc_auth())
    assert grpc_client.is_model_ready(IDENTITY, "1", headers=grpc_auth())
    with pytest.raises(InferenceServerException) as missing:
        http.get_model_metadata("conformance-ghost", headers=http_auth())
    assert missing.value.status() == "404"
    assert "conformance-ghost" in str(missing.value.message())


# --- Exact round trips of every datatype ---


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", DATATYPES)
def test_http_round_trip_is_exact(
    models: dict[str, str], http: httpclient.InferenceServerClient, datatype: str, binary: bool
) -> None:
    # JSON has no NaN or infinity, so the JSON form carries finite values only.
    values = stress_values(datatype, finite=not binary)
    outputs = [httpclient.InferRequestedOutput(f"out_{datatype.lower()}", binary_data=binary)]
    result = http.infer(
        IDENTITY,
        http_inputs(feeds(DATATYPES, {datatype: values}), binary),
        outputs=outputs,
        request_id=f"round-trip-{datatype}",
        headers=http_auth(),
    )
    response = result.get_response()
    assert response["id"] == f"round-trip-{datatype}"
    assert [o["name"] for o in response["outputs"]] == [f"out_{datatype.lower()}"]
    output = response["outputs"][0]
    assert output["datatype"] == datatype
    assert ("binary_data_size" in output.get("parameters", {})) is binary
    assert_exact(values, result.as_numpy(f"out_{datatype.lower()}"), datatype)


@pytest.mark.parametrize("datatype", DATATYPES)
def test_grpc_round_trip_is_exact(
    models: dict[str, str], grpc_client: grpcclient.InferenceServerClient, datatype: str
) -> None:
    values = stress_values(datatype)
    result = grpc_client.infer(
        IDENTITY,
        grpc_inputs(feeds(DATATYPES, {datatype: values})),
        outputs=[grpcclient.InferRequestedOutput(f"out_{datatype.lower()}")],
        request_id=f"grpc-{datatype}",
        headers=grpc_auth(),
    )
    response = result.get_response()
    assert response.id == f"grpc-{datatype}"
    assert [o.name for o in response.outputs] == [f"out_{datatype.lower()}"]
    assert_exact(values, result.as_numpy(f"out_{datatype.lower()}"), datatype)


def test_every_output_comes_back_when_none_is_named(
    models: dict[str, str],
    http: httpclient.InferenceServerClient,
    grpc_client: grpcclient.InferenceServerClient,
) -> None:
    """All datatypes in one request; without ``outputs`` tritonclient asks for binary
    outputs (``binary_data_output``) and gets every output of the model."""
    arrays = {dt: stress_values(dt)[:2] for dt in DATATYPES}
    rest = http.infer(IDENTITY, http_inputs(arrays, True), headers=http_auth())
    names = [o["name"] for o in rest.get_response()["outputs"]]
    assert names == [f"out_{dt.lower()}" for dt in DATATYPES]
    assert all("binary_data_size" in o["parameters"] for o in rest.get_response()["outputs"])
    over_grpc = grpc_client.infer(IDENTITY, grpc_inputs(arrays), headers=grpc_auth())
    for datatype, values in arrays.items():
        assert_exact(values, rest.as_numpy(f"out_{datatype.lower()}"), f"http {datatype}")
        assert_exact(values, over_grpc.as_numpy(f"out_{datatype.lower()}"), f"grpc {datatype}")


def bf16_values() -> np.ndarray:
    finite = [0x0001, 0x8001, 0x007F, 0x0080, 0x7F7F, 0xFF7F, 0x3F80, 0xC020, 0x8000]
    special = [0x7F80, 0xFF80, 0x7FC1]  # +inf, -inf, a NaN with a payload
    return np.array([*finite, *special], dtype=np.uint16).view(ml_dtypes.bfloat16).reshape(-1, 3)


@pytest.mark.parametrize("target", ["FP32", "FP64"])
def test_bf16_is_widened_exactly(
    models: dict[str, str],
    http: httpclient.InferenceServerClient,
    grpc_client: grpcclient.InferenceServerClient,
    target: str,
) -> None:
    """BF16 sent for a float input reaches the model as the same values, widened: the
    FP32 output holds the BF16 pattern in its upper 16 bits and zeros below."""
    values = bf16_values()
    widened = (values.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    expected = widened.astype(NUMPY[target])  # float32 → float64 is exact too
    arrays = feeds(DATATYPES, {target: np.zeros(values.shape, NUMPY[target])})
    name = f"in_{target.lower()}"
    rest_inputs = [i for i in http_inputs(arrays, True) if i.name() != name]
    bf16 = httpclient.InferInput(name, list(values.shape), "BF16")
    rest_inputs.append(bf16.set_data_from_numpy(values, binary_data=True))
    output = f"out_{target.lower()}"
    rest = http.infer(
        IDENTITY,
        rest_inputs,
        outputs=[httpclient.InferRequestedOutput(output, binary_data=True)],
        headers=http_auth(),
    )
    assert_exact(expected, rest.as_numpy(output), f"http BF16→{target}")
    grpc_inputs_ = [i for i in grpc_inputs(arrays) if i.name() != name]
    grpc_bf16 = grpcclient.InferInput(name, list(values.shape), "BF16")
    grpc_inputs_.append(grpc_bf16.set_data_from_numpy(values))
    over_grpc = grpc_client.infer(
        IDENTITY,
        grpc_inputs_,
        outputs=[grpcclient.InferRequestedOutput(output)],
        headers=grpc_auth(),
    )
    assert_exact(expected, over_grpc.as_numpy(output), f"grpc BF16→{target}")


def test_bf16_for_an_integer_input_is_refused(
    models: dict[str, str], http: httpclient.InferenceServerClient
) -> None:
    values = bf16_values()[:2]
    inputs = [i for i in http_inputs(feeds(DATATYPES, {"FP32": values.astype(np.float32)}), True)]
    inputs = [i for i in inputs if i.name() != "in_int32"]
    bf16 = httpclient.InferInput("in_int32", list(values.shape), "BF16")
    inputs.append(bf16.set_data_from_numpy(values))
    with pytest.raises(InferenceServerException) as refused:
        http.infer(IDENTITY, inputs, headers=http_auth())
    assert refused.value.status() == "400"
    assert "BF16" in str(refused.value.message())


def test_request_parameters_are_accepted(
    models: dict[str, str],
    http: httpclient.InferenceServerClient,
    grpc_client: grpcclient.InferenceServerClient,
) -> None:
    values = np.array([[1.5, -2.0, 3.25]], dtype=np.float32)
    parameters = {"note": "conformance", "attempt": 3, "trace": True}
    rest = http.infer(
        SMALL,
        small_input(values, httpclient),
        request_id="with-parameters",
        parameters=parameters,
        headers=http_auth(),
    )
    assert rest.get_response()["id"] == "with-parameters"
    assert_exact(values, rest.as_numpy("out_fp32"))
    over_grpc = grpc_client.infer(
        SMALL,
        small_input(values),
        request_id="with-parameters",
        parameters=parameters,
        headers=grpc_auth(),
    )
    assert over_grpc.get_response().id == "with-parameters"
    assert_exact(values, over_grpc.as_numpy("out_fp32"))


# --- gRPC: typed contents over a raw stub ---

TYPED_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def typed_values(datatype: str) -> np.ndarray:
    values = stress_values(datatype)
    if datatype in ("FP32", "FP64"):
        return values[:3]  # typed float fields travel as numbers: finite values only
    return values[:2]


def decode_raw(datatype: str, raw: bytes, shape: list[int]) -> np.ndarray:
    if datatype != "BYTES":
        return np.frombuffer(raw, dtype=np.dtype(NUMPY[datatype]).newbyteorder("<")).reshape(shape)
    items, offset = [], 0
    while offset < len(raw):
        (length,) = struct.unpack_from("<I", raw, offset)
        items.append(raw[offset + 4 : offset + 4 + length])
        offset += 4 + length
    return np.array(items, dtype=object).reshape(shape)


def typed_request(model: str, arrays: dict[str, np.ndarray]) -> Any:
    request = service_pb2.ModelInferRequest(model_name=model, id="typed")
    for datatype, array in arrays.items():
        tensor = request.inputs.add(
            name=f"in_{datatype.lower()}", datatype=datatype, shape=list(array.shape)
        )
        field = getattr(tensor.contents, TYPED_FIELD[datatype])
        field.extend(array.ravel().tolist())
    return request


def test_typed_request_uses_every_contents_field() -> None:
    request = typed_request(TYPED, {dt: typed_values(dt) for dt in TYPED_TYPES})
    used = {
        field
        for field in TYPED_FIELD.values()
        for tensor in request.inputs
        if len(getattr(tensor.contents, field))
    }
    assert used == set(TYPED_FIELD.values())


@pytest.mark.parametrize("datatype", TYPED_TYPES)
def test_typed_contents_round_trip(models: dict[str, str], stub: Any, datatype: str) -> None:
    values = typed_values(datatype)
    request = typed_request(TYPED, feeds(TYPED_TYPES, {datatype: values}))
    response = stub.ModelInfer(request, metadata=tuple(grpc_auth().items()), timeout=30)
    assert response.id == "typed" and response.model_name == TYPED
    outputs = zip(response.outputs, response.raw_output_contents, strict=True)
    by_name = {output.name: (output, raw) for output, raw in outputs}
    output, raw = by_name[f"out_{datatype.lower()}"]
    assert output.datatype == datatype and list(output.shape) == list(values.shape)
    assert_exact(values, decode_raw(datatype, raw, list(output.shape)), datatype)


def test_typed_contents_errors(models: dict[str, str], stub: Any) -> None:
    metadata = tuple(grpc_auth().items())
    arrays = {dt: typed_values(dt)[:1] for dt in TYPED_TYPES}
    out_of_range = typed_request(TYPED, arrays)
    int8 = next(i for i in out_of_range.inputs if i.datatype == "INT8")
    int8.contents.int_contents[0] = 300
    with pytest.raises(grpc.RpcError) as error:
        stub.ModelInfer(out_of_range, metadata=metadata, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "range" in error.value.details()
    too_few = typed_request(TYPED, arrays)
    next(i for i in too_few.inputs if i.datatype == "FP64").contents.fp64_contents.pop()
    with pytest.raises(grpc.RpcError) as error:
        stub.ModelInfer(too_few, metadata=metadata, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "fp64_contents" in error.value.details()
    fp16 = service_pb2.ModelInferRequest(model_name=IDENTITY)
    fp16.inputs.add(name="in_fp16", datatype="FP16", shape=[1, 3])
    fp16.inputs[0].contents.fp32_contents.extend([1.0, 2.0, 3.0])
    with pytest.raises(grpc.RpcError) as error:
        stub.ModelInfer(fp16, metadata=metadata, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "raw_input_contents" in error.value.details()
    assert stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=10).live


# --- gRPC errors and authentication ---


def grpc_status(call: Any) -> str:
    with pytest.raises(InferenceServerException) as error:
        call()
    return str(error.value.status())


def test_grpc_authentication(
    models: dict[str, str], grpc_client: grpcclient.InferenceServerClient
) -> None:
    values = np.ones((1, 3), dtype=np.float32)
    unauthenticated = "StatusCode.UNAUTHENTICATED"
    for headers in ({}, grpc_auth("mp_not-a-real-key"), {"authorization": "Basic abc"}):
        calls = [
            lambda h=headers: grpc_client.get_server_metadata(headers=h),
            lambda h=headers: grpc_client.get_model_metadata(SMALL, headers=h),
            lambda h=headers: grpc_client.is_model_ready(SMALL, headers=h),
            lambda h=headers: grpc_client.infer(SMALL, small_input(values), headers=h),
            lambda h=headers: grpc_client.get_inference_statistics(headers=h),
            lambda h=headers: grpc_client.get_model_repository_index(headers=h),
            lambda h=headers: grpc_client.unload_model(SMALL, headers=h),
        ]
        assert [grpc_status(call) for call in calls] == [unauthenticated] * len(calls)
    assert grpc_client.is_server_live() and grpc_client.is_server_ready()


def test_grpc_error_statuses(
    models: dict[str, str], grpc_client: grpcclient.InferenceServerClient
) -> None:
    values = np.ones((1, 3), dtype=np.float32)
    auth = grpc_auth()
    assert grpc_status(lambda: grpc_client.get_model_metadata("conf-ghost", headers=auth)) == (
        "StatusCode.NOT_FOUND"
    )
    assert grpc_status(
        lambda: grpc_client.infer("conf-ghost", small_input(values), headers=auth)
    ) == ("StatusCode.NOT_FOUND")
    assert grpc_status(lambda: grpc_client.is_model_ready("conf-ghost", headers=auth)) == (
        "StatusCode.NOT_FOUND"
    )
    wrong_width = np.ones((1, 4), dtype=np.float32)
    with pytest.raises(InferenceServerException) as bad:
        grpc_client.infer(SMALL, small_input(wrong_width), headers=auth)
    assert bad.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "[-1,3]" in str(bad.value.message())
    unknown_output = [grpcclient.InferRequestedOutput("nope")]
    with pytest.raises(InferenceServerException) as bad:
        grpc_client.infer(SMALL, small_input(values), outputs=unknown_output, headers=auth)
    assert bad.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "unknown output 'nope'" in str(bad.value.message())
    assert_exact(
        values, grpc_client.infer(SMALL, small_input(values), headers=auth).as_numpy("out_fp32")
    )


def test_stream_answers_in_order_and_one_bad_request_fails_alone(
    models: dict[str, str], server: ServerProcess
) -> None:
    results: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client = grpcclient.InferenceServerClient(url=f"127.0.0.1:{server.grpc_port}")
    try:
        client.start_stream(
            callback=lambda result, error: results.put((result, error)), headers=grpc_auth()
        )
        sent = []
        for index in range(7):
            values = np.full((index + 1, 3), index + 0.5, dtype=np.float32)
            if index == 3:
                values = np.ones((1, 5), dtype=np.float32)  # the wrong width
            sent.append(values)
            client.async_stream_infer(SMALL, small_input(values), request_id=f"stream-{index}")
        answers = [results.get(timeout=20) for _ in sent]
        client.stop_stream()
    finally:
        client.close()
    for index, (values, (result, error)) in enumerate(zip(sent, answers, strict=True)):
        if index == 3:
            assert result is None and error is not None
            assert "[-1,3]" in str(error.message())
            continue
        assert error is None, error
        assert result.get_response().id == f"stream-{index}"
        assert_exact(values, result.as_numpy("out_fp32"), f"stream-{index}")
    assert results.empty()


def test_stream_without_a_key_is_unauthenticated(
    models: dict[str, str], server: ServerProcess
) -> None:
    results: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client = grpcclient.InferenceServerClient(url=f"127.0.0.1:{server.grpc_port}")
    try:
        client.start_stream(callback=lambda result, error: results.put((result, error)))
        with contextlib.suppress(InferenceServerException):  # the stream may have ended
            client.async_stream_infer(SMALL, small_input(np.ones((1, 3), dtype=np.float32)))
        result, error = results.get(timeout=20)
        client.stop_stream()
    finally:
        client.close()
    assert result is None
    assert "UNAUTHENTICATED" in str(error.status()) or "UNAUTHENTICATED" in str(error)


# --- Repository and statistics ---


def small_body(values: list[float]) -> dict[str, Any]:
    return {"inputs": [{"name": "in_fp32", "shape": [1, 3], "datatype": "FP32", "data": values}]}


def test_rest_repository_index_unload_and_load(admin: httpx.Client, tmp_path: Path) -> None:
    name = fresh_model(admin, tmp_path, "conformance-unload")
    assert admin.post(f"/v2/models/{name}/infer", json=small_body([1, 2, 3])).status_code == 200
    assert name in admin.get("/v2/models").json()["models"]
    index = {entry["name"]: entry for entry in admin.post("/v2/repository/index").json()}
    assert index[name] == {"name": name, "version": "1", "state": "READY", "reason": ""}
    ready_only = admin.post("/v2/repository/index", json={"ready": True}).json()
    assert name in [entry["name"] for entry in ready_only]

    unloaded = admin.post(f"/v2/repository/models/{name}/unload", json={"parameters": {}})
    assert unloaded.status_code == 200, unloaded.text
    index = {entry["name"]: entry for entry in admin.post("/v2/repository/index", json={}).json()}
    assert index[name]["state"] == "UNAVAILABLE"
    assert f"/v2/repository/models/{name}/load" in index[name]["reason"]
    ready_only = admin.post("/v2/repository/index", json={"ready": True}).json()
    assert name not in [entry["name"] for entry in ready_only]
    refused = admin.post(f"/v2/models/{name}/infer", json=small_body([1, 2, 3]))
    assert refused.status_code == 503
    assert f"POST /v2/repository/models/{name}/load" in refused.json()["error"]
    # Asking whether it is ready must neither say yes nor bring it back.
    not_ready = admin.get(f"/v2/models/{name}/ready")
    assert not_ready.status_code == 503, not_ready.text
    assert admin.get(f"/v2/models/{name}/versions/1/ready").status_code == 503
    index = {entry["name"]: entry for entry in admin.post("/v2/repository/index").json()}
    assert index[name]["state"] == "UNAVAILABLE"
    assert admin.post(f"/v2/models/{name}/infer", json=small_body([1, 2, 3])).status_code == 503

    assert admin.post(f"/v2/repository/models/{name}/load").status_code == 200
    assert admin.get(f"/v2/models/{name}/ready").status_code == 200
    again = admin.post(f"/v2/models/{name}/infer", json=small_body([4, 5, 6]))
    assert again.status_code == 200 and again.json()["outputs"][0]["data"] == [4, 5, 6]
    assert admin.post("/v2/repository/models/conformance-ghost/unload").status_code == 404
    assert admin.post("/v2/repository/models/conformance-ghost/load").status_code == 404


def test_tritonclient_http_repository_calls(
    admin: httpx.Client, http: httpclient.InferenceServerClient, tmp_path: Path
) -> None:
    """tritonclient.http sends its load/unload JSON bodies without a Content-Type."""
    name = fresh_model(admin, tmp_path, "conformance-http-unload")
    values = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    http.infer(name, small_input(values, httpclient), headers=http_auth())
    index = {entry["name"]: entry for entry in http.get_model_repository_index(headers=http_auth())}
    assert index[name]["state"] == "READY"
    http.unload_model(name, headers=http_auth())
    with pytest.raises(InferenceServerException) as refused:
        http.infer(name, small_input(values, httpclient), headers=http_auth())
    assert refused.value.status() == "503"
    http.load_model(name, headers=http_auth())
    assert http.is_model_ready(name, headers=http_auth())
    result = http.infer(name, small_input(values, httpclient), headers=http_auth())
    assert_exact(values, result.as_numpy("out_fp32"))
    with pytest.raises(InferenceServerException) as missing:
        http.unload_model("conformance-ghost", headers=http_auth())
    assert missing.value.status() == "404"


def test_grpc_repository_index_load_and_unload(
    admin: httpx.Client, grpc_client: grpcclient.InferenceServerClient, tmp_path: Path
) -> None:
    name = fresh_model(admin, tmp_path, "conformance-grpc-unload")
    values = np.array([[4.0, 5.0, 6.0]], dtype=np.float32)
    auth = grpc_auth()
    grpc_client.infer(name, small_input(values), headers=auth)
    index = grpc_client.get_model_repository_index(headers=auth, as_json=True)["models"]
    assert {"name": name, "version": "1", "state": "READY"} in index
    grpc_client.unload_model(name, headers=auth)
    assert not grpc_client.is_model_ready(name, headers=auth)
    with pytest.raises(InferenceServerException) as refused:
        grpc_client.infer(name, small_input(values), headers=auth)
    assert refused.value.status() == "StatusCode.UNAVAILABLE"
    assert f"/v2/repository/models/{name}/load" in str(refused.value.message())
    ready = grpc_client.get_model_repository_index(headers=auth, as_json=True).get("models", [])
    assert name in [m["name"] for m in ready]  # the index lists it, not READY
    assert next(m for m in ready if m["name"] == name)["state"] == "UNAVAILABLE"
    grpc_client.load_model(name, headers=auth)
    assert grpc_client.is_model_ready(name, headers=auth)
    assert_exact(
        values, grpc_client.infer(name, small_input(values), headers=auth).as_numpy("out_fp32")
    )
    assert grpc_status(lambda: grpc_client.load_model("conf-ghost", headers=auth)) == (
        "StatusCode.NOT_FOUND"
    )


def counts(document: dict[str, Any], name: str) -> tuple[int, int, int]:
    """(success, fail, inference_count) of ``name`` in a statistics document; gRPC's JSON
    writes 64-bit integers as strings, and leaves out zeros."""
    [entry] = [e for e in document["model_stats"] if e["name"] == name]
    stats = entry["inference_stats"]
    return (
        int(stats.get("success", {}).get("count", 0)),
        int(stats.get("fail", {}).get("count", 0)),
        int(entry.get("inference_count", 0)),
    )


def test_statistics_count_exactly_the_requests_made(
    admin: httpx.Client,
    http: httpclient.InferenceServerClient,
    grpc_client: grpcclient.InferenceServerClient,
    tmp_path: Path,
) -> None:
    name = fresh_model(admin, tmp_path, "conformance-stats")
    good = np.ones((2, 3), dtype=np.float32)
    bad = np.ones((1, 4), dtype=np.float32)
    http.infer(name, small_input(good, httpclient), headers=http_auth())  # loads it

    def all_views() -> list[tuple[int, int, int]]:
        return [
            counts(admin.get(f"/v2/models/{name}/stats").json(), name),
            counts(admin.get(f"/v2/models/{name}/versions/1/stats").json(), name),
            counts(admin.get("/v2/models/stats").json(), name),
            counts(http.get_inference_statistics(name, headers=http_auth()), name),
            counts(
                grpc_client.get_inference_statistics(name, headers=grpc_auth(), as_json=True), name
            ),
            counts(
                grpc_client.get_inference_statistics(name, "1", headers=grpc_auth(), as_json=True),
                name,
            ),
            counts(grpc_client.get_inference_statistics(headers=grpc_auth(), as_json=True), name),
        ]

    before = all_views()
    assert len(set(before)) == 1, before
    success, fail, inferences = before[0]
    for _ in range(3):
        http.infer(name, small_input(good, httpclient), headers=http_auth())
    grpc_client.infer(name, small_input(good), headers=grpc_auth())
    for _ in range(2):
        with pytest.raises(InferenceServerException):
            http.infer(name, small_input(bad, httpclient), headers=http_auth())
    with pytest.raises(InferenceServerException):
        grpc_client.infer(name, small_input(bad), headers=grpc_auth())
    after = all_views()
    assert after == [(success + 4, fail + 3, inferences + 8)] * len(after), after
    document = admin.get(f"/v2/models/{name}/stats").json()
    [entry] = document["model_stats"]
    assert entry["version"] == "1" and entry["last_inference"] > 0
    assert entry["execution_count"] >= 1
    assert sum(b["compute_infer"]["count"] for b in entry["batch_stats"]) >= 1
    assert admin.get("/v2/models/conformance-ghost/stats").status_code == 404
