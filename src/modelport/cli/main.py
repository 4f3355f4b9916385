"""``modelport``: serve, push and manage models, predict, manage keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from modelport.cli.connection import KeyOption, UrlOption, connect
from modelport.cli.datasets import datasets_app
from modelport.cli.output import clean_errors, console, fail, print_json
from modelport.cli.training import jobs_app
from modelport.cli.training import train as train_command
from modelport.errors import InvalidInputError

app = typer.Typer(
    name="modelport",
    help="ModelPort: trained models as fast, safe network services.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Push, list, show and delete models.", no_args_is_help=True)
alias_app = typer.Typer(
    help="Point aliases (production, staging, ...) at versions.", no_args_is_help=True
)
keys_app = typer.Typer(help="Create, list and revoke API keys (admin).", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(alias_app, name="alias")
app.add_typer(keys_app, name="keys")
app.add_typer(datasets_app, name="datasets")
app.add_typer(jobs_app, name="jobs")
app.command("train")(train_command)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.")] = None,
    grpc_port: Annotated[
        int | None, typer.Option(help="Port of the V2 gRPC service (0: off; default 8081).")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Database and artifacts.")] = None,
    model_memory_limit: Annotated[
        str | None,
        typer.Option(
            help="Memory budget for loaded models, e.g. 4GiB (least recently used "
            "models are unloaded)."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="HTTP server processes sharing the port (default 1)."),
    ] = None,
    model_workers: Annotated[
        int | None,
        typer.Option(
            help="Predict processes per model unless its serving config says (0: predict "
            "in the server process; default: chosen from the model's predict time)."
        ),
    ] = None,
    key_rate_limit: Annotated[
        float | None,
        typer.Option(help="Requests per second per API key unless the key sets its own."),
    ] = None,
    allow_pickle: Annotated[
        bool, typer.Option("--allow-pickle", help="Accept pickle/joblib uploads from admins.")
    ] = False,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Disable keys (loopback addresses only).")
    ] = False,
    no_demo: Annotated[
        bool, typer.Option("--no-demo", help="Do not register the demo model.")
    ] = False,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error.")] = None,
) -> None:
    """Start the server (SQLite and artifacts under the data dir unless configured)."""
    from modelport.server.run import run_server

    overrides: dict[str, Any] = {
        key: value
        for key, value in {
            "host": host,
            "port": port,
            "grpc_port": grpc_port,
            "data_dir": data_dir,
            "model_memory_limit": model_memory_limit,
            "workers": workers,
            "model_workers": model_workers,
            "key_rate_limit": key_rate_limit,
            "log_level": log_level,
        }.items()
        if value is not None
    }
    if allow_pickle:
        overrides["allow_pickle"] = True
    if no_auth:
        overrides["no_auth"] = True
    if no_demo:
        overrides["demo"] = False
    try:
        run_server(overrides)
    except InvalidInputError as exc:
        raise fail(exc.message, code=2) from None


@models_app.command("push")
@clean_errors
def push(
    path: Annotated[
        Path,
        typer.Argument(
            help="Model file (.skops, .onnx, XGBoost .json/.ubj, LightGBM .txt, PyTorch .pt2, "
            "a .zip or .tar.gz of a model folder, or a plugin's) or a model folder (MLflow "
            "model directory, Hugging Face folder, custom Python model): folders are packed "
            "as .tar.gz for the upload.",
            exists=True,
        ),
    ],
    name: Annotated[str, typer.Option("--name", "-n", help="Model name.")],
    alias: Annotated[str | None, typer.Option(help="Alias to point at the new version.")] = None,
    description: Annotated[str, typer.Option(help="Version description.")] = "",
    metrics: Annotated[str | None, typer.Option(help='JSON, e.g. {"r2": 0.9}.')] = None,
    signature: Annotated[
        str | None,
        typer.Option(
            help='JSON signature, e.g. {"inputs": [{"name": "x", "datatype": "FP32", '
            '"shape": [-1, 4]}]}: required for TorchScript and pickled torch models, '
            "checked against the model's own otherwise."
        ),
    ] = None,
    convert: Annotated[
        str | None,
        typer.Option(
            help="'skops': convert a local joblib/pickle file before uploading; 'onnx': "
            "convert a scikit-learn model with skl2onnx, checked against its predictions."
        ),
    ] = None,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Upload a model file or folder as the next version of NAME."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    upload = path
    if path.is_dir() and convert is not None:
        raise fail("--convert takes a model file, not a folder")
    if convert == "skops":
        from modelport.cli.convert import convert_to_skops

        upload = convert_to_skops(path)
    elif convert == "onnx":
        from modelport.cli.convert import convert_to_onnx

        converted = convert_to_onnx(path)
        upload = converted.path
        console.print(
            f"converted to ONNX: agrees with the original on {converted.checked_rows} rows "
            f"(largest difference {converted.max_difference:.2g}); one-row predict "
            f"{converted.speedup:.1f}x faster"
        )
    elif convert is not None:
        raise fail("--convert accepts 'skops' or 'onnx'")
    try:
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
            transient=True,
        ) as progress:
            size = upload.stat().st_size if upload.is_file() else None  # a folder is packed first
            task = progress.add_task(f"uploading {path.name}", total=size)
            version = connect(url, api_key).push(
                upload,
                name,
                alias=alias,
                description=description,
                metrics=_json_option(metrics, "--metrics"),
                signature=_json_option(signature, "--signature"),
                on_progress=lambda n: progress.advance(task, n),
            )
    finally:
        if upload != path:
            upload.unlink(missing_ok=True)
    suffix = f" ({', '.join(version.aliases)})" if version.aliases else ""
    console.print(
        f"pushed [bold]{version.model}@{version.version}[/]{suffix} "
        f"sha256 {version.artifact_sha256[:12]} ({version.format}, {version.artifact_size} bytes)"
    )


def _json_option(raw: str | None, option: str) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise InvalidInputError(f"{option} must be valid JSON") from None


@models_app.command("list")
@clean_errors
def list_models(url: UrlOption = None, api_key: KeyOption = None) -> None:
    """List models with their latest version and aliases."""
    from rich.table import Table

    table = Table("model", "latest", "aliases", "description")
    for model in connect(url, api_key).list_models():
        aliases = ", ".join(f"{a}→{v}" for a, v in sorted(model.aliases.items()))
        latest = str(model.latest_version or "-")
        table.add_row(model.name, latest, aliases, model.description)
    console.print(table)


@models_app.command("show")
@clean_errors
def show(name: str, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """Show a model and its versions as JSON."""
    client = connect(url, api_key)
    model = client.get_model(name).model_dump(mode="json")
    model["versions"] = [v.model_dump(mode="json") for v in client.list_versions(name)]
    print_json(model)


@models_app.command("delete")
@clean_errors
def delete(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Delete a model with all its versions."""
    if not yes and not typer.confirm(f"delete model '{name}' and all its versions?"):
        raise typer.Exit(1)
    connect(url, api_key).delete_model(name)
    console.print(f"deleted {name}")


