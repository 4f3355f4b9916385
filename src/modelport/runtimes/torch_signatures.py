"""Signatures of PyTorch models as V2 tensors.

Datatypes: each torch dtype maps to the V2 datatype with the same values; bfloat16 is
served as FP32 (numpy has no bfloat16: inputs are narrowed to bfloat16 before the model
runs and outputs widened, exactly). Complex and quantized tensors are not served.

Outputs are named from what ``forward`` returns: one tensor is ``output``, a tuple or list
is ``output_0``, ``output_1``..., a dict keeps its keys.
"""

from __future__ import annotations

from typing import Any

from modelport.errors import InvalidInputError
from modelport.types import Datatype, Signature, TensorSpec

_DATATYPES: dict[str, Datatype] = {
    "torch.bool": Datatype.BOOL,
    "torch.uint8": Datatype.UINT8,
    "torch.uint16": Datatype.UINT16,
    "torch.uint32": Datatype.UINT32,
    "torch.uint64": Datatype.UINT64,
    "torch.int8": Datatype.INT8,
    "torch.int16": Datatype.INT16,
    "torch.int32": Datatype.INT32,
    "torch.int64": Datatype.INT64,
    "torch.float16": Datatype.FP16,
    "torch.float32": Datatype.FP32,
    "torch.float64": Datatype.FP64,
    "torch.bfloat16": Datatype.FP32,
}


def datatype_of(dtype: Any, what: str) -> Datatype:
    """The V2 datatype that carries a tensor of torch ``dtype``."""
    found = _DATATYPES.get(str(dtype))
    if found is None:
        raise InvalidInputError(f"{what} has dtype {dtype}, which ModelPort does not serve")
    return found


def torch_dtype_of(datatype: Datatype) -> Any:
    """The torch dtype a V2 input of ``datatype`` becomes."""
    import torch

    if datatype is Datatype.BF16:
        return torch.bfloat16
    for name, candidate in _DATATYPES.items():
        if candidate is datatype and name != "torch.bfloat16":
            return getattr(torch, name.removeprefix("torch."))
    raise InvalidInputError(f"PyTorch models take no {datatype} inputs")


def spec_of(name: str, value: Any, free_first: bool = False) -> TensorSpec:
    """A tensor spec for a tensor (or fake tensor): symbolic dimensions become -1, and so
    does the first one when ``free_first`` (the batch of a synthetic call)."""
    import torch

    if not isinstance(value, torch.Tensor):
        raise InvalidInputError(
            f"'{name}' is a {type(value).__name__}; ModelPort serves models whose inputs "
            "and outputs are tensors"
        )
    shape = [dim if isinstance(dim, int) else -1 for dim in value.shape]
    if free_first and shape:
        shape[0] = -1
    return TensorSpec(name=name, datatype=datatype_of(value.dtype, f"'{name}'"), shape=shape)


def named_outputs(result: Any) -> dict[str, Any]:
    """What ``forward`` returned, by output name."""
    if isinstance(result, dict):
        return {str(key): value for key, value in result.items()}
    if isinstance(result, tuple | list):
        return {f"output_{index}": value for index, value in enumerate(result)}
    return {"output": result}


def exported_signature(program: Any) -> Signature:
    """Inputs and outputs of an ``ExportedProgram``, read from its graph."""
    from torch.export.graph_signature import InputKind, OutputKind

    placeholders = {node.name: node for node in program.graph.nodes if node.op == "placeholder"}
    inputs = []
    for spec in program.graph_signature.input_specs:
        if spec.kind is not InputKind.USER_INPUT:
            continue
        node = placeholders.get(spec.arg.name)
        if node is None or "val" not in node.meta:
            raise InvalidInputError(
                f"the program's input '{spec.arg.name}' is not a tensor; export it with "
                "tensor inputs only"
            )
        inputs.append(spec_of(spec.arg.name, node.meta["val"]))
    in_spec = program.call_spec.in_spec
    if in_spec is not None and in_spec.num_children == 2 and in_spec.child(1).num_leaves:
        raise InvalidInputError(
            "the program was exported with keyword inputs; export it with positional "
            "inputs (torch.export.export(model, (x,)))"
        )
    output_node = next(node for node in program.graph.nodes if node.op == "output")
    values = [
        getattr(arg, "meta", {}).get("val")
        for arg, spec in zip(output_node.args[0], program.graph_signature.output_specs, strict=True)
        if spec.kind is OutputKind.USER_OUTPUT
    ]
    names = _output_names(program.call_spec.out_spec, len(values))
    outputs = [spec_of(name, value) for name, value in zip(names, values, strict=True)]
    return Signature(inputs=inputs, outputs=outputs)


def _output_names(out_spec: Any, count: int) -> list[str]:
    """Output names from the program's output tree, named as :func:`named_outputs` does."""
    if out_spec is None or out_spec.is_leaf():
        names = ["output"]
    elif any(not child.is_leaf() for child in out_spec.children()):
        raise InvalidInputError(
            "the program returns nested containers; return a tensor, a tuple of tensors or "
            "a dict of tensors"
        )
    elif out_spec.type is dict:
        names = [str(key) for key in out_spec.context]
    else:
        names = [f"output_{index}" for index in range(out_spec.num_children)]
    if len(names) != count:
        raise InvalidInputError("the program's outputs do not match its output tree")
    return names
