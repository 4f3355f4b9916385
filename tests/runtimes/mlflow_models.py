"""MLflow model directories saved with the mlflow package, as users' runs leave them
(``pip_requirements=[]`` only skips MLflow's slow requirement inference)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import make_classification, make_regression

X_CLASSES, Y_CLASSES = make_classification(
    n_samples=200, n_features=4, n_informative=3, n_redundant=0, random_state=0
)
X_VALUES, Y_VALUES = make_regression(n_samples=200, n_features=4, noise=3.0, random_state=0)
COLUMNS = ["a", "b", "c", "d"]

PYFUNC_CODE = """
import mlflow


class Combine(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        frame = model_input
        return frame["a"] * 2 + frame["b"] - frame["c"] * frame["d"]


mlflow.models.set_model(Combine())
"""


def pyfunc_expected(rows: np.ndarray) -> np.ndarray:
    result: np.ndarray = rows[:, 0] * 2 + rows[:, 1] - rows[:, 2] * rows[:, 3]
    return result


def save_all(root: Path) -> dict[str, tuple[Path, Any]]:
    """Every flavor ModelPort serves: name -> (directory, the original model)."""
    with warnings.catch_warnings():  # MLflow warns about its own choices (pickles, hints)
        warnings.simplefilter("ignore")
        return _save_all(root)


def _save_all(root: Path) -> dict[str, tuple[Path, Any]]:
    import lightgbm
    import mlflow
    import pandas as pd
    import torch
    import xgboost
    from mlflow.models import infer_signature
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression, LogisticRegression

    saved: dict[str, tuple[Path, Any]] = {}
    x, y = X_CLASSES, Y_CLASSES
    classifier = LogisticRegression().fit(x, y)
    signature = infer_signature(x, classifier.predict(x))
    mlflow.sklearn.save_model(
        classifier, root / "sklearn", signature=signature, pip_requirements=[]
    )
    saved["sklearn"] = (root / "sklearn", classifier)
    mlflow.sklearn.save_model(
        classifier,
        root / "sklearn-pickle",
        serialization_format="cloudpickle",
        signature=signature,
        pip_requirements=[],
    )
    saved["sklearn-pickle"] = (root / "sklearn-pickle", classifier)

    frame = pd.DataFrame(x, columns=COLUMNS)
    on_frame = LogisticRegression().fit(frame, y)
    mlflow.sklearn.save_model(
        on_frame,
        root / "sklearn-frame",
        signature=infer_signature(frame, on_frame.predict(frame)),
        pip_requirements=[],
    )
    saved["sklearn-frame"] = (root / "sklearn-frame", on_frame)

    boosted = xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(x, y)
    mlflow.xgboost.save_model(
        boosted,
        root / "xgboost",
        signature=infer_signature(x, boosted.predict(x)),
        pip_requirements=[],
    )
    saved["xgboost"] = (root / "xgboost", boosted)

    regressor = lightgbm.LGBMRegressor(n_estimators=15, verbose=-1).fit(X_VALUES, Y_VALUES)
    mlflow.lightgbm.save_model(
        regressor.booster_,
        root / "lightgbm",
        signature=infer_signature(X_VALUES, regressor.predict(X_VALUES)),
        pip_requirements=[],
    )
    saved["lightgbm"] = (root / "lightgbm", regressor)
    lgb_classifier = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(x, y)
    mlflow.lightgbm.save_model(
        lgb_classifier,
        root / "lightgbm-sklearn",
        signature=infer_signature(x, lgb_classifier.predict(x)),
        pip_requirements=[],
    )
    saved["lightgbm-sklearn"] = (root / "lightgbm-sklearn", lgb_classifier)

    linear = LinearRegression().fit(X_VALUES, Y_VALUES)
    graph = to_onnx(linear, X_VALUES[:1].astype(np.float32))
    features = X_VALUES.astype(np.float32)
    mlflow.onnx.save_model(
        graph,
        root / "onnx",
        signature=infer_signature(features, linear.predict(features).astype(np.float32)),
        pip_requirements=[],
    )
    saved["onnx"] = (root / "onnx", linear)

    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    example = X_VALUES[:5].astype(np.float32)
    with torch.no_grad():
        out = network(torch.from_numpy(example)).numpy()
    mlflow.pytorch.save_model(
        network,
        root / "pytorch",
        signature=infer_signature(example, out),
        input_example=example,
        pip_requirements=[],
    )
    saved["pytorch"] = (root / "pytorch", network)

    # In its own process: MLflow runs the model's code as it saves it, and that code's
    # warnings escape any filter set here.
    code = root / "combine.py"
    code.write_text(textwrap.dedent(PYFUNC_CODE))
    frame.to_csv(root / "frame.csv", index=False)
    script = (
        "import mlflow, pandas as pd\n"
        "from mlflow.models import infer_signature\n"
        f"frame = pd.read_csv({str(root / 'frame.csv')!r})\n"
        f"mlflow.pyfunc.save_model({str(root / 'pyfunc')!r}, python_model={str(code)!r}, "
        "signature=infer_signature(frame, frame['a']), pip_requirements=[])\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    saved["pyfunc"] = (root / "pyfunc", None)
    return saved
