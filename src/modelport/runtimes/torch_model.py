"""A PyTorch module in memory, predicting on numpy arrays (whatever file it came from)."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelport.errors import InvalidInputError
from modelport.runtimes.base import Tensors, synthetic_inputs
from modelport.runtimes.torch_signatures import named_outputs, spec_of, torch_dtype_of
from modelport.types import Datatype, Signature, TensorSpec


def use_threads(threads: int) -> None:
    """Let torch use ``threads`` cores. The setting is process-wide: every model in one
    process gets the same count from the server (its usable cores, or a worker
    process's share), so the last load does not take cores from another model."""
    import torch

    threads = max(1, threads)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


class TorchModel:
    """Calls ``module(*inputs)`` in the signature's input order, under
    ``torch.inference_mode``; ``input_dtypes`` overrides the torch dtype of an input
    (e.g. bfloat16 weights served through FP32 inputs)."""

    finite_inputs_only = False  # NaN and infinities are ordinary float values to torch

    def __init__(
        self, module: Any, signature: Signature, input_dtypes: dict[str, Any] | None = None
    ) -> None:
        self.module = module
        self.signature = signature
        self.default_outputs = [spec.name for spec in signature.outputs]
        self._dtypes = {
            spec.name: (input_dtypes or {}).get(spec.name) or torch_dtype_of(spec.datatype)
            for spec in signature.inputs
        }

    def predict(self, inputs: Tensors, outputs: frozenset[str]) -> Tensors:
        arguments = [self._tensor(name, inputs[name]) for name in self._dtypes]
        results = named_outputs(call_module(self.module, arguments))
        found: Tensors = {}
        for name in self.default_outputs:
            if name not in outputs:
                continue
            if name not in results:
                raise InvalidInputError(f"the model did not return its output '{name}'")
            found[name] = as_array(results[name])
        return found

    def _tensor(self, name: str, array: np.ndarray) -> Any:
        import torch

        if array.dtype.kind == "O":
            raise InvalidInputError(f"input '{name}' must be numeric for a PyTorch model")
        if not array.flags.writeable:  # torch shares numpy memory and warns when read-only
            array = array.copy()
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        wanted = self._dtypes[name]
        return tensor if tensor.dtype == wanted else tensor.to(wanted)

    def unload(self) -> None:
        self.module = None


def call_module(module: Any, arguments: list[Any]) -> Any:
    """Run ``module`` without autograd; what the model refuses is the caller's input."""
    import torch

    try:
        with torch.inference_mode():
            return module(*arguments)
    except Exception as exc:  # shape guards raise AssertionError, kernels RuntimeError
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise InvalidInputError(f"the PyTorch model rejected the input: {reason}") from None


def as_array(value: Any) -> np.ndarray:
    import torch

    if not isinstance(value, torch.Tensor):
        raise InvalidInputError(f"the model returned a {type(value).__name__}, not a tensor")
    value = value.detach().cpu()
    if value.dtype == torch.bfloat16:
        value = value.float()
    return np.asarray(value.numpy())


def observed_outputs(module: Any, inputs: list[TensorSpec], dtypes: dict[str, Any]) -> Signature:
    """The signature of ``module`` for ``inputs``, its outputs seen in one synthetic call
    (zeros, one row where a dimension is free); an output's first dimension is free when
    every input's is (the batch)."""
    signature = Signature(inputs=inputs, outputs=[])
    model = TorchModel(module, signature, dtypes)
    synthetic = synthetic_inputs(signature)
    arguments = [model._tensor(spec.name, synthetic[spec.name]) for spec in inputs]
    results = named_outputs(call_module(module, arguments))
    batched = all(spec.shape and spec.shape[0] == -1 for spec in inputs)
    outputs = [spec_of(name, value, free_first=batched) for name, value in results.items()]
    return Signature(inputs=inputs, outputs=outputs)


def check_inputs(inputs: list[TensorSpec]) -> None:
    """PyTorch models take numeric tensors."""
    for spec in inputs:
        if spec.datatype is Datatype.BYTES:
            raise InvalidInputError(f"input '{spec.name}' is BYTES; PyTorch models take tensors")
