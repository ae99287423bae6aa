"""The report toolkit every command renders with (verify, metrics, preview).

- `Severity`: the one severity model (info < low < medium < high < critical);
  a check's findings, a preview risk and a `--fail-on` threshold all use it.
- `redact_secrets`: whatever looks like a credential (a URL's password,
  `password=...`, a SCRAM verifier, an AWS secret key, a bearer token) masked,
  before any format sees a value.
- One escaping function per format, applied to every value a report did not
  write itself (names from a catalog, a plan, a client's application_name):
  `text` escapes control and invisible characters, so one finding stays one
  line; `markdown` (and `markdown_code` for inline code) escapes `|`, HTML,
  link and code syntax and backslashes and flattens newlines, so a cell stays a
  cell, `<script>` stays text and `[x](http://y)` is no link; `xml` replaces the
  characters XML 1.0 forbids, so JUnit always parses; `sql_comment` is a `--`
  comment no name can end early.
- `aligned`: columns padded to their widest cell, for the text formats.
- `envelope` / `read_envelope` / `dumps`: every machine-readable output is one
  JSON object that starts with `{"format": ..., "version": ...}`.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from enum import IntEnum
from typing import Any

from ops.core.errors import OpsError


# -- severity ---------------------------------------------------------------------------

class Severity(IntEnum):
    """How bad a finding is; `info` never fails a run."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> "Severity":
        try:
            return cls[text.strip().upper()]
        except (KeyError, AttributeError):
            allowed = ", ".join(s.label for s in cls)
            raise ValueError(f"severity {text!r} is not one of {allowed}") from None

    @classmethod
    def labels(cls, most_severe_first: bool = True) -> tuple[str, ...]:
        order = sorted(cls, reverse=most_severe_first)
        return tuple(s.label for s in order)


def at_or_above(severity: str | Severity, threshold: str | Severity) -> bool:
    """Whether `severity` reaches `threshold` (labels or members; an unknown label never does)."""
    try:
        found = severity if isinstance(severity, Severity) else Severity.parse(severity)
    except ValueError:
        return False
    limit = threshold if isinstance(threshold, Severity) else Severity.parse(threshold)
    return found >= limit


# -- credentials out ---------------------------------------------------------------------

_MASK = "***"
# Key names holding a credential, with any prefix: PGPASSWORD, UMAMI_DB_PASSWORD, aws_secret_access_key, ...
_SECRET_KEYS = r"[A-Za-z0-9_]*?(?:password|passwd|secret_access_key|client_secret|app_secret|api_?key|access_token)"
_QUOTED = r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\""  # backslash-escaped or doubled quotes
_CREDENTIALS = (
    # scheme://user:PASSWORD@host: up to the last `@` of the word, so an unescaped `@` hides nothing.
    (re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)\S*(?=@)"), r"\1" + _MASK),
    # "password": "..." (JSON, a Python dict's repr)
    (re.compile(rf"([\"'](?:{_SECRET_KEYS})[\"']\s*:\s*)(?:{_QUOTED})", re.IGNORECASE), rf'\1"{_MASK}"'),
    # password=..., PGPASSWORD=... (a DSN, an environment, a query string)
    (re.compile(rf"(?<![A-Za-z0-9_])((?:{_SECRET_KEYS})\s*=\s*)(?:{_QUOTED}|\S+)", re.IGNORECASE), r"\1" + _MASK),
    (re.compile(r"(SCRAM-SHA-256\$)[A-Za-z0-9+/=:$]+"), r"\1" + _MASK),
    (re.compile(r"(?<![A-Za-z0-9])md5[0-9a-f]{32}(?![A-Za-z0-9])"), "md5" + _MASK),
    # 40 characters of base64 with upper case, lower case and a digit: how an AWS secret key looks.
    (re.compile(r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]{0,39}[A-Z])(?=[A-Za-z0-9/+]{0,39}[a-z])"
                r"(?=[A-Za-z0-9/+]{0,39}[0-9])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"), _MASK),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]{16,}=*"), r"\1" + _MASK),
)


def redact_secrets(value: Any) -> Any:
    """`value` with everything that looks like a credential replaced by `***` (non-strings as they are).

    Applied to what a report shows from outside (evidence, subjects, reasons, notes) before
    any renderer sees it: a check that quotes a mis-encoded URL or an error message cannot
    pass a password on. Over-masking a name that merely looks like a key is the accepted cost.
    """
    if not isinstance(value, str):
        return value
    for pattern, replacement in _CREDENTIALS:
        value = pattern.sub(replacement, value)
    return value


