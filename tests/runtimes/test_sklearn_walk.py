"""skops and the training estimator list walk scikit-learn's packages without importing
torch (installed here by `make test`): a server of scikit-learn models stays ~200 MB lighter."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("torch")  # what the walk would import (installed by `make test`)

PROBE = """
import json, sys
from modelport.runtimes.sklearn_walk import import_skops_io
from modelport.pipelines.estimators import estimator_class
sio = import_skops_io()
forest = estimator_class("RandomForestRegressor", "regression")
after = {
    "torch": "torch" in sys.modules,
    "stand_in_left": "sklearn.externals.array_api_compat.torch" in sys.modules,
    "untrusted": [  # skops still trusts scikit-learn's estimators: its walk found them
        name for name in sio.get_untrusted_types(data=sio.dumps(forest()))
        if name.startswith("sklearn.")
    ],
    "forest": forest.__name__,
}
import sklearn.externals.array_api_compat.torch as real  # still importable for real
after["real_has_torch_api"] = hasattr(real, "asarray")
print(json.dumps(after))
"""


def test_skops_and_the_estimator_list_do_not_import_torch() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    after = json.loads(done.stdout.strip().splitlines()[-1])
    assert after == {
        "torch": False,
        "stand_in_left": False,
        "untrusted": [],
        "forest": "RandomForestRegressor",
        "real_has_torch_api": True,
    }
