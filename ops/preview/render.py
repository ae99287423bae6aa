"""Render a `Review` as Markdown (pull-request comment), plain text or JSON.

Risks always come first. The Markdown fits a GitHub comment: when the whole
review is longer than `limit` characters, the summary and the risks are kept and
resource details are dropped from the end, with a line saying how many.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from ops.core import reporting
from ops.preview.model import (ACTIONS, CREATE, DELETE, MASK, READ, REPLACE, SAME, SEVERITIES, UNKNOWN, UPDATE,
                               PropertyChange, ResourceChange, Review, short_type)

JSON_FORMAT = "umami-ops-preview-review"
JSON_VERSION = 1
COMMENT_LIMIT = 65_000  # GitHub rejects comments over 65,536 characters
VALUE_WIDTH = 160
ROWS_PER_RESOURCE = 40
SYMBOL = {CREATE: "+", UPDATE: "~", REPLACE: "+-", DELETE: "-", READ: ">", SAME: " "}
LABEL = {CREATE: "create", UPDATE: "update", REPLACE: "replace", DELETE: "delete", READ: "read", SAME: "same"}


def value_text(value: Any, width: int = VALUE_WIDTH) -> str:
    """A short, one-line rendering of an input value."""
    if value is None:
        return "—"
    if value == UNKNOWN:
        return "(known after apply)"
    if value == MASK:
        return MASK
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= width else text[:width - 1] + "…"


_code = reporting.markdown_code
_cell = reporting.markdown


def inline(text: str) -> str:
    """Risk prose whose `backticked` parts are names: the prose escaped as Markdown, the names as code."""
    parts = text.split("`")
    if len(parts) % 2 == 0 or any(_cell(part) != part for part in parts[1::2]):
        return _cell(text)  # a name holds a backtick or markup: the whole line as escaped prose, no raw HTML
    return "".join(_code(part) if index % 2 else _cell(part) for index, part in enumerate(parts))


def summary_line(review: Review) -> str:
    severities = review.severity_counts()
    counts = review.counts()
    risks = " · ".join(f"{severities[s]} {s}" for s in SEVERITIES)
    actions = " · ".join(f"{counts[a]} to {LABEL[a]}" for a in (CREATE, UPDATE, REPLACE, DELETE))
    return f"Risks: {risks} — Changes: {actions}, {counts[SAME]} unchanged"


@dataclass(frozen=True)
class Row:
    """One line of a resource's property table."""

    path: str
    before: str
    after: str
    note: str = ""


def _property_rows(change: ResourceChange) -> list[Row]:
    rows = []
    if change.action in (UPDATE, REPLACE) and change.old_protect != change.new_protect:
        rows.append(Row("protect", json.dumps(change.old_protect), json.dumps(change.new_protect), "resource option"))
    for prop in change.properties:
        note = "forces replacement" if prop.forces_replacement else ""
        if prop.old == MASK and prop.new == MASK:
            note = ", ".join(filter(None, ["secret value changes", note]))
        rows.append(Row(prop.path, value_text(prop.old) if prop.kind != "add" else "—",
                        value_text(prop.new) if prop.kind != "delete" else "—", note))
    return rows


def visible_changes(review: Review) -> list[ResourceChange]:
    order = {action: index for index, action in enumerate(ACTIONS)}
    shown = [c for c in review.changes if c.action not in (SAME, READ)]
    return sorted(shown, key=lambda c: (order.get(c.action, len(order)), c.urn))


# -- Markdown ------------------------------------------------------------------------

def _md_risks(review: Review) -> list[str]:
    if not review.findings:
        return ["No risks found."]
    lines = ["| Severity | Risk | Resource | Why it matters |", "| --- | --- | --- | --- |"]
    for finding in review.findings:
        lines.append(f"| **{_cell(finding.severity.upper())}** | {inline(finding.title)} | "
                     f"{_code(finding.resource)} ({_cell(short_type(finding.type))}) | {inline(finding.detail)} |")
    return lines


def change_block(change: ResourceChange) -> str:
    lines = [f"**{SYMBOL[change.action]} {LABEL[change.action]}** {_code(change.name)} · "
             f"{_cell(short_type(change.type))}"]
    rows = _property_rows(change)
    if rows:
        lines += ["", "| Property | Before | After |", "| --- | --- | --- |"]
        for row in rows[:ROWS_PER_RESOURCE]:
            note = f" _({row.note})_" if row.note else ""
            lines.append(f"| {_code(row.path)}{note} | {_code(row.before)} | {_code(row.after)} |")
        if len(rows) > ROWS_PER_RESOURCE:
            lines.append(f"| … {len(rows) - ROWS_PER_RESOURCE} more properties | | |")
    return "\n".join(lines) + "\n\n"


def config_line(change: PropertyChange) -> str:
    """One config change as a Markdown list item (no line break)."""
    return f"- {_code(change.path)}: {_code(value_text(change.old))} → {_code(value_text(change.new))}"


