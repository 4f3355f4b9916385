"""The classic "deploy a scikit-learn model with Flask" tutorial app, as tutorials write it.

It reads `model.joblib` from the working directory on every request and runs under Flask's
development server: `python flask_tutorial.py HOST PORT`.

With TUTORIAL_LOAD_ONCE=1 it loads the model once at import instead; the benchmark serves that
variant with `gunicorn -w 1`, the usual first fix readers apply.
"""

import os
import sys

import joblib
import numpy as np
from flask import Flask, Response, jsonify, request

app = Flask(__name__)

MODEL_PATH = "model.joblib"
LOADED_ONCE = joblib.load(MODEL_PATH) if os.environ.get("TUTORIAL_LOAD_ONCE") == "1" else None


@app.route("/predict", methods=["POST"])
def predict() -> Response:
    """Answer `{"features": [[...], ...]}` with `{"prediction": [...]}`."""
    data = request.get_json(force=True)
    model = LOADED_ONCE if LOADED_ONCE is not None else joblib.load(MODEL_PATH)
    prediction = model.predict(np.array(data["features"]))
    return jsonify({"prediction": prediction.tolist()})


if __name__ == "__main__":
    app.run(host=sys.argv[1], port=int(sys.argv[2]))
