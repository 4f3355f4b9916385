"""A signature given with an upload must describe the model as it really is: the same
inputs (a single input may be renamed; a free dimension may not become fixed and fixed
widths must match) and only outputs the model produces. Datatypes may be refined, e.g.
a DataFrame column declared BYTES."""

from __future__ import annotations

from modelport.errors import InvalidInputError
from modelport.types import Signature, TensorSpec


def _shape_fits(given: TensorSpec, actual: TensorSpec) -> bool:
    if len(given.shape) != len(actual.shape):
        return False
    return all(a in (-1, g) for g, a in zip(given.shape, actual.shape, strict=True))


def signature_for_upload(given: Signature | None, actual: Signature) -> Signature:
    """An upload's signature: the model's own, or the one given with it once checked."""
    return check_given_signature(given, actual) if given is not None else actual


def check_given_signature(given: Signature, actual: Signature) -> Signature:
    """Return ``given`` if it fits the model's ``actual`` signature, else say why not."""
    if not given.inputs or not given.outputs:
        raise InvalidInputError("a signature needs at least one input and one output")
    if len(given.inputs) != len(actual.inputs):
        raise InvalidInputError(
            f"the signature has {len(given.inputs)} inputs but the model takes "
            f"{len(actual.inputs)}: {', '.join(spec.name for spec in actual.inputs)}"
        )
    renamable = len(actual.inputs) == 1
    for spec, real in zip(given.inputs, actual.inputs, strict=True):
        if spec.name != real.name and not renamable:
            raise InvalidInputError(
                f"signature input '{spec.name}' is not an input of the model (expected "
                f"'{real.name}')"
            )
        if not _shape_fits(spec, real):
            raise InvalidInputError(
                f"signature input '{spec.name}' has shape {spec.shape} but the model takes "
                f"{real.shape}"
            )
    produced = {spec.name for spec in actual.outputs}
    for spec in given.outputs:
        if spec.name not in produced:
            raise InvalidInputError(
                f"the signature names output '{spec.name}', which the model does not "
                f"produce (it has {', '.join(sorted(produced))})"
            )
    return given
