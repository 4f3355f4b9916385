"""How much CPU processes outside the benchmark used while a point was measured.

The benchmark owns the machine's two cores; anything else that runs meanwhile (a build, a
test suite, another server) steals time from the server or from wrk and skews the numbers.
Each point records that share so the report can flag a noisy run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
NOISY = 0.05  # share of one core beyond which a point is flagged


def snapshot() -> dict[int, float]:
    """CPU seconds (user + system) used so far by every process on the machine."""
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / TICKS
    return times


def others_share(
    before: dict[int, float], after: dict[int, float], ours: set[int], seconds: float
) -> float:
    """Share of one core used by processes not in `ours` between the two snapshots."""
    used = sum(t - before.get(pid, 0.0) for pid, t in after.items() if pid not in ours)
    return max(used, 0.0) / seconds if seconds > 0 else 0.0


def wait_quiet(limit_s: float, ours: set[int]) -> float:
    """Wait until other processes use at most NOISY of a core over one second, or `limit_s`."""
    deadline = time.monotonic() + limit_s
    while True:
        before = snapshot()
        time.sleep(1.0)
        share = others_share(before, snapshot(), ours, 1.0)
        if share <= NOISY or time.monotonic() >= deadline:
            return share
