"""The predict process: load one version, then answer requests until the socket closes."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

from modelport.errors import ErrorCode, ModelPortError
from modelport.runtimes.loader import load_version
from modelport.serving.failures import as_domain_error
from modelport.serving.workers.frames import (
    FRAME_PREFIX,
    frame_length,
    message,
    parse,
    read_arrays,
    reply,
)
from modelport.types import VersionInfo


def attach(name: str) -> SharedMemory:
    """Map the server's segment without adopting it: the server alone unlinks it."""
    segment = SharedMemory(name=name)
    with contextlib.suppress(Exception):  # Python < 3.13 registers every attach
        from multiprocessing import resource_tracker

        resource_tracker.unregister(segment._name, "shared_memory")  # type: ignore[attr-defined]
    return segment


def receive(sock: socket.socket) -> bytes | None:
    """The next message's payload, or None once the server has closed the socket."""
    prefix = _exactly(sock, FRAME_PREFIX)
    return None if prefix is None else _exactly(sock, frame_length(prefix))


def _exactly(sock: socket.socket, size: int) -> bytes | None:
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        count = sock.recv_into(view[got:])
        if count == 0:
            return None
        got += count
    return bytes(buffer)


def send(sock: socket.socket, parts: list[bytes | memoryview]) -> None:
    for part in parts:
        sock.sendall(part)


def serve(sock: socket.socket) -> None:
    """Answer the server on ``sock``: its first message says what to load."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when workers stop
    first = receive(sock)
    if first is None:
        return
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        spec, _ = parse(first)
        threadpool_limits(spec["threads"])
        version = VersionInfo.model_validate(spec["version"])
        share = Path(spec["shared_arrays"]) if spec["shared_arrays"] else None
        model = load_version(
            Path(spec["artifact"]), version, spec["allow_pickle"], share, spec["threads"]
        )
    except BaseException as exc:  # a model's own code may raise anything, SystemExit too
        # A domain error keeps its code (a refused, untrusted version stays a 403).
        code = exc.code if isinstance(exc, ModelPortError) else ErrorCode.UNAVAILABLE
        reason = f"cannot load the model: {exc}"
        send(sock, message({"seq": 0, "error": code, "message": reason}))
        return
    send(sock, message({"ready": os.getpid()}))
    segment: SharedMemory | None = None
    while (payload := receive(sock)) is not None:
        request, _ = parse(payload)
        if segment is None or segment.name != request["shm"]:
            if segment is not None:
                with contextlib.suppress(BufferError):
                    segment.close()
            segment = attach(request["shm"])
        try:
            inputs = read_arrays(request["inputs"], segment.buf)
            outputs = model.predict(inputs, frozenset(request["outputs"]))
            del inputs  # no view into the segment may outlive the request
            answer = reply(request["seq"], outputs)
        except Exception as exc:
            error: ModelPortError = as_domain_error(exc)
            answer = message({"seq": request["seq"], "error": error.code, "message": error.message})
        send(sock, answer)


def main() -> None:
    parser = argparse.ArgumentParser(description="a ModelPort predict process")
    parser.add_argument("--fd", type=int, required=True, help="the server's socket")
    with socket.socket(fileno=parser.parse_args().fd) as sock:
        sock.setblocking(True)
        serve(sock)


if __name__ == "__main__":
    main()
