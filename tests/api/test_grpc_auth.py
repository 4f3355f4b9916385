"""Deny by default on gRPC too: every RPC of the service declares its scope, and only the
two health RPCs are public. Checked in a subprocess, because ModelPort's generated
protobuf module and tritonclient's cannot be loaded in one process."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import inspect
from modelport.api.grpc.protocol import inference_pb2 as pb
from modelport.api.grpc.service import InferenceService
service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
public = []
for method in service.methods:
    handler = getattr(InferenceService, method.name)
    scope = getattr(handler, "scope", "missing")
    assert scope != "missing", f"{method.name} has no auth check"
    if scope is None:
        public.append(method.name)
print(",".join(sorted(public)))
"""


def test_every_rpc_declares_a_scope() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ServerLive,ServerReady"
