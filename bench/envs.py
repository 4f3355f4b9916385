"""Virtual environments for the peers, each created on first use under bench/.envs/NAME.

An environment is rebuilt when its pinned requirements change, and removed again when
creating it fails, so a half-installed environment is never reused.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ENVS_DIR = BENCH_DIR / ".envs"
STAMP = "bench-requirements.txt"

# Pinned so that a rerun measures the same software; scikit-learn is the same everywhere.
SKLEARN_STACK = ("scikit-learn==1.9.1", "numpy==2.4.6", "joblib==1.6.0")
REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "flask": ("flask==3.1.3", "werkzeug==3.1.9", "gunicorn==27.0.1", *SKLEARN_STACK),
    # MLServer 1.7.1's parallel workers fail to start with uvloop >= 0.22.
    "mlserver": ("mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop==0.21.0", *SKLEARN_STACK),
    "asgi": ("uvicorn==0.54.0", "uvloop==0.23.0", "httptools==0.9.0"),
    # The gRPC load generator: tritonclient's generated stubs drive every server alike.
    "grpcclient": ("tritonclient[grpc]==2.73.0", "grpcio==1.85.3", "protobuf==6.33.6"),
    # PyTriton 0.7.0 (Triton server inside the wheel, on CPU) needs numpy < 2.
    "pytriton": ("nvidia-pytriton==0.7.0", "numpy==1.26.4", "scikit-learn==1.9.1", "joblib==1.6.0"),
    "litserve": ("litserve==0.2.19", *SKLEARN_STACK),
    # mlflow 3.18.0 needs mlflow-skinny==3.18.0, which the package index did not offer.
    "mlflow": ("mlflow==3.17.2", *SKLEARN_STACK),
    "bentoml": ("bentoml==1.4.40", *SKLEARN_STACK),
}


def ensure_env(name: str, base_python: str = sys.executable) -> Path:
    """Return the python of environment `name`, creating or rebuilding it when needed."""
    root = ENVS_DIR / name
    python = root / "bin" / "python"
    wanted = "\n".join(REQUIREMENTS[name]) + "\n"
    stamp = root / STAMP
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"creating bench/.envs/{name}: pip install {' '.join(REQUIREMENTS[name])}", flush=True)
    shutil.rmtree(root, ignore_errors=True)
    try:
        _run([base_python, "-m", "venv", str(root)])
        _run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--quiet",
                *REQUIREMENTS[name],
            ]
        )
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    stamp.write_text(wanted)
    return python


def package_versions(python: Path, names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of `names` in the environment of `python` ("-" when absent)."""
    code = (
        "import importlib.metadata as m, json, platform, sys\n"
        "def v(n):\n"
        "    try:\n"
        "        return m.version(n)\n"
        "    except m.PackageNotFoundError:\n"
        "        return '-'\n"
        "out = {'python': platform.python_version()}\n"
        "out.update({n: v(n) for n in sys.argv[1:]})\n"
        "print(json.dumps(out))\n"
    )
    try:
        done = subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True)
    except OSError:
        return {"python": "?"}
    if done.returncode != 0:
        return {"python": "?"}
    versions: dict[str, str] = json.loads(done.stdout)
    return versions


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise RuntimeError(f"{' '.join(argv[:3])} ... failed:\n{tail}")
