"""The PyTorch runtime in process: formats recognised from content (even without torch),
exported programs checked before torch.export.load sees them (and proof that the parts
refused do run code in torch itself), trust for TorchScript and pickles, state-dict
folders built from registered architectures, and predictions equal to the model's own."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from modelport.errors import ForbiddenError, InvalidInputError
from modelport.runtimes.loader import inspect_upload, load_model
from modelport.runtimes.pytorch import load_torch_file
from modelport.runtimes.torch_export_check import unsafe_reason
from modelport.types import Signature
from tests.runtimes.torch_models import (
    IN_FEATURES,
    RunsACommand,
    add_entry,
    edit_program,
    expected,
    export_program,
    pickled_payload,
    rewrite_archive,
    save_state_dict_folder,
    save_torchscript,
    torch_saved,
    trained_mlp,
)

ROWS = np.random.default_rng(3).normal(size=(7, IN_FEATURES)).astype(np.float32)
SIGNATURE = Signature.model_validate(
    {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, IN_FEATURES]}]}
)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return trained_mlp()


@pytest.fixture(scope="module")
def program(model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_program(model, tmp_path_factory.mktemp("pt2") / "model.pt2")


def _predict(path: Path, signature: Signature, fmt: str, rows: np.ndarray, **trust: bool) -> Any:
    loaded = load_model(
        path, fmt, signature, trust.get("trusted", False), trust.get("allow_pickle", False)
    )
    name = signature.inputs[0].name
    return loaded.predict({name: rows}, frozenset(["output"]))["output"]


def test_exported_program_is_safe_and_keeps_its_dynamic_batch(
    model: torch.nn.Module, program: Path
) -> None:
    assert unsafe_reason(program) is None
    inspected = inspect_upload(program, allow_pickle=False, uploader_is_admin=False, signature=None)
    assert (inspected.format, inspected.framework, inspected.trusted) == (
        "torch-export",
        "torch",
        False,
    )
    signature = inspected.signature.model_dump()
    assert signature["inputs"][0] | {"parameters": {}} == {
        "name": "input",
        "datatype": "FP32",
        "shape": [-1, IN_FEATURES],
        "parameters": {},
    }
    assert signature["outputs"][0]["shape"] == [-1, 2]
    for rows in (ROWS[:1], ROWS):  # one row and many: the batch is free
        predicted = _predict(program, inspected.signature, "torch-export", rows)
        np.testing.assert_allclose(predicted, expected(model, rows), rtol=1e-5, atol=1e-6)


def test_a_fixed_batch_program_has_a_fixed_signature(
    model: torch.nn.Module, tmp_path: Path
) -> None:
    path = export_program(model, tmp_path / "fixed.pt2", dynamic=False)
    inspected = inspect_upload(path, False, False, None)
    assert inspected.signature.inputs[0].shape == [3, IN_FEATURES]


def _sample_inputs_payload(source: Path, marker: Path, path: Path) -> Path:
    def change(name: str, content: bytes) -> bytes:
        return (
            torch_saved(RunsACommand(marker))
            if name.endswith("sample_inputs/model.pt")
            else content
        )

    return rewrite_archive(source, path, change)


def _pickled_weight(source: Path, marker: Path, path: Path) -> Path:
    def change(name: str, content: bytes) -> bytes:
        if name.endswith("model_weights_config.json"):
            config = json.loads(content)
            config["config"]["0.weight"]["use_pickle"] = True
            return json.dumps(config).encode()
        return torch_saved(RunsACommand(marker)) if name.endswith("weights/weight_0") else content

    return rewrite_archive(source, path, change)


def _symbolic_expression(source: Path, marker: Path, path: Path) -> Path:
    def edit(document: dict[str, Any]) -> None:
        size = document["graph_module"]["graph"]["tensor_values"]["input"]["sizes"][0]
        size["as_expr"]["expr_str"] = f"__import__('os').system('touch {marker}') + s31"

    return edit_program(source, path, edit)


CODE_PATHS: dict[str, Callable[[Path, Path, Path], Path]] = {
    "sample inputs": _sample_inputs_payload,
    "pickled weight": _pickled_weight,
    "symbolic expression": _symbolic_expression,
}


@pytest.mark.parametrize("kind", list(CODE_PATHS))
def test_programs_that_torch_would_run_code_from_are_refused(
    program: Path, tmp_path: Path, kind: str
) -> None:
    marker = tmp_path / "pwned"
    hostile = CODE_PATHS[kind](program, marker, tmp_path / "hostile.pt2")
    with pytest.raises(InvalidInputError, match="loading it could run code"):
        inspect_upload(hostile, allow_pickle=False, uploader_is_admin=True, signature=None)
    with pytest.raises(ForbiddenError, match="admin"):
        inspect_upload(hostile, allow_pickle=True, uploader_is_admin=False, signature=None)
    with pytest.raises(ForbiddenError, match="not a trusted version"):
        load_torch_file(hostile, trusted=False, allow_pickle=True)
    assert not marker.exists()
    # The check is load-bearing: torch.export.load itself runs this payload.
    subprocess.run(
        [sys.executable, "-c", f"import torch; torch.export.load({str(hostile)!r}).module()"],
        capture_output=True,
        check=False,
    )
    assert marker.exists()


def _edit(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(document: dict[str, Any]) -> None:
        if key == "target":
            document["graph_module"]["graph"]["nodes"][0]["target"] = value
        else:
            document[key] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (_edit("target", "torch.serialization.os.system"), "not an ATen/prims operator"),
        (_edit("target", "torch.ops.aten.__class__.x"), "not an ATen/prims operator"),
        (_edit("guards_code", ["__import__('os').system('id') == 0"]), "guard code"),
    ],
)
def test_graphs_with_foreign_calls_are_not_safe(
    program: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], None], reason: str
) -> None:
    hostile = edit_program(program, tmp_path / "edited.pt2", edit)
    assert reason in (unsafe_reason(hostile) or "")


def test_unexpected_entries_and_garbage_are_not_safe(program: Path, tmp_path: Path) -> None:
    copy = rewrite_archive(program, tmp_path / "native.pt2", lambda _, content: content)
    add_entry(copy, f"{program.stem}/data/aotinductor/model/model.so", b"\x7fELF")
    assert "does not write" in (unsafe_reason(copy) or "")
    garbage = rewrite_archive(
        program,
        tmp_path / "garbage.pt2",
        lambda name, content: b"\x00garbage{" if name.endswith("model.json") else content,
    )
    assert "cannot be read" in (unsafe_reason(garbage) or "")
    with pytest.raises(InvalidInputError, match="could run code"):
        inspect_upload(garbage, False, True, None)
    with pytest.raises(InvalidInputError, match="could not be loaded"):  # trusted: torch says why
        inspect_upload(garbage, True, True, None)


def test_torchscript_needs_trust_and_a_signature(model: torch.nn.Module, tmp_path: Path) -> None:
    path = save_torchscript(model, tmp_path / "model.ts")
    with pytest.raises(InvalidInputError, match="--allow-pickle"):
        inspect_upload(path, allow_pickle=False, uploader_is_admin=True, signature=SIGNATURE)
    with pytest.raises(ForbiddenError, match="admin"):
        inspect_upload(path, allow_pickle=True, uploader_is_admin=False, signature=SIGNATURE)
    with pytest.raises(InvalidInputError, match="signature"):
        inspect_upload(path, allow_pickle=True, uploader_is_admin=True, signature=None)
    inspected = inspect_upload(path, True, True, SIGNATURE)
    assert inspected.trusted and inspected.format == "torchscript"
    assert inspected.signature.outputs[0].shape == [-1, 2]
    predicted = _predict(
        path, inspected.signature, "torchscript", ROWS, trusted=True, allow_pickle=True
    )
    np.testing.assert_allclose(predicted, expected(model, ROWS), rtol=1e-5, atol=1e-6)
    with pytest.raises(ForbiddenError, match="--allow-pickle"):
        _predict(path, inspected.signature, "torchscript", ROWS, trusted=True)


def test_a_pickle_payload_never_runs_without_trust(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = pickled_payload(marker, tmp_path / "model.pt")
    with pytest.raises(InvalidInputError, match="refuses it"):
        inspect_upload(path, allow_pickle=False, uploader_is_admin=True, signature=SIGNATURE)
    with pytest.raises(ForbiddenError):
        inspect_upload(path, allow_pickle=True, uploader_is_admin=False, signature=SIGNATURE)
    with pytest.raises(ForbiddenError):
        load_torch_file(path, trusted=False, allow_pickle=True)
    with pytest.raises(ForbiddenError):
        load_torch_file(path, trusted=True, allow_pickle=False)
    assert not marker.exists()


def test_whole_model_pickles_load_when_trusted(model: torch.nn.Module, tmp_path: Path) -> None:
    for name, legacy in (("zip.pt", False), ("legacy.pt", True)):
        path = tmp_path / name
        torch.save(model, path, _use_new_zipfile_serialization=not legacy)
        inspected = inspect_upload(path, True, True, SIGNATURE)
        assert inspected.format == "torch-pickle" and inspected.trusted
        predicted = _predict(
            path, inspected.signature, "torch-pickle", ROWS, trusted=True, allow_pickle=True
        )
        np.testing.assert_allclose(predicted, expected(model, ROWS), rtol=1e-5, atol=1e-6)
    state_dict = tmp_path / "weights.pt"
    torch.save(model.state_dict(), state_dict)
    with pytest.raises(InvalidInputError, match=r"architecture\.json"):
        inspect_upload(state_dict, True, True, SIGNATURE)


def _pack(folder: Path) -> Path:
    archive = folder.with_suffix(".tar.gz")
    with tarfile.open(archive, "w:gz") as bundle:
        bundle.add(folder, arcname=folder.name)
    return archive


def test_state_dict_folder_serves_the_registered_architecture(
    model: torch.nn.Module, tmp_path: Path
) -> None:
    archive = _pack(save_state_dict_folder(model, tmp_path / "mlp"))
    inspected = inspect_upload(archive, allow_pickle=False, uploader_is_admin=False, signature=None)
    assert inspected.format == "torch-state-dict" and not inspected.trusted
    assert inspected.params == {"architecture": "mlp", "parameters": 114}
    predicted = _predict(tmp_path / "mlp", inspected.signature, "torch-state-dict", ROWS)
    np.testing.assert_allclose(predicted, expected(model, ROWS), rtol=1e-6)


@pytest.mark.parametrize(
    ("description", "message"),
    [
        (
            {"architecture": "mlp", "args": {"in_features": 5, "hidden": [16], "out_features": 2}},
            "'0.weight' has shape [16, 4] but the architecture wants [16, 5]",
        ),
        (
            {"architecture": "mlp", "args": {"in_features": 4, "out_features": 2}},
            "unexpected weights: 2.bias, 2.weight",
        ),
        (
            {
                "architecture": "mlp",
                "args": {"in_features": 4, "hidden": [16, 8], "out_features": 2},
            },
            "missing weights: 4.bias, 4.weight",
        ),
        (
            {
                "architecture": "mlp",
                "args": {"in_features": 1 << 20, "hidden": [1 << 20] * 8, "out_features": 2},
            },
            "does not fit the architecture",
        ),
        (
            {"architecture": "mlp", "args": {"in_features": "4", "out_features": 2}},
            "'in_features' must be an integer",
        ),
        (
            {"architecture": "mlp", "args": {"in_features": 4, "out_features": 2, "depth": 3}},
            "refused its args",
        ),
        ({"architecture": "resnet-50", "args": {}}, "'resnet-50', which is not registered"),
        ({"args": {}}, "must be an object naming its architecture"),
    ],
)
def test_state_dicts_that_do_not_fit_are_refused(
    model: torch.nn.Module, tmp_path: Path, description: dict[str, Any], message: str
) -> None:
    archive = _pack(save_state_dict_folder(model, tmp_path / "mlp", description))
    with pytest.raises(InvalidInputError) as refused:
        inspect_upload(archive, False, False, None)
    assert message in refused.value.message


def test_architectures_come_from_entry_points(model: torch.nn.Module, tmp_path: Path) -> None:
    """A package registers an architecture under ``modelport.torch_architectures``."""
    site = tmp_path / "site"
    (site / "tiny_arch-1.0.dist-info").mkdir(parents=True)
    (site / "tiny_arch-1.0.dist-info" / "METADATA").write_text("Name: tiny-arch\nVersion: 1.0\n")
    (site / "tiny_arch-1.0.dist-info" / "entry_points.txt").write_text(
        "[modelport.torch_architectures]\ntwo-layer = tiny_arch:build\n"
    )
    (site / "tiny_arch.py").write_text(
        textwrap.dedent(
            """
            import torch

            class TwoLayer(torch.nn.Module):
                def __init__(self, width):
                    super().__init__()
                    self.first = torch.nn.Linear(4, width)
                    self.second = torch.nn.Linear(width, 2)

                def forward(self, x):
                    return {"score": self.second(torch.tanh(self.first(x)))}

            def build(width):
                return TwoLayer(width)
            """
        )
    )
    torch.manual_seed(1)
    weights = torch.nn.ModuleDict({"first": torch.nn.Linear(4, 8), "second": torch.nn.Linear(8, 2)})
    inputs = [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    folder = save_state_dict_folder(
        weights,
        tmp_path / "two",
        {"architecture": "two-layer", "args": {"width": 8}, "inputs": inputs},
    )
    script = textwrap.dedent(
        f"""
        import numpy as np, torch
        from pathlib import Path
        from modelport.runtimes.loader import inspect_upload, load_model
        archive = Path({str(_pack(folder))!r})
        inspected = inspect_upload(archive, False, False, None)
        folder = Path({str(folder)!r})
        model = load_model(folder, inspected.format, inspected.signature, False, False)
        score = model.predict({{"x": np.ones((3, 4), dtype=np.float32)}}, frozenset(["score"]))
        print(inspected.signature.outputs[0].name, score["score"].tolist())
        """
    )
    output = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
    ).stdout
    name, values = output.split(" ", 1)
    with torch.no_grad():
        rows = torch.ones(3, 4)
        wanted = weights["second"](torch.tanh(weights["first"](rows)))
    assert name == "score"
    np.testing.assert_allclose(json.loads(values), wanted.numpy(), rtol=1e-6)


def test_formats_are_recognised_without_torch(
    model: torch.nn.Module, program: Path, tmp_path: Path
) -> None:
    files = {
        "torch-export": program,
        "torchscript": save_torchscript(model, tmp_path / "m.ts"),
        "torch-pickle": tmp_path / "m.pt",
    }
    torch.save(model, files["torch-pickle"])
    script = textwrap.dedent(
        f"""
        import sys; sys.modules['torch'] = None
        from pathlib import Path
        from modelport.errors import InvalidInputError
        from modelport.runtimes.loader import inspect_upload
        from modelport.runtimes.plugins import detect
        for path in {[str(path) for path in files.values()]!r}:
            runtime, fmt = detect(Path(path))
            try:
                inspect_upload(Path(path), True, True, None)
            except InvalidInputError as exc:
                print(runtime.name, fmt, exc.message)
        """
    )
    lines = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert [line.split(" ", 2)[:2] for line in lines] == [["pytorch", fmt] for fmt in files]
    assert all("pip install 'modelport[torch]'" in line for line in lines)


def test_threads_follow_the_load_options(program: Path) -> None:
    inspected = inspect_upload(program, False, False, None)
    before = torch.get_num_threads()
    try:
        load_model(program, "torch-export", inspected.signature, False, False, threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_encrypted_or_unreadable_entries_are_not_safe(tmp_path: Path) -> None:
    # zipfile raises RuntimeError for an encrypted entry and NotImplementedError for an
    # unknown compression method: both escaped the check (a 500 at upload) before the fix.
    import zipfile

    for damage in ("encrypted", "method"):
        path = tmp_path / f"{damage}.pt2"
        with zipfile.ZipFile(path, "w") as bundle:
            bundle.writestr("m/archive_format", b"pt2")
        data = bytearray(path.read_bytes())
        central = data.rfind(b"PK\x01\x02")
        if damage == "encrypted":
            data[6] |= 1
            data[central + 8] |= 1
        else:
            data[8] = data[central + 10] = 99
        path.write_bytes(bytes(data))
        assert "cannot be read" in (unsafe_reason(path) or "")
        with pytest.raises(InvalidInputError, match="could run code"):
            inspect_upload(path, False, True, None)


def _every_expression(value: str) -> Callable[[dict[str, Any]], None]:
    def edit(document: dict[str, Any]) -> None:
        pending: list[Any] = [document]
        while pending:
            item = pending.pop()
            if isinstance(item, dict):
                for key in item:
                    if key == "expr_str":
                        item[key] = value
                    else:
                        pending.append(item[key])
            elif isinstance(item, list):
                pending.extend(item)

    return edit


@pytest.mark.parametrize(
    "edit",
    [
        # sympify evaluates these: each kept torch.export.load busy (holding the GIL, so
        # the whole server froze) for as long as it took, before the fix.
        _every_expression("9**9**9**9"),
        _every_expression("PowByNatural(9, 999999999999)"),
        _every_expression("LShift(1, 999999999999)"),
        _every_expression("Integer(1e999999999)"),
        _edit("guards_code", ["L['x'].size()[0] ** 999999999999 > 1"]),
        _edit("guards_code", ["1 << 999999999999 > L['x'].size()[0]"]),
    ],
)
def test_expressions_that_would_take_forever_are_not_safe(
    program: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], None]
) -> None:
    hostile = edit_program(program, tmp_path / "slow.pt2", edit)
    assert unsafe_reason(hostile) is not None
