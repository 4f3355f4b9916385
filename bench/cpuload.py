"""How much CPU the benchmark lost to others while a point was measured.

The benchmark owns the machine's two cores; anything else that runs meanwhile (a build, a
test suite, another server, or the hypervisor stealing time from a virtual machine) slows
the server or wrk and skews the numbers. Each point records that share of a core so the
report can flag a noisy run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
NOISY = 0.10  # share of one core beyond which a point is flagged (idle: about 0.03)


@dataclass(frozen=True)
class Snapshot:
    """CPU seconds used so far by every process, and stolen by the hypervisor."""

    processes: dict[int, float]
    stolen: float


def snapshot() -> Snapshot:
    """Read the CPU time of every process (user + system) and the machine's steal time."""
    processes: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        processes[int(entry.name)] = (int(fields[11]) + int(fields[12])) / TICKS
    stolen = 0.0
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu "):
            stolen = int(line.split()[8]) / TICKS
    return Snapshot(processes, stolen)


def others_share(before: Snapshot, after: Snapshot, ours: set[int], seconds: float) -> float:
    """Share of one core taken by processes not in `ours` and by steal between snapshots."""
    used = sum(
        t - before.processes.get(pid, 0.0) for pid, t in after.processes.items() if pid not in ours
    )
    used += after.stolen - before.stolen
    return max(used, 0.0) / seconds if seconds > 0 else 0.0


def wait_quiet(limit_s: float, ours: set[int]) -> float:
    """Wait until others take at most NOISY of a core over one second, or `limit_s` passed."""
    deadline = time.monotonic() + limit_s
    while True:
        before = snapshot()
        time.sleep(1.0)
        share = others_share(before, snapshot(), ours, 1.0)
        if share <= NOISY or time.monotonic() >= deadline:
            return share
