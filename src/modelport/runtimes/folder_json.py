"""The small JSON files that describe a model folder (``modelport.json``,
``architecture.json``, Hugging Face configs), read with a size limit and clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelport.errors import InvalidInputError


def read_json(path: Path, what: str, max_bytes: int) -> Any:
    """The JSON document in ``path`` (at most ``max_bytes``), or a clear error naming it
    ``what``."""
    try:
        if path.stat().st_size > max_bytes:
            raise InvalidInputError(f"{what} is larger than {max_bytes} bytes")
        return json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as exc:
        raise InvalidInputError(f"{what} is not valid JSON: {exc}") from None
