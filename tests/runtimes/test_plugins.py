"""A third-party runtime, installed as a distribution with a ``modelport.runtimes`` entry
point, serves its own format in a real server: detected from the bytes, inspected,
loaded, predicted through /predict and V2."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.api.test_management import upload
from tests.conftest import ADMIN_KEY
from tests.servers import start_server

PLUGIN = textwrap.dedent(
    '''
    """Scales each row's sum by a constant read from a text file."""
    from pathlib import Path

    import numpy as np

    from modelport.errors import InvalidInputError
    from modelport.runtimes.base import InspectedArtifact
    from modelport.types import Datatype, Signature, TensorSpec

    MAGIC = b"SCALED-SUM\\n"
    SIGNATURE = Signature(
        inputs=[TensorSpec(name="x", datatype=Datatype.FP64, shape=[-1, 3])],
        outputs=[TensorSpec(name="y", datatype=Datatype.FP64, shape=[-1])],
    )


    def factor(path):
        try:
            return float(Path(path).read_bytes()[len(MAGIC):])
        except ValueError:
            raise InvalidInputError("a scaled-sum model holds one number") from None


    class ScaledSum:
        finite_inputs_only = True

        def __init__(self, value):
            self.value, self.signature, self.default_outputs = value, SIGNATURE, ["y"]

        def predict(self, inputs, outputs):
            return {"y": inputs["x"].sum(axis=1) * self.value}

        def unload(self):
            pass


    class ScaledSumRuntime:
        name = "scaled-sum"
        formats = ("scaled-sum",)

        def detect(self, path, head):
            return "scaled-sum" if head.startswith(MAGIC) else None

        def inspect(self, path, fmt, options):
            value = factor(path)
            return InspectedArtifact(
                format=fmt, framework="scaled-sum", framework_version="0.1",
                signature=SIGNATURE, params={"factor": value},
            )

        def load(self, path, fmt, signature, options):
            return ScaledSum(factor(path))


    class BrokenRuntime:
        """A plugin with a bug: its detect raises for every file."""

        name = "broken"
        formats = ("broken",)

        def detect(self, path, head):
            raise RuntimeError("a bug in a plugin")

        def inspect(self, path, fmt, options):
            raise AssertionError

        def load(self, path, fmt, signature, options):
            raise AssertionError
    '''
)


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    (site / "scaled_sum_runtime.py").write_text(PLUGIN)
    info = site / "scaled_sum_runtime-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: scaled-sum-runtime\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(
        "[modelport.runtimes]\nscaled-sum = scaled_sum_runtime:ScaledSumRuntime\n"
        "broken = scaled_sum_runtime:BrokenRuntime\n"
    )
    return site


def test_an_entry_point_runtime_serves_its_format(plugin_site: Path, tmp_path: Path) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"SCALED-SUM\n2.5")
    env = {"PYTHONPATH": str(plugin_site)}
    with start_server(tmp_path / "data", "--no-demo", admin_key=ADMIN_KEY, env=env) as server:
        with server.http(ADMIN_KEY) as admin:
            pushed = upload(admin, "scaled", model)
            assert pushed.status_code == 201, pushed.text
            assert pushed.json()["framework"] == "scaled-sum"
            assert pushed.json()["format"] == "scaled-sum"
            answer = admin.post("/models/scaled/predict", json={"features": [[1, 2, 3], [0, 0, 4]]})
            assert answer.status_code == 200, answer.text
            assert answer.json()["prediction"] == [15.0, 10.0]
            v2 = admin.post(
                "/v2/models/scaled/infer",
                json={
                    "inputs": [
                        {"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 1, 1]}
                    ]
                },
            )
            assert v2.status_code == 200, v2.text
            assert v2.json()["outputs"][0]["data"] == [7.5]
            bad = tmp_path / "bad.bin"
            bad.write_bytes(b"SCALED-SUM\nnot a number")
            refused = upload(admin, "scaled", bad)
            assert refused.status_code == 400
            assert "one number" in refused.json()["error"]["message"]
            unknown = tmp_path / "unknown.bin"
            unknown.write_bytes(b"nothing anyone knows")
            listed = upload(admin, "scaled", unknown)  # the broken plugin's detect raised
            assert listed.status_code == 400
            assert "through plugins: scaled-sum" in listed.json()["error"]["message"]
