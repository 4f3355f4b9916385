"""The tensor scenario: V2 REST JSON, REST binary and gRPC, ModelPort against MLServer.

Two LinearRegressions (peers/train_tensors.py), both served by every system at once:
`wide-1024` asked about a [1, 1024] FP32 tensor, `batch-30` about a [32, 30] one. ModelPort
gets the skops dump through its management API; MLServer (mlserver-sklearn) the joblib one.

Each system answers some of three requests per model:

- `REST JSON`: `POST /v2/models/NAME/infer`, the tensor as a flat FP32 `data` list;
- `REST binary`: the same URL, the binary tensor data extension (a JSON header whose length
  is in `Inference-Header-Content-Length`, then the tensor's raw little-endian bytes, and the
  answer asked for as raw bytes too);
- `gRPC`: `inference.GRPCInferenceService/ModelInfer` with the tensor in
  `raw_input_contents`, sent by grpcload.py (tritonclient's stubs, bench/.envs/grpcclient).

wrk loads the REST requests, grpcload.py the gRPC one, both pinned to the client core.
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envs import BENCH_DIR, ensure_env, package_versions
from loadgen import Measurement, grpc_load, measure, write_script
from servers import (
    ServerError,
    pinned_processes,
    post,
    read_binary_answer,
    running,
    upload_skops,
    wait_model_ready,
)
from systems import HOST, MLSERVER_PACKAGES, Server, free_port, modelport_command

MODELS = ("wide-1024", "batch-30")  # as peers/train_tensors.py names them
KINDS = ("REST JSON", "REST binary", "gRPC")
INPUT = "features"
TOLERANCE = 1e-4  # relative (absolute below 1), the FP32 tensors' precision and then some
TARGET_FACTOR = 2.0  # REST binary and gRPC: at least this many times MLServer's best gRPC


@dataclass(frozen=True)
class Tensor:
    """One model's request: its rows (FP32 values) and the reference predictions."""

    model: str
    rows: list[list[float]]
    predictions: list[float]

    @property
    def shape(self) -> list[int]:
        return [len(self.rows), len(self.rows[0])]

    @property
    def raw(self) -> bytes:
        flat = [v for row in self.rows for v in row]
        return struct.pack(f"<{len(flat)}f", *flat)

    def json_body(self) -> bytes:
        flat = [v for row in self.rows for v in row]
        tensor = {"name": INPUT, "shape": self.shape, "datatype": "FP32", "data": flat}
        return json.dumps({"inputs": [tensor]}).encode()

    def binary_body(self) -> tuple[bytes, int]:
        """The binary extension's body and the length of its JSON header."""
        raw = self.raw
        header = {
            "inputs": [
                {
                    "name": INPUT,
                    "shape": self.shape,
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
        }
        head = json.dumps(header).encode()
        return head + raw, len(head)


@dataclass(frozen=True)
class TensorServer:
    """A started-to-be server, its gRPC port, and what to do once it is ready."""

    server: Server
    grpc_port: int | None
    kinds: tuple[str, ...]
    token: str = ""  # sent as a bearer key over gRPC too
    setup: Callable[[], None] | None = None  # after ready: push the models
    missing: dict[str, str] = field(default_factory=dict)  # kind: why it cannot be measured


@dataclass(frozen=True)
class TensorContext:
    python: Path
    work_dir: Path
    model_dir: Path  # holds NAME/model.joblib (and model.skops) trained in this environment
    admin_key: str


@dataclass(frozen=True)
class TensorSystem:
    name: str
    summary: str
    env_name: str | None
    packages: tuple[str, ...]
    build: Callable[[TensorContext], TensorServer]


@dataclass(frozen=True)
class TensorRow:
    """One measured point."""

    model: str
    system: str
    endpoint: str
    concurrency: int
    measurement: Measurement
    others_cpu: float = 0.0


# --- the systems --------------------------------------------------------------------------


def build_modelport(ctx: TensorContext) -> TensorServer:
    port, grpc_port = free_port(), free_port()
    data_dir = ctx.work_dir / "tensors-modelport-data"
    argv = modelport_command(ctx.python, data_dir, port, grpc_port, "--no-demo")
    missing: dict[str, str] = {}
    headers = {"Authorization": f"Bearer {ctx.admin_key}"}

    def push_models() -> None:
        for model in MODELS:
            upload_skops(port, model, ctx.model_dir / model / "model.skops", headers)
        wait_models_ready(port, headers)

    server = Server(
        argv,
        ctx.work_dir,
        port,
        (),
        ready_path="/v2/health/ready",
        env={"MODELPORT_ADMIN_KEY": ctx.admin_key},
        headers=headers,
    )
    kinds = tuple(k for k in KINDS if k not in missing)
    return TensorServer(server, grpc_port, kinds, ctx.admin_key, push_models, missing)


def mlserver_builder(name: str, extra: dict[str, Any]) -> Callable[[TensorContext], TensorServer]:
    """MLServer with its default settings changed only by `extra`, serving both models."""

    def build(ctx: TensorContext) -> TensorServer:
        server_dir = ctx.work_dir / f"tensors-{name}"
        shutil.rmtree(server_dir, ignore_errors=True)
        for model in MODELS:
            model_dir = server_dir / model  # MLServer expects the folder to bear the name
            model_dir.mkdir(parents=True)
            shutil.copy(ctx.model_dir / model / "model.joblib", model_dir / "model.joblib")
            model_settings = {
                "name": model,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib"},
            }
            (model_dir / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
        port, grpc_port = free_port(), free_port()
        settings = {
            "host": HOST,
            "http_port": port,
            "grpc_port": grpc_port,
            "metrics_port": free_port(),
            **extra,
        }
        (server_dir / "settings.json").write_text(json.dumps(settings, indent=2))
        argv = [str(ctx.python.parent / "mlserver"), "start", str(server_dir)]
        server = Server(argv, server_dir, port, (), ready_path="/v2/health/ready")

        def models_ready() -> None:
            wait_models_ready(port, {})

        return TensorServer(server, grpc_port, ("REST JSON", "gRPC"), setup=models_ready)

    return build


SYSTEMS: tuple[TensorSystem, ...] = (
    TensorSystem(
        "modelport",
        "`modelport serve --no-demo`, models pushed as skops through `POST "
        "/api/v1/models/NAME/versions`",
        None,
        ("modelport", "uvicorn", "uvloop", "httptools", "grpcio", "scikit-learn", "numpy"),
        build_modelport,
    ),
    TensorSystem(
        "mlserver-default",
        "MLServer 1.7.1 + mlserver-sklearn, default settings (one parallel worker process)",
        "mlserver",
        (*MLSERVER_PACKAGES, "grpcio"),
        mlserver_builder("mlserver-default", {}),
    ),
    TensorSystem(
        "mlserver-pw0",
        "MLServer 1.7.1 + mlserver-sklearn, `parallel_workers: 0` (inference in the server "
        "process)",
        "mlserver",
        (*MLSERVER_PACKAGES, "grpcio"),
        mlserver_builder("mlserver-pw0", {"parallel_workers": 0}),
    ),
)


# --- talking to the servers ----------------------------------------------------------------


def wait_models_ready(port: int, headers: dict[str, str]) -> None:
    for model in MODELS:
        wait_model_ready(port, model, headers)


def _flatten(values: Any) -> list[float]:
    if isinstance(values, list):
        return [x for v in values for x in _flatten(v)]
    return [float(values)]


def read_json_answer(body: bytes) -> list[float]:
    answer = json.loads(body)
    return _flatten(answer["outputs"][0]["data"])


def check(label: str, got: list[float], expected: list[float]) -> None:
    if len(got) != len(expected):
        raise ServerError(f"{label}: {len(got)} predictions, expected {len(expected)}")
    for n, (g, e) in enumerate(zip(got, expected, strict=True)):
        if abs(g - e) > TOLERANCE * max(abs(e), 1.0):
            raise ServerError(f"{label}: prediction {n} is {g!r}, expected {e!r}")


# --- the loads -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Runner:
    """What the scenario's loads need: the tools, the cores, the files' folder."""

    wrk: str
    grpc_python: Path
    client_core: int
    grpc_processes: int
    work_dir: Path


def grpc_argv(runner: Runner, ts: TensorServer, tensor: Tensor) -> list[str]:
    raw_file = runner.work_dir / f"tensor-{tensor.model}.bin"
    raw_file.write_bytes(tensor.raw)
    argv = [
        str(runner.grpc_python),
        str(BENCH_DIR / "grpcload.py"),
        f"{HOST}:{ts.grpc_port}",
        tensor.model,
        INPUT,
        "x".join(str(d) for d in tensor.shape),
        str(raw_file),
    ]
    return [*argv, "--token", ts.token] if ts.token else argv


def grpc_measure(argv: list[str], runner: Runner, connections: int, seconds: float) -> Measurement:
    """Run grpcload.py pinned to the client core; its own CPU use is the client's share."""
    processes = min(runner.grpc_processes, connections)
    return grpc_load(argv, runner.client_core, processes, connections, seconds)


def verify_and_prepare(
    runner: Runner, name: str, ts: TensorServer, tensor: Tensor, kind: str
) -> Callable[[int, float], Measurement]:
    """Check the system's answer for `kind` against the reference; return the point's load."""
    label = f"{name} {tensor.model} {kind}"
    server = ts.server
    path = f"/v2/models/{tensor.model}/infer"
    url = f"http://{HOST}:{server.port}{path}"
    stem = runner.work_dir / f"tensors-{name}-{tensor.model}-{kind.replace(' ', '-')}"
    if kind == "gRPC":
        argv = grpc_argv(runner, ts, tensor)
        done = subprocess.run([*argv, "--verify"], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise ServerError(f"{label}: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
        check(label, json.loads(done.stdout)["values"], tensor.predictions)
        return lambda c, s: grpc_measure(argv, runner, c, s)
    if kind == "REST JSON":
        body = tensor.json_body()
        headers = {**server.headers, "Content-Type": "application/json"}
        check(
            label, read_json_answer(post(server.port, path, body, headers)[0]), tensor.predictions
        )
    else:
        body, head = tensor.binary_body()
        headers = {
            **server.headers,
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(head),
        }
        check(
            label, read_binary_answer(*post(server.port, path, body, headers)), tensor.predictions
        )
    script = write_script(stem.with_suffix(".lua"), body, headers, stem.with_suffix(".body"))
    return lambda c, s: measure(runner.wrk, url, script, c, s, runner.client_core)


# --- the scenario --------------------------------------------------------------------------


def prepare(
    chosen: list[TensorSystem], pythons: dict[str, Path], work_dir: Path
) -> dict[str, Tensor]:
    """Train both models in each environment that serves them; return the reference tensors."""
    models_dir = work_dir / "tensor-models"
    for env in sorted({s.env_name or "modelport" for s in chosen}):
        train = [str(pythons[env]), str(BENCH_DIR / "peers" / "train_tensors.py")]
        train += [str(models_dir / env)] + (["--skops"] if env == "modelport" else [])
        if subprocess.run(train).returncode != 0:
            raise SystemExit(f"training the tensor models with {pythons[env]} failed")
    first = chosen[0].env_name or "modelport"
    reference = json.loads((models_dir / first / "reference.json").read_text())
    return {m: Tensor(m, reference[m]["rows"], reference[m]["predictions"]) for m in MODELS}


def run_scenario(
    args: argparse.Namespace,
    measure_point: Callable[..., tuple[Measurement, float]],
    wrk: str,
    admin_key: str,
    work_dir: Path,
) -> tuple[list[TensorRow], dict[str, Any]]:
    """Benchmark every chosen system on both models; return the rows and the run's notes."""
    chosen = [s for s in SYSTEMS if selected(args, s.name)]
    if not chosen:
        return [], {}
    pythons = {"modelport": args.modelport_venv.absolute() / "bin" / "python"}
    for env in sorted({s.env_name for s in chosen if s.env_name}):
        pythons[env] = ensure_env(env)
    runner = Runner(wrk, ensure_env("grpcclient"), args.client_core, args.grpc_clients, work_dir)
    tensors = prepare(chosen, pythons, work_dir)
    notes: dict[str, Any] = {
        "summaries": {},
        "versions": {},
        "pinning": {},
        "failures": {},
        "missing": {},
        "client": package_versions(runner.grpc_python, ("tritonclient", "grpcio", "protobuf")),
    }
    rows: list[TensorRow] = []
    for system in chosen:
        env = system.env_name or "modelport"
        notes["summaries"][system.name] = system.summary
        notes["versions"][system.name] = package_versions(pythons[env], system.packages)
        ctx = TensorContext(pythons[env], work_dir, work_dir / "tensor-models" / env, admin_key)
        try:
            rows += bench_system(system, ctx, tensors, runner, args, measure_point, notes)
        except (ServerError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
            notes["failures"][system.name] = str(exc).replace("\n", "\n  ")
            print(f"   FAILED: {exc}", flush=True)
    return rows, notes


def selected(args: argparse.Namespace, name: str) -> bool:
    if args.only and not any(name.startswith(p) for p in args.only):
        return False
    if args.skip_peers and name != "modelport":
        return False
    return not (args.skip_modelport and name == "modelport")


def bench_system(
    system: TensorSystem,
    ctx: TensorContext,
    tensors: dict[str, Tensor],
    runner: Runner,
    args: argparse.Namespace,
    measure_point: Callable[..., tuple[Measurement, float]],
    notes: dict[str, Any],
) -> list[TensorRow]:
    ts = system.build(ctx)
    log = runner.work_dir / "logs" / f"tensors-{system.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"\n== {system.name}: starting (log: {log.relative_to(BENCH_DIR.parent)})", flush=True)
    for kind, why in ts.missing.items():
        notes["missing"][f"{system.name} {kind}"] = why
        print(f"   {kind}: not measured: {why}", flush=True)
    rows = []
    with running(ts.server, args.server_core, log, args.start_timeout) as pid:
        if ts.setup is not None:
            ts.setup()
        loads = {
            (model, kind): verify_and_prepare(runner, system.name, ts, tensors[model], kind)
            for model in MODELS
            for kind in ts.kinds
        }
        print(f"   answers match the reference to {TOLERANCE:g} ({len(loads)} requests)")
        for (model, kind), load in loads.items():
            if args.warmup > 0:
                load(max(args.concurrency), args.warmup)
            for connections in args.concurrency:
                m, others = measure_point(load, connections, args, pid)
                print(
                    f"   {model:9} {kind:11} c={connections:<3} {m.rps:9,.0f} req/s  "
                    f"p50 {m.p50_ms:7.2f} ms  p99 {m.p99_ms:7.2f} ms  errors {m.errors}  "
                    f"client CPU {100 * m.client_cpu:.0f}%  others' CPU {100 * others:.1f}%",
                    flush=True,
                )
                rows.append(TensorRow(model, system.name, kind, connections, m, others))
        tree = pinned_processes(pid)
    cores = set().union(*tree.values())
    if cores != {args.server_core}:
        raise ServerError(f"processes ran on cores {sorted(cores)}, not {args.server_core}")
    noun = "process" if len(tree) == 1 else "processes"
    notes["pinning"][system.name] = f"{len(tree)} {noun}, all pinned to core {args.server_core}"
    return rows
