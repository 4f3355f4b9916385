"""Start a server pinned to one core, wait until it is ready, check its answers, stop it.

Each server runs in its own session so that stopping it also stops the worker processes it
spawned (MLServer's parallel workers); those inherit the core pinning from their parent.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from systems import HOST, Endpoint, Server


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


def verify(server: Server, endpoint: Endpoint, expected: float) -> float | None:
    """Send the endpoint's request once; return the prediction after checking it to 1e-6."""
    answer = request_json(server.port, endpoint.path, endpoint.body, server.headers)
    if endpoint.read_prediction is None:
        return None
    try:
        got = float(endpoint.read_prediction(answer))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ServerError(f"{endpoint.label}: unexpected answer {answer!r}") from exc
    if not math.isclose(got, expected, rel_tol=0.0, abs_tol=1e-6):
        raise ServerError(f"{endpoint.label}: predicted {got!r}, expected {expected!r}")
    return got


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


def request_json(port: int, path: str, body: bytes | None, headers: dict[str, str]) -> object:
    try:
        with _open(port, path, body, headers, timeout=10.0) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise ServerError(f"{path}: HTTP {exc.code}: {exc.read()[:500]!r}") from exc


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
