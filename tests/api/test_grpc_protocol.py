"""The gRPC protocol definition: the generated modules match inference.proto, and the
messages are wire-compatible with the real ``tritonclient[grpc]``.

ModelPort's generated module and tritonclient's ``service_pb2`` both register the same
``inference.*`` names in protobuf's default descriptor pool, so one Python process can
import only one of them. This test therefore imports neither: each side runs in its own
subprocess (this file run as a script, see ``_side``), and the pytest process compares
serialized bytes and descriptors.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor

REPO = Path(__file__).resolve().parents[2]
PROTO = "src/modelport/api/grpc/protocol/inference.proto"
GENERATED = ("inference_pb2.py", "inference_pb2.pyi", "inference_pb2_grpc.py")
PROTOCOL_DIR = REPO / "src/modelport/api/grpc/protocol"
SERVICE = "GRPCInferenceService"

# The messages a tritonclient user exchanges with the server; every other message in
# inference.proto is round-tripped too, these are just required to be there.
KEY_MESSAGES = (
    "ModelInferRequest",
    "ModelInferResponse",
    "ModelMetadataResponse",
    "ModelStatisticsResponse",
    "RepositoryIndexResponse",
    "ModelStreamInferResponse",
)


# --- Populating any message from its descriptor (runs inside the side subprocesses) ---


def _scalar(field: FieldDescriptor, index: int) -> Any:
    """A value for ``field`` that depends only on its number and type, so both sides build
    identical messages exactly when their definitions agree. Values are chosen to expose
    type mismatches that share a wire type: negative and above 32 bits for signed 64-bit
    fields, above 2**63 for unsigned 64-bit ones, non-ASCII strings."""
    n = field.number * 10 + index
    kind = field.type
    if kind == FieldDescriptor.TYPE_BOOL:
        return index % 2 == 0
    if kind in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32):
        return -(1000 + n)
    if kind in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64):
        return -(2**40 + n)
    if kind in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return 2**31 + n
    if kind in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return 2**63 + n
    if kind == FieldDescriptor.TYPE_FLOAT:
        return n + 0.5
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return n + 0.25
    if kind == FieldDescriptor.TYPE_STRING:
        return f"{field.name}-{n}-\u00e9\u6f22"
    if kind == FieldDescriptor.TYPE_BYTES:
        return f"{field.name}-{n}".encode() + b"\x00\xff"
    raise AssertionError(f"no test value for {field.full_name} (type {kind})")


def _copies(message_type: Descriptor) -> int:
    """How many elements a repeated or map field of this type gets: enough for every
    member of the element type's oneofs to be used once."""
    return max([2, *(len(oneof.fields) for oneof in message_type.oneofs)])


def _populate(message: Any, variant: int = 0, depth: int = 0) -> Any:
    """Set every field of ``message``, recursively. In a oneof, member ``variant`` (modulo
    the member count) is set; repeated and map fields hold one element per variant."""
    assert depth < 8, f"unexpectedly deep nesting at {message.DESCRIPTOR.full_name}"
    descriptor = message.DESCRIPTOR
    chosen = {oneof.fields[variant % len(oneof.fields)].name for oneof in descriptor.oneofs}
    for field in descriptor.fields:
        if field.containing_oneof is not None and field.name not in chosen:
            continue
        value = getattr(message, field.name)
        element = field.message_type
        if element is not None and element.GetOptions().map_entry:
            key_field, value_field = element.fields
            entry_type = value_field.message_type
            for i in range(_copies(entry_type) if entry_type else 2):
                key = _scalar(key_field, i)
                if entry_type is not None:
                    _populate(value[key], i, depth + 1)
                else:
                    value[key] = _scalar(value_field, i)
        elif field.is_repeated and element is not None:
            for i in range(_copies(element)):
                _populate(value.add(), i, depth + 1)
        elif field.is_repeated:
            value.extend(_scalar(field, i) for i in range(3))
        elif element is not None:
            _populate(value, variant, depth + 1)
        else:
            setattr(message, field.name, _scalar(field, variant))
    return message


