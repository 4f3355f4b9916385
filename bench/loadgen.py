"""The load generators: wrk, pinned to its own core, posting one fixed body (or one body to
a path chosen per request from a list), and grpcload.py for gRPC.

A small Lua script sets the method, body and headers and, when the run ends, prints the
request count, exact latency percentiles and the longest latency (in microseconds) and, when
asked, how many answers had one given status, on one line for parsing.
"""

from __future__ import annotations

import json
import math
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
counted = 0
threads = {{}}
setup = function(thread)
  table.insert(threads, thread)
end
{extra}
done = function(summary, latency, requests)
  local e = summary.errors
  local n = 0
  for _, thread in ipairs(threads) do
    n = n + (thread:get("counted") or 0)
  end
  io.write(string.format("{mark} %d %d %.0f %.0f %d %d %d %d %d %.0f %d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout, latency.max, n))
end
"""

# Count the answers with one status (wrk then parses every answer: a little slower).
COUNT_STATUS = """\
response = function(status, headers, body)
  if status == {status} then
    counted = counted + 1
  end
end
"""

# Send each request to the next path of a list read from a file (one path a line), in turn.
PATHS = """\
paths = {{}}
for line in io.lines([==[{file}]==]) do
  paths[#paths + 1] = line
end
position = 0
request = function()
  position = position % #paths + 1
  return wrk.format(nil, paths[position])
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
    max_ms: float = 0.0
    counted: int = 0  # answers with the status the script counts (COUNT_STATUS), if any

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
    path: Path,
    body: bytes,
    headers: dict[str, str],
    body_file: Path | None = None,
    count_status: int | None = None,
    paths_file: Path | None = None,
) -> Path:
    """Write the Lua script that posts `body` with `headers`.

    With `body_file`, `body` is written there and the script reads it back, byte for byte:
    the way to send a binary body (or one too long to inline). With `count_status`, the
    answers with that status are counted; with `paths_file`, each request goes to the next
    path listed there (the URL's path is then ignored).
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
    extra = []
    if count_status is not None:
        extra.append(COUNT_STATUS.format(status=count_status))
    if paths_file is not None:
        extra.append(PATHS.format(file=paths_file))
    path.write_text(
        SCRIPT_TEMPLATE.format(
            body=setup, headers="\n".join(lines), extra="\n".join(extra), mark=RESULT_MARK
        )
    )
    return path


def measure(
    wrk: str,
    url: str,
    script: Path,
    connections: int,
    seconds: float,
    core: int,
    timeout_s: float = 5.0,
) -> Measurement:
    """Run wrk with one thread and `connections` connections for `seconds`, pinned to `core`;
    a request unanswered after `timeout_s` counts as a (socket) error."""
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
        f"{whole_seconds(seconds)}s",
        "--timeout",
        f"{whole_seconds(timeout_s)}s",
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


def whole_seconds(seconds: float) -> int:
    """wrk reads its durations as whole seconds: round up, to at least 1."""
    return max(1, math.ceil(seconds - 1e-9))


def _parse(line: str) -> Measurement:
    values = [int(float(x)) for x in line.split()[1:]]
    requests, duration_us, p50_us, p99_us, status, *socket = values[:9]
    max_us, counted = values[9:11]
    return Measurement(
        requests=requests,
        seconds=duration_us / 1e6,
        p50_ms=p50_us / 1e3,
        p99_ms=p99_us / 1e3,
        non_2xx=status,
        socket_errors=sum(socket),
        max_ms=max_us / 1e3,
        counted=counted,
    )


def grpcload_argv(
    python: Path, port: int, model: str, dims: str, raw_file: Path, token: str = ""
) -> list[str]:
    """grpcload.py (run by `python`, bench/.envs/grpcclient) sending the FP32 tensor in
    `raw_file` (shape `dims`, e.g. 1x10) as input `features` of `model`."""
    argv = [
        str(python),
        str(Path(__file__).resolve().parent / "grpcload.py"),
        f"127.0.0.1:{port}",
        model,
        "features",
        dims,
        str(raw_file),
    ]
    return [*argv, "--token", token] if token else argv


def grpc_verify(argv: list[str]) -> list[float]:
    """One checked call through grpcload.py; the first output's values."""
    done = subprocess.run([*argv, "--verify"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError((done.stderr.strip().splitlines() or ["grpcload.py failed"])[-1])
    values: list[float] = json.loads(done.stdout)["values"]
    return values


def grpc_load(
    argv: list[str], core: int, processes: int, connections: int, seconds: float
) -> Measurement:
    """Run grpcload.py pinned to `core`; its own CPU use is the client's share."""
    load = [
        "taskset",
        "--cpu-list",
        str(core),
        *argv,
        "--concurrency",
        str(connections),
        "--duration",
        f"{seconds:g}",
        "--processes",
        str(processes),
    ]
    done = subprocess.run(load, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"grpcload.py failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    r = json.loads(done.stdout.splitlines()[-1])
    return Measurement(
        requests=r["requests"],
        seconds=r["seconds"],
        p50_ms=r["p50_us"] / 1e3,
        p99_ms=r["p99_us"] / 1e3,
        non_2xx=r["failures"],
        socket_errors=0,
        client_cpu=r["cpu_seconds"] / r["seconds"] if r["seconds"] else 0.0,
        max_ms=r.get("max_us", 0.0) / 1e3,
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
