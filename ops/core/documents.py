"""The one reader of the JSON documents ops exchanges, checked against their published schemas.

Every document has a JSON Schema (draft 2020-12) in the top-level `schemas/`
directory, `<format>.v<version>.schema.json`. Reading one is three steps: parse
the file (`jsonfile.read_json`), check its envelope (its `format`, and a `version`
this code reads), validate it against that version's schema. The first problem
is a one-line OpsError naming the file and the field's JSON pointer, e.g.
`before.json: /database/connections/maxConnections: 0 is less than the minimum of 1`.

What a schema cannot say (two snapshots of one database, each URN once in a
plan) the module that owns the document checks after `load`, also in one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, Callable

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match

from ops.core.errors import OpsError
from ops.core.jsonfile import read_json
from ops.core.reporting import read_envelope, text

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
# A value quoted in a message is cut here, and the message too: one line stays readable.
SHOWN_VALUE_CHARS = 60
MESSAGE_CHARS = 300


@dataclass(frozen=True)
class DocumentType:
    """A kind of document: its format name, the versions this code reads, how messages call it.

    `enveloped=False` is for documents ops reads but does not write (`pulumi preview
    --json`): they carry no format or version, and their one version is our schema's.
    `legacy` maps older spellings of `format` (without `version`) to the version they are.
    """

    format: str
    versions: tuple[int, ...]
    what: str
    enveloped: bool = True
    legacy: dict[str, int] = field(default_factory=dict)

    @property
    def latest(self) -> int:
        return max(self.versions)


def schema_path(format_name: str, version: int) -> Path:
    return SCHEMAS_DIR / f"{format_name}.v{version}.schema.json"


@cache
def schema(format_name: str, version: int) -> dict[str, Any]:
    """The published schema of one version of a format."""
    return json.loads(schema_path(format_name, version).read_text())


def _timestamp(value: object) -> bool:
    """RFC 3339 date-times as the readers parse them: a real date and time, with a UTC offset."""
    if not isinstance(value, str):
        return True
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


FORMATS = FormatChecker(formats=())
FORMATS.checks("date-time")(_timestamp)


@cache
def _validator(format_name: str, version: int) -> Draft202012Validator:
    return Draft202012Validator(schema(format_name, version), format_checker=FORMATS)


def _pointer(parts: list[Any]) -> str:
    """The JSON pointer (RFC 6901) of a path ("" for the document itself)."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def _shown(value: Any) -> str:
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= SHOWN_VALUE_CHARS else shown[:SHOWN_VALUE_CHARS - 3] + "..."


def _missing(error: ValidationError) -> tuple[str | None, str]:
    return next(key for key in error.validator_value if key not in error.instance), "required but missing"


def _unexpected(error: ValidationError) -> tuple[str | None, str]:
    known = error.schema.get("properties", {})
    return next(key for key in error.instance if key not in known), "not a field of this document"


# Messages in the document's own terms (JSON values, the pointer of the field itself) where
# jsonschema's would quote Python reprs or point at the parent object. Each gives the key
# of the field below the error's path it is about (None: the path itself) and the message.
_MESSAGES: dict[str, Callable[[ValidationError], tuple[str | None, str]]] = {
    "required": _missing,
    "additionalProperties": _unexpected,
    "enum": lambda e: (None, f"{_shown(e.instance)} is not one of {', '.join(map(json.dumps, e.validator_value))}"),
    "const": lambda e: (None, f"{_shown(e.instance)} is not {json.dumps(e.validator_value)}"),
    "format": lambda e: (None, f"{_shown(e.instance)} is not an RFC 3339 {e.validator_value} with a UTC offset"),
}


def describe(error: ValidationError) -> str:
    """`/path/to/field: what is wrong`, the value quoted as JSON and cut short, in one line."""
    if error.validator in _MESSAGES:
        key, message = _MESSAGES[error.validator](error)
    else:
        key, message = None, error.message
        quoted = repr(error.instance)
        if message.startswith(quoted):  # jsonschema starts most messages with the value's Python repr
            message = _shown(error.instance) + message[len(quoted):]
    if len(message) > MESSAGE_CHARS:
        message = message[:MESSAGE_CHARS - 3] + "..."
    pointer = _pointer([*error.absolute_path, *([] if key is None else [key])])
    return text(f"{pointer}: {message}" if pointer else message)


def first_problem(data: Any, format_name: str, version: int) -> str | None:
    """What is wrong with `data` as `format_name` version `version`, or None when it is valid."""
    error = best_match(_validator(format_name, version).iter_errors(data))
    return describe(error) if error is not None else None


def check(data: Any, kind: DocumentType, source: str) -> int:
    """The version of `data`, a document of `kind`; else a one-line OpsError starting with `source`."""
    if kind.enveloped:
        version = read_envelope(data, kind.format, kind.versions, source, legacy=kind.legacy)
        if data.get("format") != kind.format:  # a legacy spelling: validate the body as its version
            data = {**data, "format": kind.format, "version": version}
    else:
        version = kind.latest
    problem = first_problem(data, kind.format, version)
    if problem:
        raise OpsError(f"{source}: {problem}")
    return version


def load(path: str | Path, kind: DocumentType) -> tuple[dict[str, Any], int]:
    """The document in `path` and its version, checked; every problem is one line naming the file."""
    data = read_json(path, kind.what)
    return data, check(data, kind, str(path))
