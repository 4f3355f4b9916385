"""The server's side of the predict processes: start them, hand each one batch at a time,
replace one that dies (failing only the batch it was running)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import subprocess
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Any

import orjson

from modelport.errors import UnavailableError, error_from_code
from modelport.runtimes.base import Tensors
from modelport.serving.workers.frames import parse_reply, read_arrays, size_of, write_arrays
from modelport.types import VersionInfo

log = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0
MIN_SEGMENT_BYTES = 1 << 20


@dataclass(frozen=True)
class WorkerSpec:
    """What a predict process loads."""

    artifact: Path
    version: VersionInfo
    allow_pickle: bool
    threads: int = 1

    @property
    def label(self) -> str:
        return f"{self.version.model}@{self.version.version}"


class Worker:
    """One predict process, its pipe and its shared-memory segment."""

    def __init__(self, spec: WorkerSpec) -> None:
        self._spec = spec
        ours, theirs = socket.socketpair()
        with theirs:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "modelport.serving.workers.child",
                    "--fd",
                    str(theirs.fileno()),
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        self._conn = Connection(ours.detach())
        self._conn.send_bytes(
            orjson.dumps(
                {
                    "artifact": str(spec.artifact),
                    "version": spec.version.model_dump(mode="json"),
                    "allow_pickle": spec.allow_pickle,
                    "threads": spec.threads,
                }
            )
        )
        self._segment: SharedMemory | None = None
        self._reply: asyncio.Future[bytes] | None = None
        self._seq = 0
        self.alive = True
        asyncio.get_running_loop().add_reader(self._conn.fileno(), self._readable)

    async def ready(self) -> None:
        """Wait until the process has loaded the model (or raise why it could not)."""
        header, _ = _header(await self._next_message(START_TIMEOUT_S))
        if "ready" not in header:
            await self.stop()
            raise error_from_code(header.get("error", "unavailable"), header.get("message", ""))

    async def predict(self, inputs: Tensors, outputs: frozenset[str]) -> Tensors:
        segment = self._segment_for(size_of(inputs))
        assert segment.buf is not None
        specs = write_arrays(inputs, segment.buf)
        self._seq += 1
        seq = self._seq
        request = {"seq": seq, "shm": segment.name, "inputs": specs, "outputs": sorted(outputs)}
        self._conn.send_bytes(orjson.dumps(request))
        while True:  # a reply to a request its caller abandoned is skipped
            header, payload = _header(await self._next_message(None))
            if header.get("seq") == seq:
                break
        if "error" in header:
            raise error_from_code(header["error"], header["message"])
        return read_arrays(header["outputs"], payload)

    def _segment_for(self, size: int) -> SharedMemory:
        if self._segment is None or self._segment.size < size:
            self._release_segment()
            self._segment = SharedMemory(create=True, size=max(MIN_SEGMENT_BYTES, size * 2))
        return self._segment

    async def _next_message(self, timeout: float | None) -> bytes:
        if not self.alive:
            raise self._died_error()
        self._reply = asyncio.get_running_loop().create_future()
        try:
            return await asyncio.wait_for(self._reply, timeout) if timeout else await self._reply
        finally:
            self._reply = None

    def _readable(self) -> None:
        try:
            message = self._conn.recv_bytes()
        except (EOFError, OSError):
            self._mark_dead()
            return
        if self._reply is not None and not self._reply.done():
            self._reply.set_result(message)

    def _mark_dead(self) -> None:
        if not self.alive:
            return
        self.alive = False
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self._conn.fileno())
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=1)
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(self._died_error())

    def _died_error(self) -> UnavailableError:
        return UnavailableError(
            f"the predict process of {self._spec.label} exited (code {self.process.returncode}) "
            "while running this request; it is being replaced, retry",
            retry_after=1,
        )

    def _release_segment(self) -> None:
        if self._segment is not None:
            with contextlib.suppress(BufferError, FileNotFoundError):
                self._segment.close()
                self._segment.unlink()
            self._segment = None

    async def stop(self) -> None:
        if self.alive:
            self.alive = False
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._conn.fileno())
        self._conn.close()  # the process sees end-of-file and returns
        try:
            await asyncio.to_thread(self.process.wait, 5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            await asyncio.to_thread(self.process.wait, 5)
        self._release_segment()


def _header(message: bytes) -> tuple[dict[str, Any], memoryview]:
    if message[:1] == b"{":  # the start-up message is plain JSON
        return orjson.loads(message), memoryview(b"")
    return parse_reply(message)


class WorkerPool:
    """``count`` predict processes for one version; ``predict`` runs on an idle one."""

    def __init__(self, spec: WorkerSpec, count: int) -> None:
        self._spec = spec
        self.count = count
        self._workers: list[Worker] = []
        self._idle: asyncio.Queue[Worker] = asyncio.Queue()
        self._replacing: set[asyncio.Task[None]] = set()
        self.replaced = 0
        self._closed = False

    async def start(self) -> None:
        workers = [Worker(self._spec) for _ in range(self.count)]
        results = await asyncio.gather(*(w.ready() for w in workers), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            for worker in workers:
                await worker.stop()
            raise failures[0]
        self._workers = workers
        for worker in workers:
            self._idle.put_nowait(worker)

    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers]

    async def predict(self, inputs: Tensors, outputs: frozenset[str]) -> Tensors:
        if self._closed:
            raise UnavailableError("the model was unloaded")
        worker = await self._idle.get()
        try:
            return await worker.predict(inputs, outputs)
        finally:
            if worker.alive:
                self._idle.put_nowait(worker)
            else:
                self._replace_later(worker)

    def _replace_later(self, dead: Worker) -> None:
        task = asyncio.get_running_loop().create_task(self._replace(dead))
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    async def _replace(self, dead: Worker) -> None:
        log.warning(
            "predict process %s of %s exited (code %s); starting a new one",
            dead.process.pid,
            self._spec.label,
            dead.process.returncode,
        )
        await dead.stop()
        while not self._closed:
            worker = Worker(self._spec)
            try:
                await worker.ready()
            except Exception as exc:
                log.error("cannot restart a predict process of %s: %s", self._spec.label, exc)
                await asyncio.sleep(1)
                continue
            if self._closed:
                await worker.stop()
                return
            self._workers = [worker if w is dead else w for w in self._workers]
            self.replaced += 1
            self._idle.put_nowait(worker)
            return

    async def close(self) -> None:
        self._closed = True
        for task in list(self._replacing):
            task.cancel()
        await asyncio.gather(*(w.stop() for w in self._workers), return_exceptions=True)
