"""``modelport datasets push/list/show/preview``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelport.cli.connection import KeyOption, UrlOption, connect
from modelport.cli.output import clean_errors, console, print_json

datasets_app = typer.Typer(
    help="Upload CSV or Parquet datasets and look at their versions.", no_args_is_help=True
)


@datasets_app.command("push")
@clean_errors
def push(
    path: Annotated[Path, typer.Argument(help="A CSV file with a header row, or a Parquet file.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Dataset name.")],
    description: Annotated[str, typer.Option(help="Version description.")] = "",
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Upload FILE as the next version of dataset NAME."""
    version = connect(url, api_key).push_dataset(path, name, description=description)
    console.print(
        f"pushed dataset [bold]{version.dataset}@{version.version}[/] ({version.format}, "
        f"{version.rows} rows, {len(version.columns)} columns, sha256 {version.sha256[:12]})"
    )


@datasets_app.command("list")
@clean_errors
def list_datasets(url: UrlOption = None, api_key: KeyOption = None) -> None:
    """List datasets with their latest version."""
    from rich.table import Table

    table = Table("dataset", "latest", "updated")
    for dataset in connect(url, api_key).list_datasets():
        table.add_row(
            dataset.name,
            str(dataset.latest_version or "-"),
            dataset.updated_at.isoformat(timespec="seconds"),
        )
    console.print(table)


@datasets_app.command("show")
@clean_errors
def show(name: str, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """Show a dataset and its versions (schema, rows, sha256) as JSON."""
    client = connect(url, api_key)
    dataset = client.get_dataset(name).model_dump(mode="json")
    dataset["versions"] = [v.model_dump(mode="json") for v in client.list_dataset_versions(name)]
    print_json(dataset)


@datasets_app.command("preview")
@clean_errors
def preview(
    name: str,
    version: Annotated[int, typer.Option(help="Version (default: the latest).")] = 0,
    rows: Annotated[int, typer.Option(help="How many rows.")] = 10,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Print the first rows of a dataset version."""
    from rich.table import Table

    client = connect(url, api_key)
    number = version or (client.get_dataset(name).latest_version or 1)
    shown = client.preview_dataset(name, number, rows)
    table = Table(*shown.columns)
    for row in shown.rows:
        table.add_row(*("" if value is None else str(value) for value in row))
    console.print(table)
