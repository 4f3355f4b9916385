"""The load generator: wrk, pinned to its own core, posting one fixed body.

A small Lua script sets the method, body and headers and, when the run ends, prints the
request count and exact latency percentiles (in microseconds) on one line for parsing.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

RESULT_MARK = "BENCH_RESULT"

SCRIPT_TEMPLATE = """\
wrk.method = "POST"
{body}
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("{mark} %d %d %.0f %.0f %d %d %d %d %d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
"""


@dataclass(frozen=True)
class Measurement:
    """One wrk run: completed requests, elapsed time, latency percentiles and errors."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    client_cpu: float = 0.0  # share of its core wrk used; near 1.0 it, not the server, limits

    def with_client_cpu(self, seconds: float) -> Measurement:
        return replace(self, client_cpu=seconds / self.seconds if self.seconds else 0.0)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def ensure_wrk() -> str:
    """Path of wrk, installed from Debian (`apt-get install wrk`) when missing and root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit("wrk is not installed: run `sudo apt-get install -y wrk`, then retry.")
    print("installing wrk: apt-get update && apt-get install -y wrk", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], stdout=subprocess.DEVNULL, check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "wrk"], stdout=subprocess.DEVNULL, check=True
    )
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("apt-get install wrk did not provide a wrk binary")
    return found


def wrk_version(wrk: str) -> str:
    done = subprocess.run([wrk, "--version"], capture_output=True, text=True)
    first = (done.stdout + done.stderr).splitlines()
    return first[0].split(" Copyright")[0] if first else "?"


def write_script(
    path: Path, body: bytes, headers: dict[str, str], body_file: Path | None = None
) -> Path:
    """Write the Lua script that posts `body` with `headers`.

    With `body_file`, `body` is written there and the script reads it back, byte for byte:
    the way to send a binary body (or one too long to inline).
    """
    lines = [
        f'wrk.headers["{k}"] = "{v}"'
        for k, v in {"Content-Type": "application/json", **headers}.items()
    ]
    if body_file is None:
        setup = f"wrk.body = [==[{body.decode()}]==]"
    else:
        body_file.write_bytes(body)
        setup = (
            f'local file = assert(io.open([==[{body_file}]==], "rb"))\n'
            'wrk.body = file:read("*a")\n'
            "file:close()"
        )
    path.write_text(SCRIPT_TEMPLATE.format(body=setup, headers="\n".join(lines), mark=RESULT_MARK))
    return path


def measure(
    wrk: str, url: str, script: Path, connections: int, seconds: float, core: int
) -> Measurement:
    """Run wrk with one thread and `connections` connections for `seconds`, pinned to `core`."""
    argv = [
        "taskset",
        "--cpu-list",
        str(core),
        wrk,
        "--threads",
        "1",
        "--connections",
        str(connections),
        "--duration",
        f"{seconds:g}s",
        "--timeout",
        "5s",
        "--latency",
        "--script",
        str(script),
        url,
    ]
    before = _children_cpu()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            return _parse(line).with_client_cpu(_children_cpu() - before)
    raise RuntimeError(f"wrk gave no result (exit {done.returncode}):\n{done.stdout}{done.stderr}")


def _parse(line: str) -> Measurement:
    requests, duration_us, p50_us, p99_us, status, *socket = (
        int(float(x)) for x in line.split()[1:]
    )
    return Measurement(
        requests=requests,
        seconds=duration_us / 1e6,
        p50_ms=p50_us / 1e3,
        p99_ms=p99_us / 1e3,
        non_2xx=status,
        socket_errors=sum(socket),
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
