"""The body of ``POST /v1/embeddings``, checked field by field with messages that say what
to send instead (OpenAI's fields: ``model``, ``input``, ``encoding_format``,
``dimensions``, ``user``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelport.errors import InvalidInputError
from modelport.registry.references import Reference, parse_reference

MAX_INPUTS = 2048
"""Texts per request (OpenAI's own limit)."""
MAX_INPUT_CHARS = 50_000
"""Characters per text: far beyond what any embedding model reads (a text is cut to the
model's token limit), small enough that tokenizing it stays cheap."""
MAX_TOTAL_CHARS = 2_000_000
"""Characters per request, all texts together."""
ENCODING_FORMATS = ("float", "base64")


@dataclass(frozen=True)
class EmbeddingRequest:
    model: str
    reference: Reference
    texts: list[str]
    encoding_format: str = "float"
    dimensions: int | None = None


def parse_embedding_request(document: dict[str, Any]) -> EmbeddingRequest:
    model = document.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidInputError(
            "'model' is required: the name of an embedding model in ModelPort (name, "
            "name@alias or name@3)"
        )
    return EmbeddingRequest(
        model=model,
        reference=parse_reference(model),
        texts=_texts(document.get("input")),
        encoding_format=_encoding_format(document.get("encoding_format")),
        dimensions=_dimensions(document.get("dimensions")),
    )


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        texts = [value]
    elif isinstance(value, list):
        if not value:
            raise InvalidInputError("'input' is an empty list; send at least one string")
        if len(value) > MAX_INPUTS:
            raise InvalidInputError(
                f"'input' has {len(value)} items; send at most {MAX_INPUTS} per request"
            )
        texts = value
    elif value is None:
        raise InvalidInputError("'input' is required: a string or a list of strings")
    else:
        raise InvalidInputError(
            f"'input' must be a string or a list of strings, not {_kind(value)}"
        )
    total = 0
    for index, text in enumerate(texts):
        where = "'input'" if isinstance(value, str) else f"'input[{index}]'"
        if not isinstance(text, str):
            if isinstance(text, int | list) and not isinstance(text, bool):
                raise InvalidInputError(
                    "'input' holds token ids; ModelPort embeds text only: send the text as a "
                    "string (or a list of strings)"
                )
            raise InvalidInputError(f"{where} must be a string, not {_kind(text)}")
        if not text:
            raise InvalidInputError(f"{where} is an empty string; send some text to embed")
        if len(text) > MAX_INPUT_CHARS:
            raise InvalidInputError(
                f"{where} has {len(text)} characters; send at most {MAX_INPUT_CHARS} per text "
                "(the model reads only its first few hundred tokens anyway)"
            )
        total += len(text)
    if total > MAX_TOTAL_CHARS:
        raise InvalidInputError(
            f"the texts of this request have {total} characters together; send at most "
            f"{MAX_TOTAL_CHARS} per request (split it into several requests)"
        )
    return texts


def _encoding_format(value: Any) -> str:
    if value is None:
        return "float"
    if value not in ENCODING_FORMATS:
        raise InvalidInputError(
            f"'encoding_format' must be 'float' or 'base64', not {str(value)[:40]!r}"
        )
    return str(value)


def _dimensions(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidInputError("'dimensions' must be a positive integer")
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    names = {int: "a number", float: "a number", dict: "an object", list: "a list"}
    return names.get(type(value), type(value).__name__)
