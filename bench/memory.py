"""Resident memory of a server: the sum of its process tree's RSS, read from /proc.

A sampler thread reads it every `interval` seconds while the server runs, so each point can
report the peak it reached meanwhile, and a scenario the RSS at chosen moments. The thread
pins itself to the client core so that it never takes time from the server's core.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


def tree(pid: int) -> list[int]:
    """`pid` and every process below it (children of each of their threads)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def tree_rss(pid: int) -> int:
    """Bytes resident in memory, summed over the process tree under `pid` (shared pages
    count once per process that maps them, as `ps` shows them)."""
    total = 0
    for member in tree(pid):
        try:
            total += int(Path(f"/proc/{member}/statm").read_text().split()[1]) * PAGE
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return total


class RssSampler:
    """Sample `tree_rss(pid)` every `interval` seconds on a background thread."""

    def __init__(self, pid: int, core: int | None = None, interval: float = 0.2) -> None:
        self.pid = pid
        self.core = core
        self.interval = interval
        self.peak = 0  # since start
        self.point_peak = 0  # since the last mark()
        self.last = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> int:
        """Read the RSS now (and record it)."""
        rss = tree_rss(self.pid)
        with self._lock:
            self.last = rss
            self.peak = max(self.peak, rss)
            self.point_peak = max(self.point_peak, rss)
        return rss

    def mark(self) -> int:
        """Start a new point: return the current RSS and reset the point's peak to it."""
        rss = tree_rss(self.pid)
        with self._lock:
            self.point_peak = rss
            self.last = rss
            self.peak = max(self.peak, rss)
        return rss

    def _run(self) -> None:
        if self.core is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, {self.core})  # this thread only
        while not self._stop.wait(self.interval):
            self.sample()
