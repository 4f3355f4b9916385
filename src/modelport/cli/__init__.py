"""The ``modelport`` command (typer + rich)."""
