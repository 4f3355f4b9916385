"""How the CLI prints: rich tables to stdout, one-line errors to stderr."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape

from modelport.errors import ModelPortError

console = Console()
errors = Console(stderr=True, soft_wrap=True)  # one error, one line
P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str, code: int = 1) -> typer.Exit:
    # The message is text, not markup: "pip install 'modelport[torch]'" keeps its brackets.
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)
    return typer.Exit(code)


def clean_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn domain errors into one clear line and a non-zero exit, never a traceback."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ModelPortError as exc:
            raise fail(exc.message) from None
        except OSError as exc:
            raise fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None
        except ValueError as exc:  # e.g. NaN in --data, which JSON cannot carry
            raise fail(str(exc)) from None

    return wrapper


def print_json(value: Any) -> None:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, list):
        value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    console.print_json(json.dumps(value))
