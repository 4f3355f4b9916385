"""OpenAI-compatible endpoints under ``/v1`` for language and embedding models: the
``Authorization: Bearer`` key is a ModelPort API key, ``model`` is a ModelPort reference
(``name``, ``name@alias``, ``name@3``) and errors are OpenAI's error object (see
``api/errors.py``)."""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    """Every ``/v1`` router."""
    from modelport.api.openai import completions, embeddings, models

    return [models.router, embeddings.router, completions.router]
