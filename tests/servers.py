"""Start real ``modelport serve`` processes on free ports and wait until they are ready."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

READY_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    url: str
    port: int
    grpc_port: int
    data_dir: Path
    process: subprocess.Popen[str]
    log_path: Path

    def http(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def is_healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/v2/health/live", timeout=5).status_code == 200
        except httpx.TransportError:
            return False


def server_command(data_dir: Path, port: int, grpc_port: int, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "modelport",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--grpc-port",
        str(grpc_port),
        "--data-dir",
        str(data_dir),
        *args,
    ]


@contextmanager
def start_server(
    data_dir: Path,
    *args: str,
    admin_key: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[ServerProcess]:
    """Run ``modelport serve`` until the block exits; fails with the server's output if it
    does not become ready."""
    port, grpc_port = free_port(), free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
    if admin_key:
        environment["MODELPORT_ADMIN_KEY"] = admin_key
    environment.update(env or {})
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}-server-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            server_command(data_dir, port, grpc_port, *args),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            text=True,
        )
    server = ServerProcess(f"http://127.0.0.1:{port}", port, grpc_port, data_dir, process, log_path)
    try:
        wait_until_ready(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_ready(server: ServerProcess) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {READY_TIMEOUT_S}s:\n{server.output()}")
