"""Loading a model whose code is the uploader's (custom Python, MLflow pyfunc) in a
throwaway process, to check an upload without running that code in the server: an
exception, ``os._exit`` or a segfault while it loads becomes a clear error for the
uploader, and the server carries on. (Serving such models happens in worker processes
too: see ``isolated_formats`` in ``modelport.runtimes.plugins``.)

Run as ``python -m modelport.runtimes.isolation FORMAT FOLDER`` with the signature as JSON
on stdin; the last line starting with :data:`MARKER` says how it went.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from modelport.errors import InvalidInputError, ModelPortError, UnavailableError
from modelport.types import Signature

MARKER = "modelport-probe: "
PROBE_TIMEOUT_S = 120.0


def probe_load(folder: Path, fmt: str, signature: Signature, what: str) -> None:
    """Load the model of ``folder`` once in a separate process; raise what went wrong."""
    command = [sys.executable, "-m", "modelport.runtimes.isolation", fmt, str(folder)]
    try:
        done = subprocess.run(
            command,
            input=signature.model_dump_json(),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=PROBE_TIMEOUT_S,
            env={k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")},
        )
    except subprocess.TimeoutExpired:
        raise InvalidInputError(
            f"{what} did not finish loading within {PROBE_TIMEOUT_S:.0f} s"
        ) from None
    reports = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
    if reports:
        report = json.loads(reports[-1].removeprefix(MARKER))
        if report.get("ok"):
            return
        raise InvalidInputError(f"{what} could not be loaded: {report['message']}")
    tail = " | ".join(done.stderr.strip().splitlines()[-3:])[-600:]
    raise InvalidInputError(
        f"{what} could not be loaded: its process exited (code {done.returncode}) while "
        f"loading" + (f": {tail}" if tail else "")
    )


def _probe(fmt: str, folder: Path, signature: Signature) -> dict[str, object]:
    from modelport.runtimes.plugins import LoadOptions, runtime_for

    options = LoadOptions(trusted=True, allow_pickle=True)
    try:
        model = runtime_for(fmt).load(folder, fmt, signature, options)
        model.unload()
    except ModelPortError as exc:
        return {"ok": False, "message": exc.message}
    except BaseException as exc:  # the uploader's code may raise anything, SystemExit too
        return {"ok": False, "message": f"{type(exc).__name__}: {exc}"[:1000]}
    return {"ok": True}


def main() -> None:
    fmt, folder = sys.argv[1], Path(sys.argv[2])
    signature = Signature.model_validate_json(sys.stdin.read())
    report = _probe(fmt, folder, signature)
    sys.stdout.write("\n" + MARKER + json.dumps(report) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()


class LoadedInWorkers:
    """What the server process holds for a model of an isolated format (see
    ``plugins.needs_isolation``): its description, never its code. Every output is a
    default output; inputs are the model's to check. Predict calls go to the workers."""

    finite_inputs_only = False

    def __init__(self, signature: Signature) -> None:
        self.signature = signature
        self.default_outputs = [spec.name for spec in signature.outputs]

    def predict(self, inputs: dict[str, Any], outputs: frozenset[str]) -> dict[str, Any]:
        raise UnavailableError("this model predicts only in its worker processes")

    def unload(self) -> None:
        return None
