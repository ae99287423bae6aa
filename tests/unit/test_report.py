"""The report formats, parsed back: JSON loads, JUnit XML parses, Markdown has the table and fits a comment,
the SQL format is a fix script in sections; every format shows a finding's fix."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from ops.verify.checks import ALL_CHECKS
from ops.verify import report as report_module
from ops.verify.checks.base import CheckResult, Finding, FixAs, Severity, Status, result_from_findings
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
    # One row per finding, the most severe first, whichever check found it.
    assert [row.split("|")[1].strip() for row in rows][:4] == ["ISO-020", "ISO-020", "ISO-025", "ISO-027"]
    assert [row.split(" | ")[2] for row in rows][:4] == ["critical", "medium", "low", "info"]
    assert "table app.a\\|b" in rows[1]  # pipes in evidence are escaped, the table keeps its columns
    assert rows[1].count(" | ") == 5
    assert text.startswith("### :x: ops.verify")
    assert "<summary>1 passed</summary>" in text and "- DEP-001 (n/a): rehearsal" in text


def test_text_groups_by_family_and_says_why(report):
    text = render(report, "text", Severity.HIGH)
    assert "ran as: roles, privileges: postgres (admin/auditor)" in text
    assert "privileges  [as postgres (admin/auditor)]" in text
    assert "fix: REVOKE ALL ON <object> FROM <grantee>;" in text
    assert "rehearsal: nothing is deployed on AWS" in text
    assert text.rstrip().splitlines()[-1].startswith("summary: 1 pass, 1 info, 2 fail, 1 skipped, 1 n/a")


# -- fixes in every format ----------------------------------------------------------

MEMBERSHIP_FIX = ('REVOKE "reporting" FROM "umami_user";',)


@pytest.fixture
def fixable() -> Report:
    """Findings with their exact SQL: two fixed by one membership revoke, one by umami, one without SQL."""
    return Report(
        results=[
            result("ISO-001", Finding(Severity.CRITICAL, "umami_user", "umami_user has SUPERUSER",
                                      ('ALTER ROLE "umami_user" NOSUPERUSER;',), FixAs.ROLE)),
            result("ISO-010", Finding(Severity.HIGH, "pg_monitor", "member: umami_user → reporting → pg_monitor",
                                      MEMBERSHIP_FIX)),
            result("ISO-011", Finding(Severity.HIGH, "reporting", "member: umami_user → reporting", MEMBERSHIP_FIX)),
            result("ISO-029", Finding(Severity.MEDIUM, "database otherdb", "umami_user is granted privileges there")),
            result("ISO-063", Finding(Severity.MEDIUM, "umami.t", "SELECT granted to reporting",
                                      ('REVOKE SELECT ON TABLE "umami"."t" FROM "reporting";',), FixAs.ROLE)),
            result("ISO-027", Finding(Severity.INFO, "database appdb", "TEMPORARY for PUBLIC (default)")),
        ],
        target="role umami_user, schema umami in appdb at db:5432", source="outputs.json",
        admin_role="postgres", umami_role="umami_user",
    )


def sql_sections(script: str) -> dict[str, list[str]]:
    """The script's lines by section: header, admin, role, unfixable."""
    sections: dict[str, list[str]] = {"header": [], "admin": [], "role": [], "unfixable": []}
    current = "header"
    for line in script.splitlines():
        if line.startswith("-- run as the admin ("):
            current = "admin"
        elif line.startswith("-- run as the umami role ("):
            current = "role"
        elif line.startswith("-- not fixable by SQL: "):
            current = "unfixable"
        sections[current].append(line)
    return sections


def test_sql_script_sections_order_and_dedup(fixable):
    script = render(fixable, "sql", Severity.HIGH)
    s = sql_sections(script)
    assert s["admin"][0] == "-- run as the admin (postgres)" and s["role"][0] == "-- run as the umami role (umami_user)"
    assert s["admin"][1:] == ["BEGIN;", "-- ISO-010 pg_monitor", 'REVOKE "reporting" FROM "umami_user";', "COMMIT;", ""]
    # umami revokes what it granted first; it gives up SUPERUSER last of all.
    assert s["role"][1:] == ["BEGIN;", "-- ISO-063 umami.t", 'REVOKE SELECT ON TABLE "umami"."t" FROM "reporting";',
                             "-- ISO-001 umami_user", 'ALTER ROLE "umami_user" NOSUPERUSER;', "COMMIT;", ""]
    assert s["unfixable"] == ["-- not fixable by SQL: ISO-029 database otherdb: umami_user is granted privileges "
                              "there; " + ALL_CHECKS["ISO-029"][1].remediation]
    assert any(line.startswith("-- findings: 5 (4 with SQL, 1 without)") for line in s["header"])
    assert "ISO-027" not in script  # informational: nothing to fix


def test_sql_script_with_nothing_to_fix_says_so(report):
    report.results = [r for r in report.results if r.check.id in ("ISO-001", "ISO-027")]
    s = sql_sections(render(report, "sql", Severity.HIGH))
    assert s["admin"][1] == s["role"][1] == "-- nothing to run" and not s["unfixable"]
    assert "BEGIN;" not in s["admin"] + s["role"]


