"""A diff as text (a terminal), JSON (machines) or Markdown (an issue or pull-request note)."""

from __future__ import annotations

import math
from typing import Any

from ops.core import reporting
from ops.metrics.diff import SECTIONS, Diff, Row
from ops.metrics.snapshot import describe_source
from ops.metrics.thresholds import FAIL, INFO, NO_DATA, PASS
from ops.metrics.units import format_change, format_value
from ops.core.reporting import aligned, markdown, markdown_row, markdown_table_head, text

FORMATS = ("text", "json", "markdown")
DIFF_FORMAT = "umami-ops-metrics-diff"
DIFF_VERSION = 2
VERDICT_WORDS = {PASS: "PASS", FAIL: "FAIL", INFO: "info", NO_DATA: "NO DATA"}
HEADERS = ("metric", "before", "after", "change", "threshold", "verdict", "note")
ALIGN = "lrrrlll"


def format_interval(seconds: float) -> str:
    """3723 -> '1h 02m 03s'."""
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _cells(row: Row) -> tuple[str, ...]:
    return (row.label, format_value(row.before, row.unit), format_value(row.after, row.unit),
            format_change(row.delta, row.delta_percent, row.unit), row.threshold or "-",
            VERDICT_WORDS[row.verdict], row.note)


def _observer(doc: dict[str, Any]) -> str:
    observer = doc["observer"]
    return f"as {observer['role']} ({observer['kind']}, {observer.get('credentials') or 'unknown source'})"


def summary_line(diff: Diff) -> str:
    """The verdict in one line, naming every broken threshold."""
    checked = [row for row in diff.rows if row.threshold]
    missing = len(diff.checked_without_data)
    if diff.broken:
        names = "; ".join(f"{row.section}: {row.summary}" if row.summary else
                          f"{row.section}: {row.label} {format_change(row.delta, row.delta_percent, row.unit)} "
                          f"({row.threshold})" for row in diff.broken)
        return f"THRESHOLDS BROKEN: {len(diff.broken)} of {len(checked)}: {names}"
    return (f"within thresholds: {diff.count(PASS)} of {len(checked)} checks pass"
            + (f", {missing} without data" if missing else ""))


def _header_lines(diff: Diff) -> list[str]:
    return [
        f"Metrics diff of {describe_source(diff.after)}",
        f"before  {diff.before['takenAt']}  {_observer(diff.before)}  [{diff.before_name}]",
        f"after   {diff.after['takenAt']}  {_observer(diff.after)}  [{diff.after_name}]",
        f"interval {format_interval(diff.interval_seconds)}; thresholds: {diff.thresholds.source}",
    ]


def render_text(diff: Diff) -> str:
    """Aligned columns per section (one width for all), then notes and the result line.

    Names come from the database (roles, application_name): every cell is escaped with `reporting.text`."""
    table = aligned([HEADERS] + [tuple(text(cell) for cell in _cells(row)) for row in diff.rows], ALIGN)
    line_of = dict(zip(map(id, diff.rows), table[1:]))  # rows keep their order and their lines
    out = [text(line) for line in _header_lines(diff)]
    for section in SECTIONS:
        rows = [row for row in diff.rows if row.section == section]
        if not rows:
            continue
        out += ["", section, table[0]]
        out += [line_of[id(row)] for row in rows]
    if diff.notes:
        out += ["", "Notes"] + [f"  - {text(note)}" for note in diff.notes]
    out += ["", f"Result: {text(summary_line(diff))}"]
    return "\n".join(out) + "\n"


_md = markdown


def render_markdown(diff: Diff) -> str:
    """One table per section; verdicts in bold when they matter."""
    out = [f"### Metrics diff of {_md(describe_source(diff.after))}", ""]
    out += [f"- before: `{diff.before['takenAt']}` {_md(_observer(diff.before))}",
            f"- after: `{diff.after['takenAt']}` {_md(_observer(diff.after))}",
            f"- interval: {format_interval(diff.interval_seconds)}; thresholds: {_md(diff.thresholds.source)}", ""]
    for section in SECTIONS:
        rows = [row for row in diff.rows if row.section == section]
        if not rows:
            continue
        out += [f"#### {section}", ""] + markdown_table_head([h.capitalize() for h in HEADERS], ALIGN)
        for row in rows:
            cells = [_md(cell) for cell in _cells(row)]
            if row.verdict in (PASS, FAIL, NO_DATA):
                cells[5] = f"**{cells[5]}**"
            out.append(markdown_row(cells))
        out.append("")
    if diff.notes:
        out += ["#### Notes", ""] + [f"- {_md(note)}" for note in diff.notes] + [""]
    out.append(f"**Result:** {_md(summary_line(diff))}")
    return "\n".join(out) + "\n"


def _finite(value: float | None) -> float | None:
    """A change too large for a double (two values near its limit) has no JSON number: null."""
    return value if value is None or math.isfinite(value) else None


def diff_document(diff: Diff) -> dict[str, Any]:
    """The diff as data: every row with numbers unformatted."""
    def side(doc: dict[str, Any], name: str) -> dict[str, Any]:
        return {"file": name, "takenAt": doc["takenAt"], "observer": doc["observer"],
                "cloudwatch": {"status": doc["cloudwatch"]["status"], "reason": doc["cloudwatch"]["reason"],
                               "window": doc["cloudwatch"]["window"]}}

    return reporting.envelope(DIFF_FORMAT, DIFF_VERSION, {
        "source": diff.after["source"],
        "before": side(diff.before, diff.before_name),
        "after": side(diff.after, diff.after_name),
        "intervalSeconds": diff.interval_seconds,
        "thresholds": {"source": diff.thresholds.source, "limits": diff.thresholds.as_dict()},
        "connections": {"budget": diff.budget.as_dict() if diff.budget else None,
                        "sampling": {"before": diff.before["database"]["connections"]["sampling"],
                                     "after": diff.after["database"]["connections"]["sampling"]}},
        "rows": [{"section": r.section, "key": r.key, "label": r.label, "unit": r.unit, "before": r.before,
                  "after": r.after, "delta": _finite(r.delta), "deltaPercent": _finite(r.delta_percent),
                  "threshold": r.threshold or None, "verdict": r.verdict, "note": r.note or None}
                 for r in diff.rows],
        "notes": list(diff.notes),
        "summary": {"pass": diff.count(PASS), "fail": diff.count(FAIL), "noData": diff.count(NO_DATA),
                    "info": diff.count(INFO), "broken": [row.key for row in diff.broken],
                    "exitCode": diff.exit_code, "line": summary_line(diff)},
    })


def render(diff: Diff, fmt: str) -> str:
    """`diff` in `fmt` (text, json or markdown)."""
    if fmt == "json":
        return reporting.dumps(diff_document(diff))
    if fmt == "markdown":
        return render_markdown(diff)
    return render_text(diff)
