"""Start a server pinned to one core, wait until it is ready, check its answers, stop it.

Each server runs in its own session so that stopping it also stops the worker processes it
spawned (MLServer's parallel workers); those inherit the core pinning from their parent.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import secrets
import signal
import struct
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from systems import HOST, Endpoint, Reference, Server


class ServerError(RuntimeError):
    """A server did not start, or answered wrongly."""


@contextmanager
def running(server: Server, core: int, log_path: Path, timeout: float) -> Iterator[int]:
    """Run `server` pinned to `core` while the block runs; yields its process id."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **server.env}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["taskset", "--cpu-list", str(core), *server.argv],
            cwd=server.cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_ready(server, process, log_path, timeout)
        yield process.pid
    finally:
        stop(process)


def wait_ready(
    server: Server, process: subprocess.Popen[bytes], log_path: Path, timeout: float
) -> None:
    """Poll until the ready path (or else the first endpoint) answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"exited with {process.returncode}; log:\n{log_tail(log_path)}")
        if server.ready_path is not None:
            status = request_status(server.port, server.ready_path, None, {})
        else:
            endpoint = server.endpoints[0]
            status = request_status(server.port, endpoint.path, endpoint.body, server.headers)
        if status == 200:
            return
        time.sleep(0.25)
    raise ServerError(f"not ready after {timeout:.0f} s; log:\n{log_tail(log_path)}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate the server's whole process group, killing what lingers."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _group_alive(process.pid):
            process.poll()  # reap the leader, or its zombie keeps the group alive
            time.sleep(0.1)
        if not _group_alive(process.pid):
            break
    process.poll()


def verify(
    server: Server, endpoint: Endpoint, reference: Reference, answer: Any = None
) -> float | None:
    """Send the endpoint's request once (unless its `answer` is given: gRPC's, fetched by
    grpcload.py); return the prediction after checking it against the reference: to 1e-6,
    or to 1e-4 relative for the FP32 endpoints."""
    if answer is None:
        answer = fetch_answer(server, endpoint)
    if endpoint.read_prediction is None:
        return None
    try:
        got = float(endpoint.read_prediction(answer))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ServerError(f"{endpoint.label}: unexpected answer {answer!r}") from exc
    if endpoint.fp32:
        if reference.prediction32 is None:
            raise ServerError(f"{endpoint.label}: no FP32 reference prediction")
        expected, tolerance = reference.prediction32, 1e-4 * max(1.0, abs(reference.prediction32))
    else:
        expected, tolerance = reference.prediction, 1e-6
    if not math.isclose(got, expected, rel_tol=0.0, abs_tol=tolerance):
        raise ServerError(f"{endpoint.label}: predicted {got!r}, expected {expected!r}")
    return got


def fetch_answer(server: Server, endpoint: Endpoint) -> Any:
    """The server's answer to the endpoint's request: parsed JSON, or for the binary
    extension the first output's values."""
    headers = {**server.headers, **endpoint.headers}
    if endpoint.protocol == "binary":
        return read_binary_answer(*post(server.port, endpoint.path, endpoint.body, headers))
    return request_json(server.port, endpoint.path, endpoint.body, headers)


def pinned_processes(pid: int) -> dict[int, set[int]]:
    """The cores each process in the tree under `pid` may run on."""
    tree: dict[int, set[int]] = {}
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            tree[current] = os.sched_getaffinity(current)
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (ProcessLookupError, FileNotFoundError):
            continue
    return tree


def request_status(port: int, path: str, body: bytes | None, headers: dict[str, str]) -> int:
    try:
        with _open(port, path, body, headers, timeout=2.0) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


def request_json(port: int, path: str, body: bytes | None, headers: dict[str, str]) -> Any:
    try:
        with _open(port, path, body, headers, timeout=10.0) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise ServerError(f"{path}: HTTP {exc.code}: {exc.read()[:500]!r}") from exc


def post(
    port: int, path: str, body: bytes, headers: dict[str, str], timeout: float = 30.0
) -> tuple[bytes, Any]:
    """POST `body` as is; return the answer's bytes and headers (ServerError unless 2xx)."""
    try:
        with _open(port, path, body, headers, timeout) as response:
            return response.read(), response.headers
    except urllib.error.HTTPError as exc:
        raise ServerError(f"{path}: HTTP {exc.code}: {exc.read()[:500]!r}") from exc


def get_text(port: int, path: str, headers: dict[str, str], timeout: float = 10.0) -> str | None:
    """GET `path`; its text, or None when it does not answer 200."""
    try:
        with _open(port, path, None, headers, timeout) as response:
            text: str = response.read().decode()
            return text
    except (urllib.error.URLError, OSError):
        return None


def read_binary_answer(body: bytes, headers: Any) -> list[float]:
    """The first output of a binary-extension answer (JSON header, then raw bytes)."""
    length = headers.get("Inference-Header-Content-Length")
    if length is None:
        raise ServerError(f"binary answer without Inference-Header-Content-Length: {body[:200]!r}")
    header = json.loads(body[: int(length)])
    output = header["outputs"][0]
    size = output["parameters"]["binary_data_size"]
    code = {"FP64": "d", "FP32": "f", "INT64": "q", "INT32": "i"}[output["datatype"]]
    raw = body[int(length) : int(length) + size]
    return [float(x) for x in struct.unpack(f"<{size // struct.calcsize(code)}{code}", raw)]


def upload_skops(port: int, model: str, artifact: Path, headers: dict[str, str]) -> Any:
    """Push one skops file to ModelPort as a new version (the model is created when
    missing); return the answer (the version's description)."""
    boundary = secrets.token_hex(16)
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{artifact.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + artifact.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    content_type = f"multipart/form-data; boundary={boundary}"
    answer, _ = post(
        port, f"/api/v1/models/{model}/versions", body, {**headers, "Content-Type": content_type}
    )
    return json.loads(answer)


def wait_model_ready(port: int, model: str, headers: dict[str, str], timeout: float = 60.0) -> None:
    """Poll V2 `/v2/models/NAME/ready` until it answers 200."""
    deadline = time.monotonic() + timeout
    while request_status(port, f"/v2/models/{model}/ready", None, headers) != 200:
        if time.monotonic() > deadline:
            raise ServerError(f"model {model} not ready after {timeout:.0f} s")
        time.sleep(0.25)


def log_tail(log_path: Path, lines: int = 25) -> str:
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])


def _open(
    port: int, path: str, body: bytes | None, headers: dict[str, str], timeout: float
) -> http.client.HTTPResponse:
    request = urllib.request.Request(
        f"http://{HOST}:{port}{path}",
        data=body,
        method="POST" if body is not None else "GET",
        headers={"Content-Type": "application/json", **headers},
    )
    # Loopback only: never route through a proxy from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    response: http.client.HTTPResponse = opener.open(request, timeout=timeout)
    return response


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
