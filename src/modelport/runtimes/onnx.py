"""ONNX runtime (onnxruntime); the signature comes from the graph's inputs and outputs.

A single ``.onnx`` file is read from its verified bytes: onnxruntime then refuses any
external data (it has no folder to look in). A model with external data files is pushed as
a folder (or an archive of one) holding one ``.onnx`` file and its data files; it is loaded
from its path in the extracted folder, and onnxruntime refuses external-data locations that
are absolute or escape that folder (extraction never creates links, so nothing inside
points out either)."""

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


ONNX_FOLDER = "onnx-folder"


def _session(path: Path, threads: int = 1, in_folder: bool = False) -> Any:
    """A session for an ``.onnx`` file: from its bytes when it stands alone, from its path
    when it lies in a model folder with its external data (see the module docstring)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    model = str(path) if in_folder else path.read_bytes()
    try:
        return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
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
    """ONNX models, run by onnxruntime: single files, and folders of one ``.onnx`` file
    with its external data files."""

    name = "onnx"
    formats: tuple[str, ...] = (ArtifactFormat.ONNX,)
    folder_formats: tuple[str, ...] = (ONNX_FOLDER,)

    def detect(self, path: Path, head: bytes) -> str | None:
        return ArtifactFormat.ONNX if is_onnx(head) else None

    def detect_folder(self, folder: Path) -> str | None:
        if (folder / "MLmodel").exists():
            return None  # an MLflow model directory: its runtime reads the signature there
        return ONNX_FOLDER if len(list(folder.glob("*.onnx"))) == 1 else None

    def inspect(self, path: Path, fmt: str, options: InspectOptions) -> InspectedArtifact:
        if fmt == ONNX_FOLDER:
            return inspect_artifact(graph_file(path), options.signature, in_folder=True)
        return inspect_artifact(path, options.signature)

    def load(self, path: Path, fmt: str, signature: Signature, options: LoadOptions) -> OnnxModel:
        if fmt == ONNX_FOLDER:
            return OnnxModel(graph_file(path), signature, options.threads, in_folder=True)
        return OnnxModel(path, signature, options.threads)


def graph_file(folder: Path) -> Path:
    """The one ``.onnx`` file at the root of a model folder."""
    found = sorted(folder.glob("*.onnx"))
    if len(found) != 1:
        raise InvalidInputError(
            f"an ONNX model folder holds exactly one .onnx file at its root, not {len(found)}"
        )
    return found[0]


def inspect_artifact(
    path: Path, signature: Signature | None, in_folder: bool = False
) -> InspectedArtifact:
    """Inspect an ``.onnx`` file; ``in_folder``: it lies in an extracted model folder with
    its external data files."""
    import onnxruntime as ort

    session = _session(path, in_folder=in_folder)
    meta = session.get_modelmeta()
    actual = signature_of(session)
    return InspectedArtifact(
        format=ONNX_FOLDER if in_folder else "onnx",
        framework="onnxruntime",
        framework_version=ort.__version__,
        signature=signature_for_upload(signature, actual),
        params={"producer": meta.producer_name, "graph": meta.graph_name},
    )


class OnnxModel:
    """An onnxruntime session; every output of the graph is available."""

    finite_inputs_only = False

    def __init__(
        self, path: Path, signature: Signature, threads: int = 1, in_folder: bool = False
    ) -> None:
        self.session = _session(path, threads, in_folder)
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