@alias_app.command("set")
@clean_errors
def alias_set(
    name: str, alias: str, version: int, url: UrlOption = None, api_key: KeyOption = None
) -> None:
    """Point ALIAS of model NAME at VERSION."""
    info = connect(url, api_key).set_alias(name, alias, version)
    console.print(f"{info.model}@{info.alias} → version {info.version}")


@alias_app.command("rm")
@clean_errors
def alias_rm(name: str, alias: str, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """Remove ALIAS from model NAME."""
    connect(url, api_key).remove_alias(name, alias)
    console.print(f"removed {name}@{alias}")


@alias_app.command("history")
@clean_errors
def alias_history(name: str, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """Every move of NAME's aliases."""
    print_json(connect(url, api_key).alias_history(name))


@app.command()
@clean_errors
def predict(
    ref: Annotated[str, typer.Argument(help="name, name@alias or name@VERSION")],
    data: Annotated[str, typer.Option("--data", "-d", help="JSON list of rows.")],
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Predict with a model: prints {"prediction": [...]}."""
    rows = _json_option(data, "--data")
    print_json({"prediction": connect(url, api_key).predict(ref, rows)})


@keys_app.command("create")
@clean_errors
def keys_create(
    role: Annotated[str, typer.Option(help="admin, editor or predict.")],
    name: Annotated[str, typer.Option(help="A label for the key.")] = "key",
    rate_limit: Annotated[
        float | None, typer.Option(help="Requests per second (default: the server's).")
    ] = None,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Create a key; its secret is printed once."""
    if role not in ("admin", "editor", "predict"):
        raise fail("--role must be admin, editor or predict")
    created = connect(url, api_key).create_key(name, role, rate_limit=rate_limit)
    console.print(
        f"created key {created.id} ({created.role.value}); store it now, it is shown once:"
    )
    print(created.key)


@keys_app.command("list")
@clean_errors
def keys_list(url: UrlOption = None, api_key: KeyOption = None) -> None:
    """List keys (prefixes only)."""
    from rich.table import Table

    table = Table("id", "prefix", "name", "role", "created", "revoked")
    for key in connect(url, api_key).list_keys():
        revoked = key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else ""
        table.add_row(
            str(key.id),
            key.prefix,
            key.name,
            key.role.value,
            key.created_at.isoformat(timespec="seconds"),
            revoked,
        )
    console.print(table)


@keys_app.command("revoke")
@clean_errors
def keys_revoke(key_id: int, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """Revoke a key by id."""
    key = connect(url, api_key).revoke_key(key_id)
    console.print(f"revoked key {key.id} ({key.prefix}…)")