def test_every_format_shows_the_findings_fix(fixable):
    text = render(fixable, "text", Severity.HIGH)
    assert 'sql as the umami role: ALTER ROLE "umami_user" NOSUPERUSER;' in [line.strip() for line in text.splitlines()]
    assert "fix: ALTER ROLE <umami role> NOSUPERUSER;" in text  # the general remediation stays
    data = json.loads(render(fixable, "json", Severity.HIGH))
    findings = {c["id"]: c["findings"] for c in data["checks"]}
    assert findings["ISO-011"] == [{"severity": "high", "subject": "reporting", "evidence": "member: umami_user → reporting",
                                    "fix": list(MEMBERSHIP_FIX), "fixAs": "admin"}]
    assert findings["ISO-029"][0]["fix"] == [] and findings["ISO-029"][0]["fixAs"] is None
    md = render(fixable, "markdown", Severity.HIGH)
    row = next(line for line in md.splitlines() if line.startswith("| ISO-011 "))
    assert row.endswith('| as the admin: REVOKE "reporting" FROM "umami_user"; |')
    row = next(line for line in md.splitlines() if line.startswith("| ISO-029 "))
    assert row.endswith("| Connect to that database and REVOKE the grants; DROP OWNED BY &lt;umami role&gt; there if it "
                        "has none to keep |")  # no SQL: the check's remediation, escaped
    failure = next(c for c in ET.fromstring(render(fixable, "junit", Severity.HIGH)).iter("testcase")
                   if c.get("name").startswith("ISO-010")).find("failure")
    assert 'sql as the admin: REVOKE "reporting" FROM "umami_user";' in failure.text


# -- markdown within a pull-request comment ------------------------------------------

def big_report(tables: int) -> Report:
    """A leak of `tables` tables (one critical finding each) plus passed, low and not-run checks."""
    leak = [Finding(Severity.CRITICAL, f"table app.table_{i:04d}", "SELECT for umami_user via PUBLIC (schema usable: "
                    "effective now)", (f'REVOKE SELECT ON TABLE "app"."table_{i:04d}" FROM PUBLIC;',))
            for i in range(tables)]
    return Report(
        results=[result("ISO-001"), result("ISO-020", *leak),
                 result("ISO-025", Finding(Severity.LOW, "schema app", "USAGE for umami_user")),
                 result("DEP-001", status=Status.NOT_APPLICABLE, reason="rehearsal: nothing is deployed on AWS")],
        target="role umami_user, schema umami in appdb at db:5432", source="outputs.json")


def test_markdown_of_3000_findings_fits_a_pull_request_comment():
    report = big_report(3000)
    full = render(report, "text", Severity.HIGH)
    assert len(full) > 2 * 65_536  # the leak itself is far bigger than a comment
    md = render(report, "markdown", Severity.HIGH)
    assert len(md) <= 65_536
    rows = [line for line in md.splitlines() if line.startswith("| ISO-")]
    assert rows[0].startswith("| ISO-020 ") and "table app.table_0000" in rows[0]
    assert all(row.startswith("| ISO-020 ") for row in rows)  # the most severe fill the comment; low is cut
    (omitted,) = [line for line in md.splitlines() if "findings not shown" in line]
    assert f"**{3001 - len(rows)} of 3001 findings not shown**" in omitted
    assert "`--format json`" in omitted and "`--format junit`" in omitted
    assert "1 passed and 1 skipped or not applicable" in omitted
    assert "<details>" not in md  # passed and not-run sections are the first to go
    assert len(rows) > 200  # and the budget went to findings


def test_markdown_keeps_everything_when_it_fits():
    md = render(big_report(10), "markdown", Severity.HIGH)
    assert "not shown" not in md and "<summary>1 passed</summary>" in md and "- DEP-001 (n/a)" in md
    assert sum(line.startswith("| ISO-020 ") for line in md.splitlines()) == 10


@pytest.mark.parametrize("limit", [3_000, 6_000, 20_000])
def test_markdown_cap_holds_at_any_limit(limit):
    report = big_report(200)
    report.notes = [f"note {i}: " + "x" * 300 for i in range(100)]
    md = report_module.render_markdown(report_module.redacted(report), Severity.HIGH, limit=limit)
    assert len(md) <= limit and "findings not shown" in md


# -- junit time ---------------------------------------------------------------------

def test_junit_has_time_on_every_case_suite_and_the_root(report):
    durations = {"ISO-001": 0.25, "ISO-020": 0.5, "ISO-027": 0.125, "ISO-025": 0.125, "DEP-001": 0.0, "PRB-003": 0.0}
    for r in report.results:
        r.duration_s = durations[r.check.id]
    root = ET.fromstring(render(report, "junit", Severity.HIGH))
    cases = {c.get("name").split()[0]: float(c.get("time")) for c in root.iter("testcase")}
    assert cases == durations
    suites = {s.get("name"): float(s.get("time")) for s in root.iter("testsuite")}
    assert suites == {"roles": 0.25, "privileges": 0.75, "deployment": 0.0, "probes": 0.0}
    assert float(root.get("time")) == 1.0
    assert json.loads(render(report, "json", Severity.HIGH))["checks"][1]["durationSeconds"] == 0.5
