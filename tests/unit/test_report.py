"""The report formats, parsed back: JSON loads, JUnit XML parses, Markdown has the table."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from ops.verify.checks import ALL_CHECKS
from ops.verify.checks.base import CheckResult, Finding, Severity, Status, result_from_findings
from ops.verify.report import Report, render


def result(check_id: str, *findings: Finding, status: Status | None = None, reason: str | None = None) -> CheckResult:
    family, check = ALL_CHECKS[check_id]
    if status is not None:
        return CheckResult(check, family.name, status, reason=reason)
    return result_from_findings(check, family.name, list(findings), "postgres (admin/auditor)")


@pytest.fixture
def report() -> Report:
    return Report(
        results=[
            result("ISO-001"),
            result("ISO-020", Finding(Severity.CRITICAL, "table public.settings", "SELECT for umami_user via PUBLIC"),
                   Finding(Severity.MEDIUM, "table app.a|b", "INSERT for umami_user (latent)")),
            result("ISO-027", Finding(Severity.INFO, "database appdb", "TEMPORARY for PUBLIC (default)")),
            result("ISO-025", Finding(Severity.LOW, "schema app", "USAGE for umami_user")),
            result("DEP-001", status=Status.NOT_APPLICABLE, reason="rehearsal: nothing is deployed on AWS"),
            result("PRB-003", status=Status.SKIPPED, reason="not selected (--only/--skip)"),
        ],
        target="role umami_user, schema umami in appdb at db:5432",
        source="outputs.json",
        sessions={"roles, privileges": "postgres (admin/auditor)"},
        application_roles=["app_user"],
        application_roles_origin="from the outputs' applicationRoles",
        audit_queries=5,
    )


def test_statuses_follow_the_worst_finding(report):
    by_id = {r.check.id: r for r in report.results}
    assert by_id["ISO-001"].status == Status.PASS and by_id["ISO-001"].severity is None
    assert by_id["ISO-020"].status == Status.FAIL and by_id["ISO-020"].severity == Severity.CRITICAL
    assert by_id["ISO-020"].findings[0].severity == Severity.CRITICAL  # worst first
    assert by_id["ISO-027"].status == Status.INFO and by_id["ISO-027"].severity == Severity.INFO


@pytest.mark.parametrize("fail_on, code, failing", [
    (Severity.CRITICAL, 1, {"ISO-020"}), (Severity.HIGH, 1, {"ISO-020"}),
    (Severity.MEDIUM, 1, {"ISO-020"}), (Severity.LOW, 1, {"ISO-020", "ISO-025"}),
])
def test_exit_code_by_threshold(report, fail_on, code, failing):
    assert report.exit_code(fail_on) == code
    assert {r.check.id for r in report.failing(fail_on)} == failing


def test_only_informational_findings_exit_0(report):
    report.results = [r for r in report.results if r.check.id in ("ISO-001", "ISO-027")]
    assert report.exit_code(Severity.LOW) == 0


def test_json_parses_back(report):
    data = json.loads(render(report, "json", Severity.HIGH))
    checks = {c["id"]: c for c in data["checks"]}
    assert data["exitCode"] == 1 and data["failOn"] == "high" and data["auditQueries"] == 5
    assert data["summary"] == {"pass": 1, "fail": 2, "info": 1, "n/a": 1, "skipped": 1}
    assert checks["ISO-020"]["severity"] == "critical" and len(checks["ISO-020"]["findings"]) == 2
    assert checks["ISO-027"]["severity"] == "info"
    assert checks["DEP-001"] == {**checks["DEP-001"], "status": "n/a", "reason": "rehearsal: nothing is deployed on AWS"}
    assert checks["ISO-020"]["ranAs"] == "postgres (admin/auditor)"
    assert data["ranAs"] == {"roles, privileges": "postgres (admin/auditor)"}


def test_junit_parses_back(report):
    root = ET.fromstring(render(report, "junit", Severity.HIGH))
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("6", "1", "2")
    cases = {c.get("name").split()[0]: c for c in root.iter("testcase")}
    failure = cases["ISO-020"].find("failure")
    assert failure.get("type") == "critical" and "table public.settings" in failure.text and "fix: REVOKE" in failure.text
    assert cases["ISO-025"].find("failure") is None  # low: below the threshold, reported in system-out
    assert "USAGE for umami_user" in cases["ISO-025"].find("system-out").text
    assert cases["DEP-001"].find("skipped").get("message") == "n/a: rehearsal: nothing is deployed on AWS"
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert suites["privileges"].get("failures") == "1"


def test_markdown_has_the_findings_table(report):
    text = render(report, "markdown", Severity.HIGH)
    lines = text.splitlines()
    header = lines.index("| ID | Check | Severity | Result | Evidence | Remediation |")
    rows = [line for line in lines[header + 2:] if line.startswith("|")]
    assert [row.split("|")[1].strip() for row in rows][:3] == ["ISO-020", "ISO-027", "ISO-025"]
    assert "table app.a\\|b" in rows[0]  # pipes in evidence are escaped, the table keeps its columns
    assert rows[0].count(" | ") == 5
    assert text.startswith("### :x: ops.verify")
    assert "<summary>1 passed</summary>" in text and "- DEP-001 (n/a): rehearsal" in text


def test_text_groups_by_family_and_says_why(report):
    text = render(report, "text", Severity.HIGH)
    assert "ran as: roles, privileges: postgres (admin/auditor)" in text
    assert "privileges  [as postgres (admin/auditor)]" in text
    assert "fix: REVOKE ALL ON <object> FROM <grantee>;" in text
    assert "rehearsal: nothing is deployed on AWS" in text
    assert text.rstrip().splitlines()[-1].startswith("summary: 1 pass, 1 info, 2 fail, 1 skipped, 1 n/a")
