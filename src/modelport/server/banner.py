"""What ``modelport serve`` prints once it is ready."""

from __future__ import annotations

import shlex

from modelport.config import Settings
from modelport.server.bootstrap import BootstrapResult
from modelport.server.demo import N_FEATURES, train_demo_model


def _example_row() -> str:
    row = train_demo_model().x_test[0][:N_FEATURES]
    return ", ".join(f"{value:.3f}" for value in row)


def print_banner(settings: Settings, result: BootstrapResult) -> None:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{host}:{settings.port}"
    lines = [f"ModelPort is serving on {url} (data dir: {settings.data_dir})"]
    if settings.grpc_port:
        lines.append(f"V2 gRPC on {host}:{settings.grpc_port}")
    if settings.no_auth:
        key_expr = None
        lines.append("Authentication is OFF (--no-auth, loopback only).")
    elif result.new_admin_key is not None:
        key_expr = result.new_admin_key
        lines.append(f"Admin API key (shown once; also saved to {result.admin_key_file}):")
        lines.append(f"  {result.new_admin_key}")
    elif settings.admin_key is not None:
        key_expr = "$MODELPORT_ADMIN_KEY"
        lines.append("Admin API key: the value of MODELPORT_ADMIN_KEY")
    elif result.admin_key_file is not None:
        key_expr = f"$(cat {shlex.quote(str(result.admin_key_file))})"
        lines.append(f"Admin API key: in {result.admin_key_file}")
    else:
        key_expr = "$KEY"
    if settings.default_model:
        auth = f' -H "Authorization: Bearer {key_expr}"' if key_expr else ""
        body = '{"features": [[' + _example_row() + "]]}"
        lines.append(f"Try the default model ({settings.default_model}):")
        lines.append(f"  curl -s -X POST {url}/predict{auth} -d '{body}'")
    lines.append(f"API docs: {url}/docs (send the key as a Bearer token)")
    print("\n".join(lines), flush=True)
