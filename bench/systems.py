"""The systems under test: how to start each one and which requests it answers.

Every system serves the same model (the ceiling excepted) and is asked for one-row
predictions: the demo LinearRegression in the demo scenario, the HistGradientBoosting
classifier in the moderate one. `read_prediction` pulls the number out of an answer so that
it can be checked against the reference before any load is applied.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PEERS_DIR = Path(__file__).resolve().parent / "peers"
HOST = "127.0.0.1"
MODEL_NAME = "demo-linear"
MODERATE_MODEL = "moderate-hgb"

# Batching settings shared by every peer that batches: at most BATCH rows per predict, and
# no request waits more than BATCH_WAIT_S for others to join it.
BATCH = 32
BATCH_WAIT_S = 0.002


@dataclass(frozen=True)
class Reference:
    """The checked row and its prediction; `row32`, the same row rounded to FP32, and its
    prediction, for the endpoints that send FP32 tensors (absent for the moderate model)."""

    row: list[float]
    prediction: float
    row32: list[float] | None = None
    prediction32: float | None = None

    @classmethod
    def read(cls, path: Path) -> Reference:
        data = json.loads(path.read_text())
        return cls(data["row"], data["prediction"], data.get("row32"), data.get("prediction32"))


@dataclass(frozen=True)
class Endpoint:
    """One request a system is loaded with.

    `protocol` says how it is sent: "json" (wrk posts `body`), "binary" (wrk posts `body`,
    read back from a file, with the V2 binary extension's headers) or "grpc" (grpcload.py
    sends `body`, a raw FP32 tensor, to the model named by `path`). `fp32` endpoints send
    the row rounded to FP32 and are checked against that row's prediction.
    """

    label: str
    path: str
    body: bytes
    read_prediction: Callable[[Any], float] | None  # None: a constant answer, not checked
    headers: dict[str, str] = field(default_factory=dict)  # on top of the server's
    protocol: str = "json"
    fp32: bool = False


@dataclass(frozen=True)
class Server:
    """A ready-to-start server process and the requests it answers."""

    argv: list[str]
    cwd: Path
    port: int
    endpoints: tuple[Endpoint, ...]
    ready_path: str | None = None  # GET path answering 200 once the model is loaded
    env: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    grpc_port: int | None = None
    setup: Callable[[], None] | None = None  # run once ready (e.g. push the model), then check


@dataclass(frozen=True)
class Context:
    """What a system needs to build its server."""

    python: Path
    work_dir: Path
    model_dir: Path  # holds model.joblib (and model.skops, mlflow/) trained in this env
    reference: Reference
    admin_key: str
    scenario: str = "demo"  # "demo": the demo LinearRegression; "moderate": the HGB model

    @property
    def model_name(self) -> str:
        return MODEL_NAME if self.scenario == "demo" else MODERATE_MODEL

    @property
    def row(self) -> list[float]:
        return self.reference.row


@dataclass(frozen=True)
class System:
    """A named system: where it comes from and how to build its server."""

    name: str
    summary: str
    env_name: str | None  # a peer environment under bench/.envs, None for ModelPort
    is_peer: bool  # counts for the "p99 lower than every peer's" target
    packages: tuple[str, ...]
    build: Callable[[Context], Server]
    scenarios: tuple[str, ...] = ("demo", "moderate")  # run by default in these


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def predict_endpoint(row: list[float], path: str = "/predict") -> Endpoint:
    body = json.dumps({"features": [row]}).encode()
    return Endpoint("/predict", path, body, lambda answer: answer["prediction"][0])


def v2_endpoint(row: list[float], model: str, label: str = "V2 JSON") -> Endpoint:
    tensor = {"name": "features", "shape": [1, len(row)], "datatype": "FP64", "data": row}
    body = json.dumps({"inputs": [tensor]}).encode()
    path = f"/v2/models/{model}/infer"
    return Endpoint(label, path, body, lambda answer: answer["outputs"][0]["data"][0])


def v2_binary_endpoint(row32: list[float], model: str) -> Endpoint:
    """The V2 binary tensor extension: a JSON header, then the row's FP32 little-endian
    bytes; the answer asked for as raw bytes too."""
    raw = struct.pack(f"<{len(row32)}f", *row32)
    header = {
        "inputs": [
            {
                "name": "features",
                "shape": [1, len(row32)],
                "datatype": "FP32",
                "parameters": {"binary_data_size": len(raw)},
            }
        ],
        "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
    }
    head = json.dumps(header).encode()
    headers = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(head)),
    }
    path = f"/v2/models/{model}/infer"
    return Endpoint(
        "V2 binary", path, head + raw, lambda v: v[0], headers, protocol="binary", fp32=True
    )


def grpc_endpoint(row32: list[float], model: str) -> Endpoint:
    raw = struct.pack(f"<{len(row32)}f", *row32)
    return Endpoint("gRPC", model, raw, lambda v: v[0], protocol="grpc", fp32=True)


def modelport_command(
    python: Path, data_dir: Path, port: int, grpc_port: int, *extra: str, fresh: bool = True
) -> list[str]:
    """`modelport serve` from the given venv, on an emptied data dir unless `fresh` is false
    (a new key, a new registry; with no `--no-demo` an empty data dir makes it train the demo
    model)."""
    executable = python.parent / "modelport"
    if not executable.exists():
        raise FileNotFoundError(f"no {executable}: run `make` first, or pass --modelport-venv")
    if fresh:
        shutil.rmtree(data_dir, ignore_errors=True)
    return [
        str(executable),
        "serve",
        "--host",
        HOST,
        "--port",
        str(port),
        "--grpc-port",
        str(grpc_port),
        "--data-dir",
        str(data_dir),
        *extra,
    ]


def build_modelport(ctx: Context) -> Server:
    """Demo: the demo model ModelPort trains itself, on all four protocols. Moderate: the
    HGB model pushed as skops through the API, on /models/NAME/predict and V2 JSON."""
    from servers import upload_skops, wait_model_ready

    port, grpc_port = free_port(), free_port()
    headers = {"Authorization": f"Bearer {ctx.admin_key}"}
    env = {"MODELPORT_ADMIN_KEY": ctx.admin_key}
    data_dir = ctx.work_dir / f"modelport-{ctx.scenario}-data"
    if ctx.scenario == "demo":
        argv = modelport_command(ctx.python, data_dir, port, grpc_port)
        ref = ctx.reference
        endpoints: tuple[Endpoint, ...] = (
            predict_endpoint(ref.row),
            v2_endpoint(ref.row, MODEL_NAME),
        )
        if ref.row32 is not None:
            endpoints += (
                v2_binary_endpoint(ref.row32, MODEL_NAME),
                grpc_endpoint(ref.row32, MODEL_NAME),
            )
        return Server(
            argv,
            ctx.work_dir,
            port,
            endpoints,
            ready_path="/v2/health/ready",
            env=env,
            headers=headers,
            grpc_port=grpc_port,
        )
    argv = modelport_command(ctx.python, data_dir, port, grpc_port, "--no-demo")
    name = ctx.model_name

    def push() -> None:
        upload_skops(port, name, ctx.model_dir / "model.skops", headers)
        wait_model_ready(port, name, headers)

    return Server(
        argv,
        ctx.work_dir,
        port,
        (predict_endpoint(ctx.row, f"/models/{name}/predict"), v2_endpoint(ctx.row, name)),
        ready_path="/v2/health/ready",
        env=env,
        headers=headers,
        grpc_port=grpc_port,
        setup=push,
    )


def build_flask_dev(ctx: Context) -> Server:
    port = free_port()
    argv = [str(ctx.python), str(PEERS_DIR / "flask_tutorial.py"), HOST, str(port)]
    return Server(argv, ctx.model_dir, port, (predict_endpoint(ctx.row),))


def build_flask_gunicorn(ctx: Context) -> Server:
    port = free_port()
    argv = [
        str(ctx.python),
        "-m",
        "gunicorn",
        "--workers",
        "1",
        "--bind",
        f"{HOST}:{port}",
        "--pythonpath",
        str(PEERS_DIR),
        "flask_tutorial:app",
    ]
    return Server(
        argv, ctx.model_dir, port, (predict_endpoint(ctx.row),), env={"TUTORIAL_LOAD_ONCE": "1"}
    )


def mlserver_builder(
    name: str, extra_settings: dict[str, Any], extra_model_settings: dict[str, Any] | None = None
) -> Callable[[Context], Server]:
    """Build MLServer with its default settings, changed only by `extra_settings` (server)
    and `extra_model_settings` (model-settings.json)."""

    def build(ctx: Context) -> Server:
        server_dir = ctx.work_dir / f"{name}-{ctx.scenario}"
        shutil.rmtree(server_dir, ignore_errors=True)
        model_dir = server_dir / ctx.model_name  # MLServer expects the folder to bear the name
        model_dir.mkdir(parents=True)
        shutil.copy(ctx.model_dir / "model.joblib", model_dir / "model.joblib")
        port = free_port()
        settings = {
            "host": HOST,
            "http_port": port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
            **extra_settings,
        }
        model_settings = {
            "name": ctx.model_name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib"},
            **(extra_model_settings or {}),
        }
        (server_dir / "settings.json").write_text(json.dumps(settings, indent=2))
        (model_dir / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
        argv = [str(ctx.python.parent / "mlserver"), "start", str(server_dir)]
        return Server(
            argv,
            server_dir,
            port,
            (v2_endpoint(ctx.row, ctx.model_name),),
            ready_path=f"/v2/models/{ctx.model_name}/ready",
        )

    return build


def library_dir(python: Path) -> str:
    """The directory of the libpython that `python` runs on (its LIBDIR)."""
    code = "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"
    return subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def build_pytriton(ctx: Context) -> Server:
    port = free_port()
    argv = [
        str(ctx.python),
        str(PEERS_DIR / "pytriton_server.py"),
        HOST,
        str(port),
        str(free_port()),
        str(free_port()),
        str(ctx.model_dir),
        ctx.model_name,
        str(BATCH),
        str(round(BATCH_WAIT_S * 1e6)),
    ]
    # Triton's Python backend stub must load this interpreter's libpython, not another one.
    paths = [
        library_dir(ctx.python),
        *filter(None, os.environ.get("LD_LIBRARY_PATH", "").split(":")),
    ]
    return Server(
        argv,
        ctx.work_dir,
        port,
        (v2_endpoint(ctx.row, ctx.model_name),),
        ready_path=f"/v2/models/{ctx.model_name}/ready",
        env={"LD_LIBRARY_PATH": ":".join(paths)},
    )


def litserve_builder(batching: bool) -> Callable[[Context], Server]:
    def build(ctx: Context) -> Server:
        port = free_port()
        argv = [
            str(ctx.python),
            str(PEERS_DIR / "litserve_server.py"),
            HOST,
            str(port),
            str(ctx.model_dir),
        ]
        if batching:
            argv += [str(BATCH), str(BATCH_WAIT_S)]
        return Server(argv, ctx.work_dir, port, (predict_endpoint(ctx.row),), ready_path="/health")

    return build


def build_mlflow(ctx: Context) -> Server:
    port = free_port()
    argv = [
        str(ctx.python.parent / "mlflow"),
        "models",
        "serve",
        "--model-uri",
        str(ctx.model_dir / "mlflow"),
        "--env-manager",
        "local",
        "--host",
        HOST,
        "--port",
        str(port),
    ]
    body = json.dumps({"inputs": [ctx.row]}).encode()
    endpoint = Endpoint("/invocations", "/invocations", body, lambda a: a["predictions"][0])
    # It execs `uvicorn` from PATH: the environment's own.
    path = f"{ctx.python.parent}:{os.environ.get('PATH', '')}"
    return Server(
        argv,
        ctx.work_dir,
        port,
        (endpoint,),
        ready_path="/ping",
        env={"PATH": path, "MLFLOW_TRACKING_URI": f"file://{ctx.work_dir / 'mlruns'}"},
    )


def bentoml_builder(batching: bool) -> Callable[[Context], Server]:
    def build(ctx: Context) -> Server:
        port = free_port()
        argv = [
            str(ctx.python.parent / "bentoml"),
            "serve",
            "bentoml_service:Predictor",
            "--working-dir",
            str(PEERS_DIR),
            "--host",
            HOST,
            "--port",
            str(port),
        ]
        env = {
            "BENCH_MODEL_DIR": str(ctx.model_dir),
            "BENTOML_DO_NOT_TRACK": "true",
            "BENTOML_HOME": str(ctx.work_dir / "bentoml-home"),
        }
        if batching:
            env["BENCH_MAX_BATCH"] = str(BATCH)
        body = json.dumps({"features": [ctx.row]}).encode()
        endpoint = Endpoint("/predict", "/predict", body, lambda answer: answer[0])
        return Server(argv, ctx.work_dir, port, (endpoint,), ready_path="/readyz", env=env)

    return build


def build_asgi_ceiling(ctx: Context) -> Server:
    port = free_port()
    argv = [
        str(ctx.python),
        "-m",
        "uvicorn",
        "asgi_ceiling:app",
        "--app-dir",
        str(PEERS_DIR),
        "--host",
        HOST,
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--lifespan",
        "off",
        "--no-access-log",
        "--log-level",
        "warning",
        "--backlog",  # ModelPort's own listen backlog: floods meet the same kernel queue
        "4096",
    ]
    constant = Endpoint("constant", "/predict", predict_endpoint(ctx.row).body, None)
    return Server(argv, ctx.work_dir, port, (constant,))


SKLEARN = ("scikit-learn", "numpy")
FLASK_PACKAGES = ("flask", "werkzeug", "gunicorn", *SKLEARN, "joblib")
MLSERVER_PACKAGES = (
    "mlserver",
    "mlserver-sklearn",
    "uvicorn",
    "uvloop",
    "fastapi",
    *SKLEARN,
    "pandas",
)
BATCHING = f"at most {BATCH} rows per predict, waiting at most {BATCH_WAIT_S * 1000:g} ms"

SYSTEMS: tuple[System, ...] = (
    System(
        "modelport",
        "`modelport serve`, the repository's own virtual environment",
        None,
        False,
        (
            "modelport",
            "fastapi",
            "starlette",
            "uvicorn",
            "uvloop",
            "httptools",
            "orjson",
            "pydantic",
            "grpcio",
            *SKLEARN,
        ),
        build_modelport,
    ),
    System(
        "flask-dev",
        "tutorial Flask app, `joblib.load` on every request, Flask dev server",
        "flask",
        True,
        FLASK_PACKAGES,
        build_flask_dev,
    ),
    System(
        "flask-gunicorn",
        "same Flask app, model loaded once, `gunicorn --workers 1` (sync)",
        "flask",
        True,
        FLASK_PACKAGES,
        build_flask_gunicorn,
    ),
    System(
        "mlserver-default",
        "MLServer + mlserver-sklearn, default settings (one parallel worker process)",
        "mlserver",
        True,
        MLSERVER_PACKAGES,
        mlserver_builder("mlserver-default", {}),
        ("demo",),
    ),
    System(
        "mlserver-pw0",
        "MLServer + mlserver-sklearn, `parallel_workers: 0`",
        "mlserver",
        True,
        MLSERVER_PACKAGES,
        mlserver_builder("mlserver-pw0", {"parallel_workers": 0}),
        ("demo",),
    ),
    System(
        "mlserver-batch",
        f"MLServer + mlserver-sklearn, default settings with adaptive batching "
        f"(`max_batch_size: {BATCH}`, `max_batch_time: {BATCH_WAIT_S:g}`)",
        "mlserver",
        True,
        MLSERVER_PACKAGES,
        mlserver_builder(
            "mlserver-batch", {}, {"max_batch_size": BATCH, "max_batch_time": BATCH_WAIT_S}
        ),
    ),
    System(
        "pytriton",
        f"PyTriton: Triton's HTTP V2 endpoint (CPU), `@batch` infer function, dynamic batching "
        f"({BATCHING})",
        "pytriton",
        True,
        ("nvidia-pytriton", "tritonclient", *SKLEARN),
        build_pytriton,
    ),
    System(
        "litserve",
        "LitServe, one request per predict, the tutorial's `/predict` body",
        "litserve",
        True,
        ("litserve", "fastapi", "uvicorn", "uvloop", *SKLEARN),
        litserve_builder(batching=False),
        ("demo",),
    ),
    System(
        "litserve-batch",
        f"LitServe with batching (`max_batch_size={BATCH}`, `batch_timeout={BATCH_WAIT_S:g}`)",
        "litserve",
        True,
        ("litserve", "fastapi", "uvicorn", "uvloop", *SKLEARN),
        litserve_builder(batching=True),
    ),
    System(
        "mlflow",
        "`mlflow models serve --env-manager local` on a `mlflow.sklearn.save_model` directory",
        "mlflow",
        True,
        ("mlflow", "fastapi", "uvicorn", *SKLEARN),
        build_mlflow,
    ),
    System(
        "bentoml",
        "BentoML service (`peers/bentoml_service.py`), `bentoml serve`, one worker",
        "bentoml",
        True,
        ("bentoml", "starlette", "uvicorn", *SKLEARN),
        bentoml_builder(batching=False),
        ("demo",),
    ),
    System(
        "bentoml-batch",
        f"the same BentoML service with a `batchable` API (adaptive batching, "
        f"`max_batch_size={BATCH}`)",
        "bentoml",
        True,
        ("bentoml", "starlette", "uvicorn", *SKLEARN),
        bentoml_builder(batching=True),
    ),
    System(
        "asgi-ceiling",
        "raw ASGI app returning a constant answer, uvicorn + uvloop + httptools",
        "asgi",
        False,
        ("uvicorn", "uvloop", "httptools"),
        build_asgi_ceiling,
    ),
)
