"""A loaded version may use the cores it is given (the server's usable cores, or a worker
process's share): each runtime passes the count to its framework."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xgboost

from modelport.runtimes.loader import inspect_upload, load_model
from modelport.runtimes.onnx import OnnxModel
from modelport.runtimes.xgboost import XGBoostModel
from tests.models import identity_onnx


def _load(path: Path, threads: int) -> object:
    inspected = inspect_upload(path, allow_pickle=False, uploader_is_admin=True, signature=None)
    return load_model(path, inspected.format, inspected.signature, False, False, None, threads)


def test_onnx_sessions_use_the_given_cores(tmp_path: Path) -> None:
    path = identity_onnx(tmp_path / "identity.onnx")
    for threads in (1, 3):
        model = _load(path, threads)
        assert isinstance(model, OnnxModel)
        assert model.session.get_session_options().intra_op_num_threads == threads


def test_xgboost_boosters_use_the_given_cores(tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((60, 4))
    path = tmp_path / "model.json"
    xgboost.XGBRegressor(n_estimators=3).fit(x, x.sum(axis=1)).save_model(path)
    for threads in (1, 3):
        model = _load(path, threads)
        assert isinstance(model, XGBoostModel)
        config = json.loads(model.booster.save_config())
        assert config["learner"]["generic_param"]["nthread"] == str(threads)
