"""Tiny PyTorch models trained here and saved every way users save them, and hostile
variants of those files."""

from __future__ import annotations

import io
import json
import os
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from modelport.runtimes.torch_architectures import build_mlp

IN_FEATURES = 4
HIDDEN = [16]
OUT_FEATURES = 2


class RunsACommand:
    """A pickle payload: unpickling it would create ``marker`` through a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def trained_mlp(seed: int = 0) -> torch.nn.Module:
    """The built-in ``mlp`` architecture, trained a few steps on a seeded regression."""
    torch.manual_seed(seed)
    model = build_mlp(IN_FEATURES, OUT_FEATURES, HIDDEN)
    x = torch.randn(64, IN_FEATURES)
    y = torch.stack([x.sum(dim=1), x[:, 0] - x[:, 1]], dim=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(20):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
    return model.eval()


def expected(model: Any, rows: Any) -> Any:
    with torch.no_grad():
        return model(torch.as_tensor(rows, dtype=torch.float32)).numpy()


def export_program(model: torch.nn.Module, path: Path, dynamic: bool = True) -> Path:
    example = (torch.randn(3, IN_FEATURES),)
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    torch.export.save(torch.export.export(model, example, dynamic_shapes=shapes), path)
    return path


def save_torchscript(model: torch.nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():  # TorchScript is deprecated; users still have such files
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(model), path)
    return path


def save_state_dict_folder(
    model: torch.nn.Module, folder: Path, description: dict[str, Any] | None = None
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), folder / "model.safetensors")
    description = description or {
        "architecture": "mlp",
        "args": {"in_features": IN_FEATURES, "hidden": HIDDEN, "out_features": OUT_FEATURES},
    }
    (folder / "architecture.json").write_text(json.dumps(description))
    return folder


def pickled_payload(marker: Path, path: Path) -> Path:
    """A ``.pt`` file written by ``torch.save`` whose unpickling runs a shell command."""
    torch.save(RunsACommand(marker), path)
    return path


def rewrite_archive(
    source: Path, destination: Path, change: Callable[[str, bytes], bytes | None]
) -> Path:
    """A copy of a zip archive with each entry's content passed through ``change``
    (None drops the entry)."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(destination, "w") as copy:
        for info in original.infolist():
            content = change(info.filename, original.read(info))
            if content is not None:
                copy.writestr(info.filename, content)
    return destination


def add_entry(path: Path, name: str, content: bytes) -> Path:
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(name, content)
    return path


def edit_program(source: Path, destination: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of an exported program with its graph JSON edited."""

    def change(name: str, content: bytes) -> bytes:
        if not name.endswith("models/model.json"):
            return content
        document = json.loads(content)
        edit(document)
        return json.dumps(document).encode()

    return rewrite_archive(source, destination, change)


def torch_saved(value: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()
