"""The predict process: load one version, then answer requests until the pipe closes."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import orjson

from modelport.errors import ErrorCode, ModelPortError
from modelport.runtimes.loader import load_version
from modelport.serving.failures import as_domain_error
from modelport.serving.workers.frames import error_reply, read_arrays, reply
from modelport.types import VersionInfo


def attach(name: str) -> SharedMemory:
    """Map the server's segment without adopting it: the server alone unlinks it."""
    segment = SharedMemory(name=name)
    with contextlib.suppress(Exception):  # Python < 3.13 registers every attach
        from multiprocessing import resource_tracker

        resource_tracker.unregister(segment._name, "shared_memory")  # type: ignore[attr-defined]
    return segment


def serve(conn: Connection) -> None:
    """Answer the server on ``conn``: its first message says what to load."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when workers stop
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        spec = orjson.loads(conn.recv_bytes())
        threadpool_limits(spec["threads"])
        version = VersionInfo.model_validate(spec["version"])
        model = load_version(Path(spec["artifact"]), version, spec["allow_pickle"])
    except Exception as exc:
        conn.send_bytes(error_reply(0, ErrorCode.UNAVAILABLE, f"cannot load the model: {exc}"))
        return
    conn.send_bytes(orjson.dumps({"ready": os.getpid()}))
    segment: SharedMemory | None = None
    while True:
        try:
            request = orjson.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return  # the server closed the pipe or exited
        if segment is None or segment.name != request["shm"]:
            if segment is not None:
                with contextlib.suppress(BufferError):
                    segment.close()
            segment = attach(request["shm"])
        try:
            inputs = read_arrays(request["inputs"], segment.buf)
            outputs = model.predict(inputs, frozenset(request["outputs"]))
            del inputs  # no view into the segment may outlive the request
            message = reply(request["seq"], outputs)
        except Exception as exc:
            error: ModelPortError = as_domain_error(exc)
            message = error_reply(request["seq"], error.code, error.message)
        conn.send_bytes(message)


def main() -> None:
    parser = argparse.ArgumentParser(description="a ModelPort predict process")
    parser.add_argument("--fd", type=int, required=True, help="the server's socket")
    serve(Connection(parser.parse_args().fd))


if __name__ == "__main__":
    main()
