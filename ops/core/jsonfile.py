"""Reading the JSON files ops is handed (outputs, plans, previews, snapshots, thresholds)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ops.core.errors import OpsError


def read_json(path: str | Path, what: str) -> Any:
    """The parsed file; a missing, binary or malformed file is a one-line OpsError naming `what`."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise OpsError(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise OpsError(f"{what} {path} is not text (is it a {what}?)") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise OpsError(f"{what} {path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