# -- escaping: one function per format ---------------------------------------------------

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Categories that move the cursor, end a line or hide themselves: Cc (C0, DEL, C1),
# Cf (zero-width, bidi overrides), Zl/Zp (U+2028, U+2029), Cs (lone surrogates).
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _escaped(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def text(value: Any) -> str:
    """`value` for a terminal or a log: every control or invisible character shown as an escape.

    The result never holds a line break, an ANSI escape or a bidi override, so a
    name cannot forge a report line or hide part of one.
    """
    value = str(value)
    if value.isprintable() and value.isascii():
        return value
    return "".join(_escaped(c) if unicodedata.category(c) in _HIDDEN else c for c in value)


_LINE_BREAKS = re.compile(r"\r\n|[\r\n\u2028\u2029\x0b\x0c\x85]")
_MARKDOWN = str.maketrans({"\\": "\\\\", "|": "\\|", "&": "&amp;", "<": "&lt;", ">": "&gt;",
                           "[": "\\[", "]": "\\]", "`": "\\`"})


def markdown(value: Any) -> str:
    """`value` as inert Markdown text that stays inside one table cell or list item.

    Newlines become spaces, `|` and `\\` are escaped, `&`, `<` and `>` become
    entities (so `<script>` or `<details>` is shown, never interpreted), brackets,
    a `(` after one and backticks are escaped (no link, image or code span can
    start), other control characters are escaped as in `text`.
    """
    return text(_LINE_BREAKS.sub(" ", str(value))).translate(_MARKDOWN).replace("\\](", "\\]\\(")


def markdown_code(value: Any) -> str:
    """`value` as inline code safe inside a Markdown table cell.

    Code spans show `<`, `&` and backslashes literally, so only `|` (which would
    end the cell) is escaped; the fence is longer than any run of backticks inside.
    """
    body = text(_LINE_BREAKS.sub(" ", str(value))).replace("|", "\\|")
    runs = [len(run) for run in re.findall(r"`+", body)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if runs else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def sql_comment(value: Any) -> str:
    """`value` as a whole-line SQL comment: `text` escapes every line break, so what follows the
    `--` cannot end the comment and start a statement."""
    return f"-- {text(value)}"


def _xml_allowed(code: int) -> bool:
    return (code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD
            or 0x10000 <= code <= 0x10FFFF)


def xml(value: Any) -> str:
    """`value` with every character XML 1.0 forbids (most C0 controls, lone surrogates,
    U+FFFE/U+FFFF) shown as an escape; the serializer escapes `<`, `&` and quotes."""
    value = str(value)
    if all(_xml_allowed(ord(c)) for c in value):
        return value
    return "".join(c if _xml_allowed(ord(c)) else _escaped(c) for c in value)


# -- aligned text tables -----------------------------------------------------------------

def aligned(rows: Sequence[Sequence[str]], align: str = "", *, widths: Sequence[int] = (),
            indent: str = "  ", gap: str = "  ") -> list[str]:
    """Rows of cells as lines with padded columns.

    `align` holds one letter per column, `l` (default) or `r`; `widths` are
    minimum widths. Every column but the last is padded to its widest cell; the
    last runs free and trailing spaces are dropped. Cells are written as given:
    escape them with `text` first when they come from outside.
    """
    columns = max((len(row) for row in rows), default=0)
    width = [max([len(row[i]) for row in rows if i < len(row)] + [widths[i] if i < len(widths) else 0])
             for i in range(columns - 1)]
    lines = []
    for row in rows:
        cells = [cell.rjust(width[i]) if i < len(align) and align[i] == "r" else cell.ljust(width[i])
                 for i, cell in enumerate(row[:-1])]
        lines.append((indent + gap.join(cells + list(row[-1:]))).rstrip())
    return lines


# -- Markdown tables -------------------------------------------------------------------

COMMENT_LIMIT = 65_536  # the most characters GitHub accepts in a pull-request comment


def markdown_row(cells: Iterable[str]) -> str:
    """One table row of cells already escaped (with `markdown` or `markdown_code`)."""
    return "| " + " | ".join(cells) + " |"


def markdown_table_head(headers: Sequence[str], align: str = "") -> list[str]:
    """The header row and the delimiter row (`r` in `align` right-aligns a column)."""
    marks = ["---:" if i < len(align) and align[i] == "r" else "---" for i in range(len(headers))]
    return [markdown_row(headers), markdown_row(marks)]


# -- JSON envelope ---------------------------------------------------------------------

def envelope(format_name: str, version: int, body: dict[str, Any]) -> dict[str, Any]:
    """A machine-readable document: `format` and `version` first, then `body`."""
    if "format" in body or "version" in body:
        raise ValueError("the body of an envelope cannot set format or version")
    return {"format": format_name, "version": version, **body}


def dumps(document: dict[str, Any], *, sort_keys: bool = False, ensure_ascii: bool = True) -> str:
    """The document as JSON indented by two, with a final newline."""
    return json.dumps(document, indent=2, sort_keys=sort_keys, ensure_ascii=ensure_ascii) + "\n"


def read_envelope(data: Any, format_name: str, versions: Sequence[int], source: str,
                  legacy: dict[str, int] | None = None) -> int:
    """The version of a document read back, checked against the versions this code reads.

    `legacy` maps older spellings of `format` (with no `version` key) to the version
    they are, e.g. {"umami-offline-plan/1": 1}. A wrong document is a one-line OpsError.
    """
    found = data.get("format") if isinstance(data, dict) else type(data).__name__
    if legacy and isinstance(data, dict) and isinstance(found, str) and found in legacy and "version" not in data:
        return legacy[found]
    if not isinstance(data, dict) or found != format_name:
        raise OpsError(f"{source} is not a {format_name} document (format={found!r})")
    version = data.get("version")
    if isinstance(version, bool) or version not in versions:
        raise OpsError(f"{source} is {format_name} version {json.dumps(version)}; this ops package reads "
                       f"version{'s' if len(versions) > 1 else ''} {', '.join(map(str, versions))}")
    return version
