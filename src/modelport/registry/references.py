"""Model references: ``name``, ``name@alias``, ``name@3`` (canonical) or ``name/versions/3``."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from modelport.errors import InvalidInputError
from modelport.types import NAME_PATTERN

ALIAS_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class Reference:
    """A parsed reference; at most one of ``version`` and ``alias`` is set."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def validate_name(name: str, what: str = "model name") -> str:
    if not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise InvalidInputError(
            f"invalid {what} {name[:64]!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def validate_alias(alias: str) -> str:
    if not ALIAS_PATTERN.fullmatch(alias) or ".." in alias:
        raise InvalidInputError(
            f"invalid alias {alias[:64]!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter (a number would read as a version)"
        )
    return alias


@functools.lru_cache(maxsize=4096)
def parse_version_selector(name: str, selector: str | None) -> Reference:
    """Build a reference from a name and an optional version number or alias."""
    validate_name(name)
    if selector is None or selector == "":
        return Reference(name)
    if selector.isascii() and selector.isdigit():
        version = int(selector)
        if version < 1 or version > 2**31 - 1:
            raise InvalidInputError(f"version {selector} is out of range; versions start at 1")
        return Reference(name, version=version)
    return Reference(name, alias=validate_alias(selector))


@functools.lru_cache(maxsize=4096)
def parse_reference(text: str) -> Reference:
    """Parse ``name``, ``name@alias``, ``name@N`` or ``name/versions/N``."""
    if "/versions/" in text:
        name, _, selector = text.partition("/versions/")
        return parse_version_selector(name, selector)
    name, _, selector = text.partition("@")
    if "@" in text and not selector:
        raise InvalidInputError(f"reference {text[:64]!r} has an empty alias after '@'")
    return parse_version_selector(name, selector or None)
