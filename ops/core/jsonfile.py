"""Reading the JSON files ops is handed (outputs, plans, previews, snapshots, thresholds).

Only what JSON interchanges safely gets through: numbers a double can hold (no
NaN or Infinity, no 400-digit integers) and nesting no deeper than `MAX_DEPTH`,
so no reader meets a value its arithmetic or its recursion cannot take.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ops.core.errors import OpsError

# Far deeper than any document ops reads (a plan's inputs nest about ten levels).
MAX_DEPTH = 100
# Integers of more digits can exceed the largest double (about 1.8e308).
MAX_INTEGER_DIGITS = 308


class _NotInterchangeable(ValueError):
    """A number the JSON text holds that no double can."""


def _integer(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise _NotInterchangeable(f"integer of {len(literal.lstrip('-'))} digits")
    return int(literal)


def _float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _NotInterchangeable(f"number {literal[:20]} out of range")
    return value


def _constant(literal: str) -> Any:
    raise _NotInterchangeable(f"{literal} is not a JSON number")


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether `value` nests objects or arrays more than `limit` levels (without recursing)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def read_json(path: str | Path, what: str) -> Any:
    """The parsed file; a missing, binary or malformed file is a one-line OpsError naming `what`."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise OpsError(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise OpsError(f"{what} {path} is not text (is it a {what}?)") from None
    try:
        data = json.loads(text, parse_int=_integer, parse_float=_float, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise OpsError(f"{what} {path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except _NotInterchangeable as exc:
        raise OpsError(f"{what} {path} is not valid JSON ({exc})") from None
    except RecursionError:
        raise OpsError(f"{what} {path} nests deeper than {MAX_DEPTH} levels") from None
    if _depth_exceeds(data, MAX_DEPTH):
        raise OpsError(f"{what} {path} nests deeper than {MAX_DEPTH} levels")
    return data
