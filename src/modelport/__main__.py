"""``python -m modelport`` is the ``modelport`` command."""

from modelport.cli.main import app

if __name__ == "__main__":
    app()
