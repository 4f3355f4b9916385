"""The systems under test: how to start each one and which requests it answers.

Every system serves the same demo LinearRegression (the ceiling excepted) and is asked for
one-row predictions; `read_prediction` pulls the number out of an answer so that it can be
checked against the reference before any load is applied.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PEERS_DIR = Path(__file__).resolve().parent / "peers"
HOST = "127.0.0.1"
MODEL_NAME = "demo-linear"


@dataclass(frozen=True)
class Endpoint:
    """One request a system is loaded with."""

    label: str
    path: str
    body: bytes
    read_prediction: Callable[[Any], float] | None  # None: a constant answer, not checked


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


@dataclass(frozen=True)
class Context:
    """What a system needs to build its server: its python, the work dir and the row."""

    python: Path
    work_dir: Path
    model_dir: Path  # holds model.joblib trained in this system's environment
    row: list[float]
    admin_key: str


@dataclass(frozen=True)
class System:
    """A named system: where it comes from and how to build its server."""

    name: str
    summary: str
    env_name: str | None  # a peer environment under bench/.envs, None for ModelPort
    is_peer: bool  # counts for the "p99 lower than every peer's" target
    packages: tuple[str, ...]
    build: Callable[[Context], Server]


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def predict_endpoint(row: list[float]) -> Endpoint:
    body = json.dumps({"features": [row]}).encode()
    return Endpoint("/predict", "/predict", body, lambda answer: answer["prediction"][0])


def v2_endpoint(row: list[float]) -> Endpoint:
    tensor = {"name": "features", "shape": [1, len(row)], "datatype": "FP64", "data": row}
    body = json.dumps({"inputs": [tensor]}).encode()
    path = f"/v2/models/{MODEL_NAME}/infer"
    return Endpoint("V2 /infer", path, body, lambda answer: answer["outputs"][0]["data"][0])


def modelport_command(
    python: Path, data_dir: Path, port: int, grpc_port: int, *extra: str
) -> list[str]:
    """`modelport serve` from the given venv on an emptied data dir (a new key, a new
    registry; with no `--no-demo` an empty data dir makes it train the demo model)."""
    executable = python.parent / "modelport"
    if not executable.exists():
        raise FileNotFoundError(f"no {executable}: run `make` first, or pass --modelport-venv")
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
    port = free_port()
    argv = modelport_command(ctx.python, ctx.work_dir / "modelport-data", port, free_port())
    return Server(
        argv,
        ctx.work_dir,
        port,
        (predict_endpoint(ctx.row), v2_endpoint(ctx.row)),
        ready_path="/v2/health/ready",
        env={"MODELPORT_ADMIN_KEY": ctx.admin_key},
        headers={"Authorization": f"Bearer {ctx.admin_key}"},
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


def mlserver_builder(name: str, extra_settings: dict[str, Any]) -> Callable[[Context], Server]:
    """Build MLServer with its default settings, changed only by `extra_settings`."""

    def build(ctx: Context) -> Server:
        server_dir = ctx.work_dir / name
        shutil.rmtree(server_dir, ignore_errors=True)
        model_dir = server_dir / MODEL_NAME  # MLServer expects the folder to bear the name
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
            "name": MODEL_NAME,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib"},
        }
        (server_dir / "settings.json").write_text(json.dumps(settings, indent=2))
        (model_dir / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
        argv = [str(ctx.python.parent / "mlserver"), "start", str(server_dir)]
        return Server(
            argv,
            server_dir,
            port,
            (v2_endpoint(ctx.row),),
            ready_path=f"/v2/models/{MODEL_NAME}/ready",
        )

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
    ]
    constant = Endpoint("constant", "/predict", predict_endpoint(ctx.row).body, None)
    return Server(argv, ctx.work_dir, port, (constant,))


FLASK_PACKAGES = ("flask", "werkzeug", "gunicorn", "scikit-learn", "numpy", "joblib")
MLSERVER_PACKAGES = (
    "mlserver",
    "mlserver-sklearn",
    "uvicorn",
    "uvloop",
    "fastapi",
    "scikit-learn",
    "numpy",
    "pandas",
)

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
            "scikit-learn",
            "numpy",
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
        "MLServer 1.7.1 + mlserver-sklearn, default settings (one parallel worker process)",
        "mlserver",
        True,
        MLSERVER_PACKAGES,
        mlserver_builder("mlserver-default", {}),
    ),
    System(
        "mlserver-pw0",
        "MLServer 1.7.1 + mlserver-sklearn, `parallel_workers: 0`",
        "mlserver",
        True,
        MLSERVER_PACKAGES,
        mlserver_builder("mlserver-pw0", {"parallel_workers": 0}),
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
