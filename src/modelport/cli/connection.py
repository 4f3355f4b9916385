"""The ``--url`` and ``--api-key`` options shared by the datasets and training commands."""

from __future__ import annotations

from typing import Annotated

import typer

from modelport.client import Client

UrlOption = Annotated[str | None, typer.Option("--url", envvar="MODELPORT_URL", help="Server URL.")]
KeyOption = Annotated[
    str | None,
    typer.Option("--api-key", envvar="MODELPORT_API_KEY", help="API key.", show_default=False),
]


def connect(url: str | None, api_key: str | None) -> Client:
    return Client(url, api_key)
