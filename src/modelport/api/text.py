"""Limits on free text that reaches the registry: bounded length and no NUL characters
(PostgreSQL text cannot hold them; nothing legitimate needs them)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import StringConstraints

from modelport.errors import InvalidInputError

MAX_TAGS = 100
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 1024


def check_text(value: str, field: str, max_length: int) -> str:
    if "\x00" in value:
        raise InvalidInputError(f"{field} must not contain NUL characters")
    if len(value) > max_length:
        raise InvalidInputError(f"{field} is longer than {max_length} characters")
    return value


def check_tags(tags: dict[str, str], field: str = "tags") -> dict[str, str]:
    if len(tags) > MAX_TAGS:
        raise InvalidInputError(f"{field}: at most {MAX_TAGS} tags")
    for key, value in tags.items():
        check_text(key, f"{field} key", MAX_TAG_KEY)
        check_text(value, f"{field} value of '{key[:32]}'", MAX_TAG_VALUE)
    return tags


def _text_type(max_length: int, min_length: int = 0) -> Any:
    return Annotated[
        str, StringConstraints(min_length=min_length, max_length=max_length, pattern=r"^[^\x00]*$")
    ]


Name = _text_type(128, min_length=1)
Description = _text_type(10_000)
TagKey = _text_type(MAX_TAG_KEY, min_length=1)
TagValue = _text_type(MAX_TAG_VALUE)
