"""The verification report in four formats: text, JSON, Markdown and JUnit XML.

Every format says which checks ran as which role, which were skipped or not
applicable and why, and the findings with their evidence and remediation.
Nothing here ever holds a secret: evidence is written by the checks without one.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ops.core import reporting
from ops.verify.checks.base import CheckResult, Severity, Status
from ops.core.reporting import aligned, markdown, markdown_row, markdown_table_head, text, xml

FORMATS = ("text", "json", "markdown", "junit")
JSON_FORMAT = "umami-ops-verify-report"
JSON_VERSION = 1


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


def _severity_label(result: CheckResult) -> str:
    return (result.severity if result.severity is not None else result.check.severity).label


def _evidence_lines(result: CheckResult) -> list[str]:
    if result.findings:
        return [f"[{f.severity.label}] {f.subject}: {f.evidence}" for f in result.findings]
    if result.reason:
        return [result.reason]
    return []


# -- text ---------------------------------------------------------------------------

def render_text(report: Report, fail_on: Severity) -> str:
    """One line per finding: every value is escaped with `reporting.text`, so none can add a line."""
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
            "findings": [{"severity": f.severity.label, "subject": f.subject, "evidence": f.evidence}
                         for f in r.findings],
        } for r in report.results],
    })


def render_json(report: Report, fail_on: Severity) -> str:
    return reporting.dumps(as_dict(report, fail_on))


# -- markdown -----------------------------------------------------------------------

def _markdown_table(results: list[CheckResult]) -> list[str]:
    lines = markdown_table_head(("ID", "Check", "Severity", "Result", "Evidence", "Remediation"))
    for r in results:
        evidence = "<br>".join(markdown(e) for e in _evidence_lines(r)) or "-"
        fix = markdown(r.check.remediation) if r.status == Status.FAIL else ""
        result = f"**{r.status.value}**" if r.status == Status.FAIL else r.status.value
        lines.append(markdown_row((markdown(r.check.id), markdown(r.check.title), _severity_label(r), result,
                                   evidence, fix)))
    return lines


def render_markdown(report: Report, fail_on: Severity) -> str:
    """Findings first (a table), passed and not-run checks folded away: fit for a PR comment."""
    failing = report.failing(fail_on)
    mark = ":x:" if failing else ":white_check_mark:"
    lines = [f"### {mark} ops.verify: {markdown(report.target)}", "", f"**{report.summary(fail_on)}**", ""]
    lines += [f"- ran as {reporting.markdown_code(who)}: {markdown(what)}" for what, who in report.sessions.items()]
    if report.application_roles_origin:
        lines.append(f"- application roles: {', '.join(markdown(r) for r in report.application_roles) or 'none'} "
                     f"({markdown(report.application_roles_origin)})")
    lines += [f"- note: {markdown(n)}" for n in report.notes]
    found = [r for r in report.results if r.status in (Status.FAIL, Status.INFO)]
    passed = [r for r in report.results if r.status == Status.PASS]
    not_run = [r for r in report.results if r.status in (Status.SKIPPED, Status.NOT_APPLICABLE)]
    lines += [""] + (_markdown_table(found) if found else ["No findings."])
    if passed:
        lines += ["", f"<details><summary>{len(passed)} passed</summary>", ""] + _markdown_table(passed) + ["", "</details>"]
    if not_run:
        lines += ["", f"<details><summary>{len(not_run)} skipped or not applicable</summary>", ""]
        lines += [f"- {markdown(r.check.id)} ({r.status.value}): {markdown(r.reason or '')}" for r in not_run]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


# -- junit --------------------------------------------------------------------------

def render_junit(report: Report, fail_on: Severity) -> str:
    """Well-formed whatever the names hold: values pass through `reporting.xml`, evidence one line each."""
    root = ET.Element("testsuites", name="ops.verify")
    by_family: dict[str, list[CheckResult]] = {}
    for r in report.results:
        by_family.setdefault(r.family, []).append(r)
    totals = Counter()
    for family, results in by_family.items():
        failures = sum(1 for r in results if r in report.failing(fail_on))
        skipped = sum(1 for r in results if r.status in (Status.SKIPPED, Status.NOT_APPLICABLE))
        suite = ET.SubElement(root, "testsuite", name=xml(family), tests=str(len(results)),
                              failures=str(failures), errors="0", skipped=str(skipped))
        totals.update(tests=len(results), failures=failures, skipped=skipped)
        for r in results:
            case = ET.SubElement(suite, "testcase", classname=xml(f"ops.verify.{family}"),
                                 name=xml(f"{r.check.id} {r.check.title}"))
            evidence = "\n".join(xml(text(line)) for line in _evidence_lines(r))
            if r.status in (Status.SKIPPED, Status.NOT_APPLICABLE):
                ET.SubElement(case, "skipped", message=xml(f"{r.status.value}: {r.reason or ''}"))
            elif r in report.failing(fail_on):
                failure = ET.SubElement(case, "failure", message=xml(f"{_severity_label(r)}: {r.check.title}"),
                                        type=_severity_label(r))
                failure.text = f"{evidence}\nfix: {xml(r.check.remediation)}"
            if r.ran_as or (evidence and r.status not in (Status.SKIPPED, Status.NOT_APPLICABLE)):
                out = ET.SubElement(case, "system-out")
                out.text = f"ran as: {xml(r.ran_as or '-')}\n{evidence}".strip()
    for key in ("tests", "failures", "skipped"):
        root.set(key, str(totals[key]))
    root.set("errors", "0")
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


RENDERERS = {"text": render_text, "json": render_json, "markdown": render_markdown, "junit": render_junit}


def render(report: Report, fmt: str, fail_on: Severity) -> str:
    return RENDERERS[fmt](report, fail_on)
