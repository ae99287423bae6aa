"""The verification report in five formats: text, JSON, Markdown, JUnit XML and a SQL fix script.

Every format says which checks ran as which role, which were skipped or not
applicable and why, and the findings with their evidence, their exact fix when
SQL repairs them, and the check's remediation. Before any format sees a value,
`reporting.redact_secrets` masks whatever looks like a credential; each format
then escapes the values with its own function, so no name can add a line, a tag,
a link, a cell or a statement.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from ops.core import reporting
from ops.core.reporting import COMMENT_LIMIT, aligned, markdown, markdown_row, markdown_table_head, sql_comment, text, xml
from ops.verify import fixes
from ops.verify.checks.base import CheckResult, Finding, FixAs, Severity, Status

FORMATS = ("text", "json", "markdown", "junit", "sql")
JSON_FORMAT = "umami-ops-verify-report"
JSON_VERSION = 1
FIX_AS_LABELS = {FixAs.ADMIN: "the admin", FixAs.ROLE: "the umami role"}


@dataclass
class Report:
    """The outcome of one `ops.verify` run."""

    results: list[CheckResult]
    target: str
    source: str
    sessions: dict[str, str] = field(default_factory=dict)  # what ran -> as whom
    application_roles: list[str] = field(default_factory=list)
    application_roles_origin: str = ""
    notes: list[str] = field(default_factory=list)
    audit_queries: int | None = None
    duration_s: float = 0.0
    admin_role: str = ""  # who runs a fix script's sections (names only, for its headers)
    umami_role: str = ""

    def failing(self, fail_on: Severity) -> list[CheckResult]:
        return [r for r in self.results if r.status == Status.FAIL and r.severity is not None and r.severity >= fail_on]

    def exit_code(self, fail_on: Severity) -> int:
        """0 when nothing at or above `fail_on` was found, 1 otherwise (2 is for runs that could not happen)."""
        return 1 if self.failing(fail_on) else 0

    def counts(self) -> Counter:
        return Counter(r.status.value for r in self.results)

    def summary(self, fail_on: Severity) -> str:
        c = self.counts()
        parts = [f"{c.get(s.value, 0)} {s.value}" for s in Status if c.get(s.value)]
        failing = len(self.failing(fail_on))
        verdict = f"{failing} check(s) at or above {fail_on.label}" if failing else f"nothing at or above {fail_on.label}"
        extra = f"; {self.audit_queries} catalog queries" if self.audit_queries is not None else ""
        return f"{', '.join(parts)}; {verdict}{extra}; {self.duration_s:.2f} s"


def redacted(report: Report) -> Report:
    """A copy of `report` with credentials masked in every value the checks wrote from outside."""
    clean = reporting.redact_secrets
    results = [replace(r, reason=clean(r.reason),
                       findings=[replace(f, subject=clean(f.subject), evidence=clean(f.evidence)) for f in r.findings])
               for r in report.results]
    return replace(report, results=results, target=clean(report.target), source=clean(report.source),
                   notes=[clean(n) for n in report.notes],
                   sessions={clean(what): clean(who) for what, who in report.sessions.items()})


def _severity_label(result: CheckResult) -> str:
    return (result.severity if result.severity is not None else result.check.severity).label


def _fix_line(finding: Finding) -> str:
    return f"sql as {FIX_AS_LABELS[finding.fix_as]}: {' '.join(finding.fix)}"


def _evidence_lines(result: CheckResult) -> list[str]:
    """One line per finding, each followed by its fix when it has one; the reason when none."""
    if result.findings:
        lines = []
        for f in result.findings:
            lines.append(f"[{f.severity.label}] {f.subject}: {f.evidence}")
            if f.fix:
                lines.append(f"  {_fix_line(f)}")
        return lines
    if result.reason:
        return [result.reason]
    return []


# -- text ---------------------------------------------------------------------------

def render_text(report: Report, fail_on: Severity) -> str:
    """One line per finding (and one per fix): every value is escaped with `reporting.text`, so none can
    add a line."""
    lines = [f"ops.verify: {text(report.target)}", f"outputs: {text(report.source)}"]
    lines += [f"ran as: {text(what)}: {text(who)}" for what, who in report.sessions.items()]
    if report.application_roles_origin:
        roles = ", ".join(text(r) for r in report.application_roles) or "none"
        lines.append(f"application roles: {roles} ({text(report.application_roles_origin)})")
    lines += [f"note: {text(n)}" for n in report.notes]
    families: dict[str, list[CheckResult]] = {}
    for result in report.results:
        families.setdefault(result.family, []).append(result)
    for family, results in families.items():
        header = f"as {text(results[0].ran_as)}" if results[0].ran_as else "not run"
        rows = [("ID", "SEVERITY", "RESULT", "CHECK / EVIDENCE")]
        for result in results:
            status = result.status.value.upper() if result.status == Status.FAIL else result.status.value
            rows.append((text(result.check.id), _severity_label(result), status, text(result.check.title)))
            rows += [("", "", "", f"  {text(line)}") for line in _evidence_lines(result)]
            if result.status == Status.FAIL:
                rows.append(("", "", "", f"  fix: {text(result.check.remediation)}"))
        lines += ["", f"{text(family)}  [{header}]"] + aligned(rows, widths=(8, 9, 8), gap=" ")
    lines += ["", f"summary: {report.summary(fail_on)}"]
    return "\n".join(lines) + "\n"


# -- json ---------------------------------------------------------------------------

def as_dict(report: Report, fail_on: Severity) -> dict[str, Any]:
    return reporting.envelope(JSON_FORMAT, JSON_VERSION, {
        "target": report.target,
        "source": report.source,
        "ranAs": report.sessions,
        "applicationRoles": {"roles": report.application_roles, "origin": report.application_roles_origin},
        "notes": report.notes,
        "failOn": fail_on.label,
        "exitCode": report.exit_code(fail_on),
        "summary": dict(report.counts()),
        "auditQueries": report.audit_queries,
        "durationSeconds": round(report.duration_s, 3),
        "checks": [{
            "id": r.check.id,
            "title": r.check.title,
            "family": r.family,
            "severity": _severity_label(r),
            "status": r.status.value,
            "ranAs": r.ran_as,
            "reason": r.reason,
            "remediation": r.check.remediation,
            "durationSeconds": round(r.duration_s, 3),
            "findings": [{"severity": f.severity.label, "subject": f.subject, "evidence": f.evidence,
                          "fix": list(f.fix), "fixAs": f.fix_as.value if f.fix else None}
                         for f in r.findings],
        } for r in report.results],
    })


def render_json(report: Report, fail_on: Severity) -> str:
    return reporting.dumps(as_dict(report, fail_on))


# -- markdown -----------------------------------------------------------------------

MARKDOWN_HEADERS = ("ID", "Check", "Severity", "Result", "Evidence", "Remediation")
CELL_LIMIT = 2_000  # characters of one value in a cell, so one long name cannot eat the comment
FULL_REPORT = "the full report is the JSON (`--format json`) or JUnit (`--format junit`) artefact"


def _clip(value: str) -> str:
    return value if len(value) <= CELL_LIMIT else value[:CELL_LIMIT - 1] + "…"


def _result_cell(result: CheckResult) -> str:
    return f"**{result.status.value}**" if result.status == Status.FAIL else result.status.value


def _finding_rows(report: Report) -> list[str]:
    """One row per finding, the most severe first (report order among equals)."""
    found = [(r, f) for r in report.results if r.status in (Status.FAIL, Status.INFO) for f in r.findings]
    rows = []
    for r, f in sorted(found, key=lambda pair: -pair[1].severity):
        if f.fix:
            remedy = f"as {FIX_AS_LABELS[f.fix_as]}: {markdown(_clip(' '.join(f.fix)))}"
        else:
            remedy = markdown(r.check.remediation) if f.severity > Severity.INFO else ""
        result = _result_cell(r) if f.severity > Severity.INFO else Status.INFO.value
        rows.append(markdown_row((markdown(r.check.id), markdown(r.check.title), f.severity.label, result,
                                  markdown(_clip(f"{f.subject}: {f.evidence}")), remedy)))
    return rows


class _Page:
    """The lines of a Markdown comment, kept within `limit` characters (newlines included)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.lines: list[str] = []
        self.size = 0

    def add(self, *lines: str) -> None:
        self.lines += lines
        self.size += sum(len(line) + 1 for line in lines)

    def fill(self, rows: list[str], reserve: int) -> int:
        """Add `rows` while `reserve` characters stay free; how many were left out."""
        for shown, row in enumerate(rows):
            if self.size + len(row) + 1 > self.limit - reserve:
                return len(rows) - shown
            self.add(row)
        return 0

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render_markdown(report: Report, fail_on: Severity, limit: int = COMMENT_LIMIT) -> str:
    """Fit for a pull-request comment: at most `limit` characters whatever the number of findings.

    Findings come first, one row each, the most severe first; passed and not-run checks are
    folded away and are the first to be cut. What does not fit is counted, with a pointer
    to the full report.
    """
    reserve = 1_000  # room for what closes the comment: the count of what was left out
    failing = report.failing(fail_on)
    mark = ":x:" if failing else ":white_check_mark:"
    page = _Page(limit)
    page.add(f"### {mark} ops.verify: {markdown(_clip(report.target))}", "", f"**{report.summary(fail_on)}**", "")
    about = [f"- ran as {markdown(who)}: {markdown(what)}" for what, who in report.sessions.items()]
    if report.application_roles_origin:
        about.append(f"- application roles: {', '.join(markdown(r) for r in report.application_roles) or 'none'} "
                     f"({markdown(report.application_roles_origin)})")
    about += [f"- note: {markdown(_clip(n))}" for n in report.notes]
    if left := page.fill(about, reserve=limit // 2):
        page.add(f"- … {left} more line(s) about the run: {FULL_REPORT}")

    rows = _finding_rows(report)
    passed = [r for r in report.results if r.status == Status.PASS]
    not_run = [r for r in report.results if r.status in (Status.SKIPPED, Status.NOT_APPLICABLE)]
    page.add("")
    if not rows:
        page.add("No findings.")
    else:
        page.add(*markdown_table_head(MARKDOWN_HEADERS))
        if left := page.fill(rows, reserve):
            page.add("", f"**{left} of {len(rows)} findings not shown** (a pull-request comment holds at most "
                         f"{limit:,} characters); {len(passed)} passed and {len(not_run)} skipped or not applicable "
                         f"check(s) left out too: {FULL_REPORT}.")
            return page.text()
    if passed:
        page.add("", f"<details><summary>{len(passed)} passed</summary>", "", *markdown_table_head(MARKDOWN_HEADERS))
        left = page.fill([markdown_row((markdown(r.check.id), markdown(r.check.title), _severity_label(r),
                                        _result_cell(r), "-", "")) for r in passed], reserve)
        page.add(*(["", f"… {left} more passed: {FULL_REPORT}"] if left else []), "", "</details>")
    if not_run:
        page.add("", f"<details><summary>{len(not_run)} skipped or not applicable</summary>", "")
        left = page.fill([f"- {markdown(r.check.id)} ({r.status.value}): {markdown(_clip(r.reason or ''))}"
                          for r in not_run], reserve)
        page.add(*([f"- … {left} more: {FULL_REPORT}"] if left else []), "", "</details>")
    return page.text()


# -- junit --------------------------------------------------------------------------

def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _line(value: Any) -> str:
    """One line of XML text: control and invisible characters escaped (`text`), then made XML-safe."""
    return xml(text(value))


def render_junit(report: Report, fail_on: Severity) -> str:
    """Well-formed whatever the names hold: every value is one escaped line (`_line`), evidence one line each.
    Each testcase's `time` is its share of its family's run; suites and the root carry the totals."""
    root = ET.Element("testsuites", name="ops.verify")
    by_family: dict[str, list[CheckResult]] = {}
    for r in report.results:
        by_family.setdefault(r.family, []).append(r)
    failing = report.failing(fail_on)
    totals: Counter = Counter()
    for family, results in by_family.items():
        failures = sum(1 for r in results if r in failing)
        skipped = sum(1 for r in results if r.status in (Status.SKIPPED, Status.NOT_APPLICABLE))
        seconds = sum(r.duration_s for r in results)
        suite = ET.SubElement(root, "testsuite", name=_line(family), tests=str(len(results)),
                              failures=str(failures), errors="0", skipped=str(skipped), time=_seconds(seconds))
        totals.update(tests=len(results), failures=failures, skipped=skipped, time=seconds)
        for r in results:
            case = ET.SubElement(suite, "testcase", classname=_line(f"ops.verify.{family}"),
                                 name=_line(f"{r.check.id} {r.check.title}"), time=_seconds(r.duration_s))
            evidence = "\n".join(_line(line) for line in _evidence_lines(r))
            if r.status in (Status.SKIPPED, Status.NOT_APPLICABLE):
                ET.SubElement(case, "skipped", message=_line(f"{r.status.value}: {r.reason or ''}"))
            elif r in failing:
                failure = ET.SubElement(case, "failure", message=_line(f"{_severity_label(r)}: {r.check.title}"),
                                        type=_severity_label(r))
                failure.text = f"{evidence}\nfix: {_line(r.check.remediation)}"
            if r.ran_as or (evidence and r.status not in (Status.SKIPPED, Status.NOT_APPLICABLE)):
                out = ET.SubElement(case, "system-out")
                out.text = f"ran as: {_line(r.ran_as or '-')}\n{evidence}".strip()
    for key in ("tests", "failures", "skipped"):
        root.set(key, str(totals[key]))
    root.set("errors", "0")
    root.set("time", _seconds(totals["time"]))
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


# -- sql ----------------------------------------------------------------------------

def _repairable(report: Report) -> list[tuple[CheckResult, Finding]]:
    """The findings a fix script is about: every one of a failed check but the informational."""
    return [(r, f) for r in report.results if r.status == Status.FAIL for f in r.findings if f.severity > Severity.INFO]


def render_sql(report: Report, fail_on: Severity) -> str:
    """A fix script: the admin's section, then the umami role's, each one transaction; statements in a
    safe order, each fix once, each preceded by a comment naming its check and subject; then the
    findings SQL cannot fix. Names are escaped in comments and quoted on one line in statements, so
    every line is a comment, BEGIN/COMMIT or a whole statement."""
    entries = _repairable(report)
    with_sql = sum(1 for _, f in entries if f.fix)
    lines = [
        "-- ops.verify fix script",
        sql_comment(f"target: {report.target}"),
        sql_comment(f"written: {datetime.now(timezone.utc).isoformat(timespec='seconds')}"),
        sql_comment(f"findings: {len(entries)} ({with_sql} with SQL, {len(entries) - with_sql} without); "
                    f"{report.summary(fail_on)}"),
        "-- run the admin's section first, then the umami role's, each logged in as the role it names;",
        "-- a statement that fails rolls its whole section back",
    ]
    sections = ((FixAs.ADMIN, f"run as the admin ({report.admin_role or 'the admin role'})"),
                (FixAs.ROLE, f"run as the umami role ({report.umami_role or 'the umami role'})"))
    for fix_as, title in sections:
        steps = fixes.script_steps(((r.check.id, f) for r, f in entries), fix_as)
        lines += ["", sql_comment(title)]
        if not steps:
            lines.append("-- nothing to run")
            continue
        lines.append("BEGIN;")
        for step in steps:
            lines += [sql_comment(f"{step.check_id} {step.subject}"), *step.statements]
        lines.append("COMMIT;")
    # Live probes only observe: the catalog findings' statements above remove their causes.
    seen_live = [(r, f) for r, f in entries if not f.fix and r.family == "probes"]
    unfixable = [(r, f) for r, f in entries if not f.fix and r.family != "probes"]
    for label, group in (("seen live, repaired by the statements above (verify again)", seen_live),
                         ("not fixable by SQL", unfixable)):
        if group:
            lines.append("")
            lines += [sql_comment(f"{label}: {r.check.id} {f.subject}: {f.evidence}; {r.check.remediation}")
                      for r, f in group]
    return "\n".join(lines) + "\n"


RENDERERS = {"text": render_text, "json": render_json, "markdown": render_markdown, "junit": render_junit,
             "sql": render_sql}


def render(report: Report, fmt: str, fail_on: Severity) -> str:
    return RENDERERS[fmt](redacted(report), fail_on)