class _RecordingChannel:
    """Stands in for a ``grpc.Channel``: records what a generated stub registers."""

    def __init__(self) -> None:
        self.methods: dict[str, dict[str, str]] = {}

    def _register(self, kind: str, path: str, **kwargs: Any) -> object:
        response_type = kwargs["response_deserializer"].__self__
        self.methods[path] = {"kind": kind, "response": response_type.DESCRIPTOR.full_name}
        return object()

    def unary_unary(self, path: str, **kwargs: Any) -> object:
        return self._register("unary_unary", path, **kwargs)

    def unary_stream(self, path: str, **kwargs: Any) -> object:
        return self._register("unary_stream", path, **kwargs)

    def stream_unary(self, path: str, **kwargs: Any) -> object:
        return self._register("stream_unary", path, **kwargs)

    def stream_stream(self, path: str, **kwargs: Any) -> object:
        return self._register("stream_stream", path, **kwargs)


def _side(which: str, request: dict[str, Any]) -> dict[str, Any]:
    """One side of the comparison, in a process of its own: build a populated message for
    every name in ``request["build"]``, parse and re-serialize the other side's bytes in
    ``request["parse"]``, and describe the file and the stub."""
    if which == "ours":
        from modelport.api.grpc.protocol import inference_pb2 as messages
        from modelport.api.grpc.protocol import inference_pb2_grpc as services
    else:
        from tritonclient.grpc import service_pb2 as messages
        from tritonclient.grpc import service_pb2_grpc as services

    def encode(message: Any) -> str:
        return base64.b64encode(message.SerializeToString(deterministic=True)).decode()

    reparsed = {}
    for name, data in request["parse"].items():
        message = getattr(messages, name).FromString(base64.b64decode(data))
        # Anything our definition lacks would survive as unknown fields and hide the gap.
        message.DiscardUnknownFields()
        reparsed[name] = encode(message)
    channel = _RecordingChannel()
    services.GRPCInferenceServiceStub(channel)
    return {
        "file": base64.b64encode(messages.DESCRIPTOR.serialized_pb).decode(),
        "built": {name: encode(_populate(getattr(messages, name)())) for name in request["build"]},
        "reparsed": reparsed,
        "stub": channel.methods,
    }


# --- Tests (pytest process: imports neither generated module) ---


def _run_side(which: str, build: list[str], parse: dict[str, str]) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, __file__, which],
        input=json.dumps({"build": build, "parse": parse}),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, f"{which} side failed:\n{completed.stderr}"
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def _file(side: dict[str, Any]) -> descriptor_pb2.FileDescriptorProto:
    return descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(side["file"]))


def _shape(message: descriptor_pb2.DescriptorProto) -> dict[str, Any]:
    """Everything about a message that matters on the wire or to generated code."""
    return {
        "fields": sorted(
            (
                f.name,
                f.number,
                f.label,
                f.type,
                f.type_name,
                message.oneof_decl[f.oneof_index].name if f.HasField("oneof_index") else None,
                f.proto3_optional,
            )
            for f in message.field
        ),
        "nested": {nested.name: _shape(nested) for nested in message.nested_type},
        "enums": sorted(enum.name for enum in message.enum_type),
        "map_entry": message.options.map_entry,
    }


@pytest.fixture(scope="module")
def sides() -> Iterator[tuple[dict[str, Any], dict[str, Any], list[str]]]:
    """(ours, tritonclient's, our message names), after a full exchange in both directions."""
    if importlib.util.find_spec("tritonclient") is None:
        pytest.skip("tritonclient[grpc] is not installed (dev extra)")
    probe = _run_side("ours", [], {})
    names = [message.name for message in _file(probe).message_type]
    ours = _run_side("ours", names, {})
    theirs = _run_side("triton", names, ours["built"])
    ours["reparsed"] = _run_side("ours", [], theirs["built"])["reparsed"]
    yield ours, theirs, names


