"""ONNX runtime (onnxruntime). The model is read from its verified bytes, so external
data files cannot be pulled in from outside the artifact; the signature comes from the
graph's inputs and outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modelport.errors import InvalidInputError
from modelport.runtimes.base import InspectedArtifact, Tensors
from modelport.runtimes.formats import ArtifactFormat, is_onnx
from modelport.runtimes.plugins import InspectOptions, LoadOptions
from modelport.runtimes.signatures import signature_for_upload
from modelport.types import Datatype, Signature, TensorSpec

_ONNX_TYPES: dict[str, Datatype] = {
    "tensor(bool)": Datatype.BOOL,
    "tensor(uint8)": Datatype.UINT8,
    "tensor(uint16)": Datatype.UINT16,
    "tensor(uint32)": Datatype.UINT32,
    "tensor(uint64)": Datatype.UINT64,
    "tensor(int8)": Datatype.INT8,
    "tensor(int16)": Datatype.INT16,
    "tensor(int32)": Datatype.INT32,
    "tensor(int64)": Datatype.INT64,
    "tensor(float16)": Datatype.FP16,
    "tensor(float)": Datatype.FP32,
    "tensor(double)": Datatype.FP64,
    "tensor(string)": Datatype.BYTES,
}


def _session(path: Path, threads: int = 1) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(
            path.read_bytes(), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise InvalidInputError(f"the ONNX model could not be loaded: {exc}") from None


def _spec(node: Any) -> TensorSpec:
    datatype = _ONNX_TYPES.get(node.type)
    if datatype is None:
        raise InvalidInputError(f"ONNX tensor '{node.name}' has unsupported type {node.type}")
    shape = [dim if isinstance(dim, int) and dim >= 0 else -1 for dim in node.shape]
    return TensorSpec(name=node.name, datatype=datatype, shape=shape)


def signature_of(session: Any) -> Signature:
    return Signature(
        inputs=[_spec(node) for node in session.get_inputs()],
        outputs=[_spec(node) for node in session.get_outputs()],
    )


class OnnxRuntime:
    """ONNX models, run by onnxruntime."""

    name = "onnx"
    formats: tuple[str, ...] = (ArtifactFormat.ONNX,)

    def detect(self, path: Path, head: bytes) -> str | None:
        return ArtifactFormat.ONNX if is_onnx(head) else None

    def inspect(self, path: Path, fmt: str, options: InspectOptions) -> InspectedArtifact:
        return inspect_artifact(path, options.signature)

    def load(self, path: Path, fmt: str, signature: Signature, options: LoadOptions) -> OnnxModel:
        return OnnxModel(path, signature, options.threads)


def inspect_artifact(path: Path, signature: Signature | None) -> InspectedArtifact:
    import onnxruntime as ort

    session = _session(path)
    meta = session.get_modelmeta()
    actual = signature_of(session)
    return InspectedArtifact(
        format="onnx",
        framework="onnxruntime",
        framework_version=ort.__version__,
        signature=signature_for_upload(signature, actual),
        params={"producer": meta.producer_name, "graph": meta.graph_name},
    )


class OnnxModel:
    """An onnxruntime session; every output of the graph is available."""

    finite_inputs_only = False

    def __init__(self, path: Path, signature: Signature, threads: int = 1) -> None:
        self.session = _session(path, threads)
        self.signature = signature
        self.default_outputs = [spec.name for spec in signature.outputs]

    def predict(self, inputs: Tensors, outputs: frozenset[str]) -> Tensors:
        feeds = {name: _feed(array) for name, array in inputs.items()}
        names = [name for name in self.default_outputs if name in outputs]
        try:
            results = self.session.run(names, feeds)
        except Exception as exc:  # onnxruntime raises its own error types for bad feeds
            raise InvalidInputError(f"the ONNX model rejected the input: {exc}") from None
        return {name: np.asarray(value) for name, value in zip(names, results, strict=True)}

    def unload(self) -> None:
        self.session = None


def _feed(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind == "O":  # BYTES: onnxruntime wants str
        return np.asarray(
            [v.decode("utf-8") if isinstance(v, bytes) else v for v in array.ravel()],
            dtype=object,
        ).reshape(array.shape)
    return array
