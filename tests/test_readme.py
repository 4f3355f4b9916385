"""The README's quick start is true: its commands exist and its curl example works."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ADMIN_KEY
from tests.servers import ServerProcess

README = Path(__file__).resolve().parent.parent / "README.md"


def _quick_start() -> str:
    text = README.read_text()
    return text.split("## Quick start", 1)[1].split("\n## ", 1)[0]


def test_quick_start_is_the_two_make_commands() -> None:
    first_block = re.search(r"```bash\n(.*?)```", _quick_start(), re.S)
    assert first_block is not None
    assert first_block.group(1).split() == ["make", "serve", "make", "test"]
    makefile = (README.parent / "Makefile").read_text()
    assert re.search(r"^serve:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_readme_curl_example_answers_with_a_prediction(server: ServerProcess) -> None:
    curl = next(
        line
        for line in _quick_start().splitlines()
        if line.startswith("curl ") and "/predict" in line
    )
    command = curl.replace("localhost:8080", f"127.0.0.1:{server.port}")
    key_file = server.data_dir / "admin.key"
    env_key = "mp_test-admin-key-0123456789abcdefghijklmnop"
    result = subprocess.run(
        ["bash", "-c", f"KEY={env_key}; {command}"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert list(body) == ["prediction"] and len(body["prediction"]) == 1
    assert not key_file.exists()  # the shared server uses MODELPORT_ADMIN_KEY


def test_readme_push_example_runs(server: ServerProcess, tmp_path: Path) -> None:
    section = README.read_text().split("## Push your own model", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None
    bin_dir = Path(sys.executable).parent
    script = "\n".join(
        line for line in block.group(1).splitlines() if not line.startswith("export ")
    ).replace(".venv/bin/", f"{bin_dir}/")
    env = {**os.environ, "MODELPORT_URL": server.url, "MODELPORT_API_KEY": ADMIN_KEY}
    result = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "pushed house-price@" in result.stdout
    assert '"prediction"' in result.stdout
