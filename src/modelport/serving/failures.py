"""What a caller is told when a model's predict raises."""

from __future__ import annotations

from modelport.errors import InvalidInputError, ModelPortError, UnavailableError


def as_domain_error(exc: Exception) -> ModelPortError:
    """Input the model refuses is the caller's to fix (400); anything else is the
    model's failure (503), without leaking its internals."""
    if isinstance(exc, ModelPortError):
        return exc
    if isinstance(exc, ValueError | TypeError | IndexError):
        return InvalidInputError(f"the model rejected the input: {exc}")
    return UnavailableError(f"the model failed while predicting ({type(exc).__name__})")
