"""`ops.preview comment`: one pull-request comment from the offline plan diff, the real preview and the
policy pack's violations.

    <!-- umami-ops-preview -->     the first line, hidden: the workflow finds the comment by it and edits it
    ### Infrastructure review      and one summary line
    #### Risks                     every risk of both reviews and every policy violation, one table: most
                                   severe first, within a severity destructive changes (delete, replace)
                                   first; a risk both reviews found is one row naming both
    #### <offline plan diff>       its config changes, its changed resources (folded)
    #### <pulumi preview>          its notes (preview errors), its changed resources (folded)

Nothing at all when there is nothing to say: no risk, no violation, no change, no note. The comment
keeps within GitHub's 65,536 characters: what does not fit is cut from the end, so the risks go
last, and one line says how many risks, config changes and changed resources were cut and where
the whole review is. Every name, value and message from outside is escaped (ops/core/reporting.py):
none can add a row, a tag, a link or a second marker.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from ops.core import reporting
from ops.preview.model import (DELETE, REPLACE, PolicyViolation, Review, severity_rank, short_type)
from ops.preview.render import LABEL, change_block, config_line, inline, visible_changes
from ops.preview.summarize import urn_parts

MARKER = "<!-- umami-ops-preview -->"
LIMIT = reporting.COMMENT_LIMIT
MESSAGE_CHARS = 500  # of a policy's message in a table cell
OFFLINE, PREVIEW, POLICY = "offline plan", "pulumi preview", "policy pack"
SOURCES = (OFFLINE, PREVIEW, POLICY)
DESTRUCTIVE = (DELETE, REPLACE)
# What the cut notice counts, in the order it names them.
CUT_UNITS = ("risks", "config changes", "changed resources")
# Room kept free for the cut notice.
NOTICE_ROOM = 400


@dataclass(frozen=True)
class Risk:
    """One row of the risk table."""

    severity: str
    title: str  # prose whose `backticked` parts are names
    resource: str
    type: str
    detail: str
    sources: tuple[str, ...]
    destructive: bool

    def order(self) -> tuple:
        return (severity_rank(self.severity), not self.destructive, SOURCES.index(self.sources[0]),
                self.resource, self.title)


@dataclass
class Inputs:
    """What one comment is made of; any of it may be missing (a fork has no real preview)."""

    plan_diff: Review | None = None
    preview: Review | None = None
    violations: list[PolicyViolation] = field(default_factory=list)


def _violation_risk(violation: PolicyViolation, actions: dict[str, str]) -> Risk:
    type_token, name = urn_parts(violation.urn) if violation.urn else ("", "")  # "": a stack policy
    message = " ".join(violation.message.split())
    if len(message) > MESSAGE_CHARS:
        message = message[:MESSAGE_CHARS - 1] + "…"
    return Risk(severity=violation.severity, title=f"policy `{violation.policy}` ({violation.level})",
                resource=name, type=type_token, detail=message, sources=(POLICY,),
                destructive=actions.get(violation.urn) in DESTRUCTIVE)


def risks(inputs: Inputs) -> list[Risk]:
    """Every risk and violation once, in the order a reviewer reads them."""
    merged: dict[tuple, Risk] = {}
    for source, review in ((OFFLINE, inputs.plan_diff), (PREVIEW, inputs.preview)):
        if review is None:
            continue
        actions = {change.urn: change.action for change in review.changes}
        for finding in review.findings:
            key = (finding.severity, finding.rule, finding.urn, finding.title)
            destructive = actions.get(finding.urn) in DESTRUCTIVE
            if key in merged:
                known = merged[key]
                merged[key] = replace(known, sources=known.sources + (source,),
                                      destructive=known.destructive or destructive)
            else:
                merged[key] = Risk(finding.severity, finding.title, finding.resource, finding.type, finding.detail,
                                   (source,), destructive)
    actions = {change.urn: change.action for change in inputs.preview.changes} if inputs.preview else {}
    found = list(merged.values()) + [_violation_risk(v, actions) for v in inputs.violations]
    return sorted(found, key=Risk.order)


def _reviews(inputs: Inputs) -> list[tuple[str, Review]]:
    return [(source, review) for source, review in ((OFFLINE, inputs.plan_diff), (PREVIEW, inputs.preview))
            if review is not None]


def has_news(inputs: Inputs) -> bool:
    """Whether anything changes or is wrong anywhere: otherwise the comment is empty."""
    return bool(inputs.violations) or any(
        review.findings or review.config_changes or review.notes or visible_changes(review)
        for _, review in _reviews(inputs))


# -- layout ---------------------------------------------------------------------------------------

def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


@dataclass
class Section:
    """A part of the comment: `head` opens it, `units` are kept or cut whole, `tail` closes what head opened."""

    head: str
    units: list[str] = field(default_factory=list)
    tail: str = ""
    counts_as: str = ""  # what its units are called in the cut notice


def _summary(inputs: Inputs, found: list[Risk]) -> str:
    per_severity = Counter(risk.severity for risk in found)
    parts = [" · ".join(f"{per_severity[label]} {label}" for label in reporting.Severity.labels())]
    if inputs.violations:
        parts.append(f"{len(inputs.violations)} from the policy pack")
    text = "Risks: " + ", ".join(parts)
    for source, review in _reviews(inputs):
        counts = Counter(change.action for change in visible_changes(review))
        changes = " · ".join(f"{counts[action]} to {LABEL[action]}" for action in LABEL if counts[action])
        text += f" — {source}: {changes or 'no changes'}"
    return f"**{reporting.markdown(text)}**"


def _resource_cell(risk: Risk) -> str:
    if not risk.resource:
        return "the stack"
    kind = f" ({reporting.markdown(short_type(risk.type))})" if risk.type else ""
    return reporting.markdown_code(risk.resource) + kind


def _risk_section(found: list[Risk]) -> Section:
    if not found:
        return Section("#### Risks\n\nNo risks found.\n\n")
    head = "#### Risks\n\n" + "\n".join(reporting.markdown_table_head(
        ["Severity", "Risk", "Resource", "Why it matters", "Found by"])) + "\n"
    rows = [reporting.markdown_row([
        f"**{reporting.markdown(risk.severity.upper())}**", inline(risk.title),
        _resource_cell(risk),
        inline(risk.detail), reporting.markdown(", ".join(risk.sources))]) + "\n" for risk in found]
    return Section(head, rows, "\n", "risks")


def _review_sections(review: Review) -> list[Section]:
    head = f"#### {inline(review.title)}\n\n"
    head += "".join(f"> {reporting.markdown(note)}\n" for note in review.notes) + ("\n" if review.notes else "")
    sections = [Section(head)]
    if review.config_changes:
        sections.append(Section("Config changes:\n\n", [config_line(c) + "\n" for c in review.config_changes],
                                "\n", "config changes"))
    changes = visible_changes(review)
    if not changes:
        sections.append(Section("No resource changes.\n\n"))
    else:
        destructive = sum(change.action in DESTRUCTIVE for change in changes)
        summary = f"{_count(len(changes), 'changed resource')}, {destructive} replaced or deleted (listed first)"
        sections.append(Section(f"<details><summary>{summary}</summary>\n\n", [change_block(c) for c in changes],
                                "</details>\n\n", "changed resources"))
    return sections


def _fit(sections: list[Section], footer: str, limit: int, artifact: str) -> str:
    """The sections in order while they fit in `limit` with the footer; from the first unit that does
    not, everything after it is cut and counted, and the notice says where the rest is."""
    out: list[str] = []
    used = len(footer) + NOTICE_ROOM
    cut: Counter[str] = Counter()
    cutting = False
    for section in sections:
        if cutting or used + len(section.head) + len(section.tail) > limit:
            cutting = True
            cut[section.counts_as] += len(section.units)
            continue
        out.append(section.head)
        used += len(section.head) + len(section.tail)
        for index, unit in enumerate(section.units):
            if used + len(unit) > limit:
                cut[section.counts_as] += len(section.units) - index
                cutting = True
                break
            out.append(unit)
            used += len(unit)
        out.append(section.tail)
    if cutting:
        counted = ", ".join(f"{cut[what]} {what}" for what in CUT_UNITS if cut[what])
        out.append(f"_… cut to fit a pull-request comment ({limit:,} characters): {counted or 'the rest'}. "
                   f"The whole review is in {artifact}._\n\n")
    return "".join(out) + footer


def render(inputs: Inputs, *, artifact: str = "the workflow run's artifacts", limit: int = LIMIT) -> str:
    """The comment, or "" when there is nothing to say."""
    if not has_news(inputs):
        return ""
    found = risks(inputs)
    sections = [Section(f"{MARKER}\n### Infrastructure review\n\n{_summary(inputs, found)}\n\n"), _risk_section(found)]
    for _, review in _reviews(inputs):
        sections += _review_sections(review)
    sources = [f"{source}: {review.source}" for source, review in _reviews(inputs)]
    sources += [f"{POLICY}: {_count(len(inputs.violations), 'violation')}"] if inputs.violations else []
    footer = f"<sub>{reporting.markdown(' · '.join(sources))} · `python -m ops.preview comment`</sub>\n"
    return _fit(sections, footer, limit, artifact)


def exit_code(inputs: Inputs, fail_on: str) -> int:
    """1 when a risk or violation is at or above `fail_on` (none: never)."""
    if fail_on == "none" or not has_news(inputs):
        return 0
    return 1 if any(reporting.at_or_above(risk.severity, fail_on) for risk in risks(inputs)) else 0
