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
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Any

from modelport.errors import ModelPortError, UnavailableError, error_from_code
from modelport.runtimes.base import Tensors
from modelport.serving.workers.frames import (
    FRAME_PREFIX,
    frame_length,
    message,
    parse,
    read_arrays,
    size_of,
    write_arrays,
)
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
    shared_arrays: Path | None = None

    @property
    def label(self) -> str:
        return f"{self.version.model}@{self.version.version}"


class Worker:
    """One predict process, the socket to it and its shared-memory segment."""

    def __init__(self, spec: WorkerSpec) -> None:
        self._spec = spec
        self._segment: SharedMemory | None = None
        self._replies: asyncio.Queue[tuple[dict[str, Any], memoryview] | None] = asyncio.Queue()
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None
        self._seq = 0
        self.alive = True
        ours, theirs = socket.socketpair()
        with theirs:
            command = [sys.executable, "-m", "modelport.serving.workers.child"]
            self.process = subprocess.Popen(
                [*command, "--fd", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        self._socket = ours

    async def start(self) -> None:
        """Send what to load and wait until it is loaded (or raise why it could not)."""
        reader, self._writer = await asyncio.open_connection(sock=self._socket)
        self._reading = asyncio.get_running_loop().create_task(self._read(reader))
        spec = {
            "artifact": str(self._spec.artifact),
            "version": self._spec.version.model_dump(mode="json"),
            "allow_pickle": self._spec.allow_pickle,
            "threads": self._spec.threads,
            "shared_arrays": str(self._spec.shared_arrays or ""),
        }
        self._writer.writelines(message(spec))
        try:
            header, _ = await asyncio.wait_for(self._next_reply(), START_TIMEOUT_S)
        except (ModelPortError, TimeoutError):
            await self.stop()
            raise
        if "ready" not in header:
            await self.stop()
            raise error_from_code(header.get("error", "unavailable"), header.get("message", ""))

    async def predict(self, inputs: Tensors, outputs: frozenset[str]) -> Tensors:
        assert self._writer is not None
        segment = self._segment_for(size_of(inputs))
        assert segment.buf is not None
        specs = write_arrays(inputs, segment.buf)
        self._seq += 1
        seq = self._seq
        request = {"seq": seq, "shm": segment.name, "inputs": specs, "outputs": sorted(outputs)}
        self._writer.writelines(message(request))
        while True:  # a reply to a request its caller abandoned is skipped
            header, payload = await self._next_reply()
            if header.get("seq") == seq:
                break
        if "error" in header:
            raise error_from_code(header["error"], header["message"])
        return read_arrays(header["outputs"], payload)

    async def _next_reply(self) -> tuple[dict[str, Any], memoryview]:
        reply = await self._replies.get() if self.alive else None
        if reply is None:
            raise self._died_error()
        return reply

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                length = frame_length(await reader.readexactly(FRAME_PREFIX))
                self._replies.put_nowait(parse(await reader.readexactly(length)))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the process exited
        self.alive = False
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(self.process.wait, 1)
        self._replies.put_nowait(None)

    def _segment_for(self, size: int) -> SharedMemory:
        if self._segment is None or self._segment.size < size:
            self._release_segment()
            self._segment = SharedMemory(create=True, size=max(MIN_SEGMENT_BYTES, size * 2))
        return self._segment

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
        self.alive = False
        if self._writer is not None:
            self._writer.close()  # the process sees end-of-file and returns
        else:
            self._socket.close()
        try:
            await asyncio.to_thread(self.process.wait, 5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            await asyncio.to_thread(self.process.wait, 5)
        if self._reading is not None:
            self._reading.cancel()
        self._release_segment()


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
        results = await asyncio.gather(*(w.start() for w in workers), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
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
                await worker.start()
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
