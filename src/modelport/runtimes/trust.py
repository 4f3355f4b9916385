"""The trust rule for models that run code when they load (pickles, custom Python, MLflow
pyfunc): the server must be started with ``--allow-pickle`` and the version must have been
pushed by an admin (which marks it trusted). Anything else is refused with what to do."""

from __future__ import annotations

from modelport.errors import ForbiddenError, InvalidInputError
from modelport.runtimes.plugins import InspectOptions, LoadOptions


def require_trusted_upload(options: InspectOptions, what: str, instead: str = "") -> None:
    """Refuse an upload of ``what`` (e.g. "a custom Python model") unless it can be trusted;
    ``instead`` names a safe alternative, when there is one."""
    alternative = f"; or {instead}" if instead else ""
    if not options.allow_pickle:
        raise InvalidInputError(
            f"this is {what}: loading it runs code, so ModelPort serves it only as a trusted "
            "version: start the server with --allow-pickle and push it with an admin key"
            + alternative
        )
    if not options.uploader_is_admin:
        raise ForbiddenError(
            f"this is {what}: loading it runs code, so only admin keys may push it; ask an "
            "admin to push it" + alternative
        )


def require_trusted_load(options: LoadOptions, what: str) -> None:
    """Refuse to load ``what`` unless the version is trusted and the server allows code."""
    if not (options.trusted and options.allow_pickle):
        raise ForbiddenError(
            f"this version is {what}, which runs code when loaded, and the server does not "
            "allow it (start it with --allow-pickle to serve trusted versions)"
        )