def test_generated_modules_match_the_proto(tmp_path: Path) -> None:
    """`make proto` output is committed; regenerating must change nothing."""
    if importlib.util.find_spec("grpc_tools") is None:
        pytest.skip("grpcio-tools is not installed (dev extra)")
    command = [sys.executable, "-m", "grpc_tools.protoc", "-Isrc"]
    command += [f"--{kind}_out={tmp_path}" for kind in ("python", "pyi", "grpc_python")]
    completed = subprocess.run(
        [*command, PROTO], cwd=REPO, capture_output=True, text=True, check=False, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    tools = metadata.version("grpcio-tools")
    for name in GENERATED:
        fresh = (tmp_path / "modelport/api/grpc/protocol" / name).read_bytes()
        committed = (PROTOCOL_DIR / name).read_bytes()
        assert fresh == committed, (
            f"{name} is stale: run `make proto` (grpcio-tools {tools} installed; the "
            "committed files record the version that generated them)"
        )


def test_every_message_exists_in_tritonclient_with_the_same_fields(
    sides: tuple[dict[str, Any], dict[str, Any], list[str]],
) -> None:
    ours, theirs, names = sides
    assert set(KEY_MESSAGES) <= set(names)
    our_file, their_file = _file(ours), _file(theirs)
    assert (our_file.syntax, our_file.package) == (their_file.syntax, their_file.package)
    their_messages = {message.name: message for message in their_file.message_type}
    for message in our_file.message_type:
        assert message.name in their_messages, f"tritonclient has no inference.{message.name}"
        assert _shape(message) == _shape(their_messages[message.name]), message.name


@pytest.mark.parametrize("direction", ["tritonclient_to_ours", "ours_to_tritonclient"])
def test_populated_messages_round_trip_byte_for_byte(
    sides: tuple[dict[str, Any], dict[str, Any], list[str]], direction: str
) -> None:
    ours, theirs, names = sides
    sender, receiver = (theirs, ours) if direction == "tritonclient_to_ours" else (ours, theirs)
    has_fields = {message.name: bool(message.field) for message in _file(ours).message_type}
    for name in names:
        sent = base64.b64decode(sender["built"][name])
        assert sent or not has_fields[name], f"{name} was not populated"
        assert base64.b64decode(receiver["reparsed"][name]) == sent, name


def test_both_sides_build_identical_bytes(
    sides: tuple[dict[str, Any], dict[str, Any], list[str]],
) -> None:
    ours, theirs, names = sides
    for name in names:
        assert ours["built"][name] == theirs["built"][name], name


def test_every_rpc_matches_the_tritonclient_stub(
    sides: tuple[dict[str, Any], dict[str, Any], list[str]],
) -> None:
    ours, theirs, _ = sides
    expected = {
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
        "ModelStreamInfer",
        "ModelStatistics",
        "RepositoryIndex",
        "RepositoryModelLoad",
        "RepositoryModelUnload",
    }
    (our_service,) = _file(ours).service
    their_service = {service.name: service for service in _file(theirs).service}[SERVICE]
    assert our_service.name == SERVICE
    assert {method.name for method in our_service.method} == expected
    their_methods = {method.name: method for method in their_service.method}
    for method in our_service.method:
        assert method.name in their_methods, f"tritonclient has no {method.name} RPC"
        theirs_method = their_methods[method.name]
        assert (method.input_type, method.output_type) == (
            theirs_method.input_type,
            theirs_method.output_type,
        ), method.name
        assert (method.client_streaming, method.server_streaming) == (
            theirs_method.client_streaming,
            theirs_method.server_streaming,
        ), method.name
        # The stubs themselves: same path, same call shape, same response class.
        path = f"/inference.{SERVICE}/{method.name}"
        assert ours["stub"][path] == theirs["stub"][path], method.name
        assert ours["stub"][path]["response"] == method.output_type.lstrip(".")
    assert ours["stub"]["/inference.GRPCInferenceService/ModelStreamInfer"]["kind"] == (
        "stream_stream"
    )


if __name__ == "__main__":
    json.dump(_side(sys.argv[1], json.load(sys.stdin)), sys.stdout)