def markdown(review: Review, limit: int = COMMENT_LIMIT) -> str:
    """The review as Markdown of at most `limit` characters, summary and risks first."""
    head = [f"### {inline(review.title)}", "", f"**{summary_line(review)}**", ""]
    head += [f"> {_cell(note)}" for note in review.notes] + ([""] if review.notes else [])
    head += ["#### Risks", ""] + _md_risks(review) + [""]
    if review.config_changes:
        head += ["#### Config changes", ""]
        head += [config_line(c) for c in review.config_changes] + [""]
    footer = f"<sub>{_cell(review.source)} · `python -m ops.preview`</sub>\n"
    out = "\n".join(head) + "\n"
    reserve = len(footer) + 200  # room for the "not shown" line
    if len(out) + reserve > limit:  # even the risks do not fit: keep as many rows as fit
        out = _cut_lines(out, limit - reserve) + "\n"
    blocks = [change_block(change) for change in visible_changes(review)]
    body = ["#### Changes\n\n"] if blocks else []
    used = len(out) + len(body[0] if body else "")
    omitted = 0
    for index, block in enumerate(blocks):
        if used + len(block) + reserve > limit:
            omitted = len(blocks) - index
            break
        body.append(block)
        used += len(block)
    if omitted:
        body.append(f"_… {omitted} more changed resources not shown: the comment is limited to "
                    f"{limit:,} characters. Run the same command locally for the full list._\n\n")
    return out + "".join(body) + footer


def _cut_lines(text: str, budget: int) -> str:
    """The first lines of `text` that fit in `budget`, and a line saying how many risks were left out."""
    lines = text.splitlines()
    kept: list[str] = []
    size = 0
    for index, line in enumerate(lines):
        if size + len(line) + 1 > budget:
            left_out = sum(1 for rest in lines[index:] if rest.startswith("| **"))
            kept += ["", f"_… {left_out} more risks cut to fit the comment limit; the job log has them all._"]
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept)


# -- text and JSON ---------------------------------------------------------------------------

def plain_text(review: Review) -> str:
    """Plain text for a terminal or a job log (no length limit); each line escaped with `reporting.text`,
    so a name cannot add or rewrite a line."""
    lines = [review.title.replace("`", ""), summary_line(review), ""]
    lines += [f"note: {note}" for note in review.notes]
    lines.append("RISKS" if review.findings else "RISKS: none")
    for finding in review.findings:
        lines.append(f"  [{finding.severity.upper()}] {finding.title.replace('`', '')} "
                     f"({finding.resource}, {short_type(finding.type)})")
        lines.append(f"      {finding.detail.replace('`', '')}")
    if review.config_changes:
        lines += ["", "CONFIG"]
        lines += [f"  {c.path}: {value_text(c.old)} -> {value_text(c.new)}" for c in review.config_changes]
    visible = visible_changes(review)
    if visible:
        lines += ["", "CHANGES"]
    for change in visible:
        lines.append(f"  {SYMBOL[change.action]:>2} {LABEL[change.action]:<8} {change.name} "
                     f"({short_type(change.type)})")
        for row in _property_rows(change):
            note = f"  ({row.note})" if row.note else ""
            lines.append(f"        {row.path}: {row.before} -> {row.after}{note}")
    return "\n".join(reporting.text(line) for line in lines) + "\n"


def _camel(record: dict[str, Any]) -> dict[str, Any]:
    """snake_case dataclass fields as the camelCase keys used everywhere else in the JSON."""
    def camel(key: str) -> str:
        head, *rest = key.split("_")
        return head + "".join(part.title() for part in rest)
    return {camel(k): v for k, v in record.items()}


def as_json(review: Review) -> str:
    """Machine-readable review: summary, findings, changes (unchanged resources omitted)."""
    document = reporting.envelope(JSON_FORMAT, JSON_VERSION, {
        "title": review.title,
        "source": review.source,
        "summary": {"risks": review.severity_counts(), "changes": review.counts()},
        "findings": [_camel(asdict(f)) for f in review.findings],
        "config": [_camel(asdict(c)) for c in review.config_changes],
        "notes": review.notes,
        "changes": [
            {"urn": c.urn, "type": c.type, "name": c.name, "action": c.action,
             "replaceKeys": c.replace_keys, "oldProtect": c.old_protect, "newProtect": c.new_protect,
             "properties": [_camel(asdict(p)) for p in c.properties]}
            for c in visible_changes(review)
        ],
    })
    return reporting.dumps(document, sort_keys=True, ensure_ascii=False)


def render(review: Review, fmt: str, limit: int = COMMENT_LIMIT) -> str:
    if fmt == "markdown":
        return markdown(review, limit)
    if fmt == "text":
        return plain_text(review)
    return as_json(review)
