"""Reports nobody can forge: object and role names built to add lines, tags, links, cells or
statements stay one inert value in every format (text, Markdown, JUnit, JSON, SQL)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from ops.verify import fixes
from ops.verify.checks import ALL_CHECKS
from ops.verify.checks.base import CheckResult, Finding, FixAs, Severity, Status, result_from_findings
from ops.verify.report import Report, render

# Each breaks one format if left raw: a line, an ANSI escape, a tag, an event handler, a link, a cell,
# a code span, a bidi override, a statement after a comment.
NAMES = [
    "evil\nFAKE LINE",
    "\x1b[2Jclear\x00nul",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[link](http://x)",
    "a|b|c",
    "`tick` ``two``",
    "bidi\u202eenil\u2028sep",
    "x\r\nDROP TABLE app.customers; --",
]
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x85\u2028\u2029\u202e]")


def hostile_result(check_id: str, name: str) -> CheckResult:
    family, check = ALL_CHECKS[check_id]
    fix = (f"REVOKE SELECT ON TABLE {fixes.qualified('app', name)} FROM {fixes.ident(name)};",)
    findings = [Finding(Severity.CRITICAL, f"table app.{name}", f"SELECT for {name} via PUBLIC", fix),
                Finding(Severity.HIGH, f"role {name}", f"member: {name}", (f"REVOKE {fixes.ident(name)} FROM "
                                                                           f'"umami_user";',), FixAs.ROLE),
                Finding(Severity.MEDIUM, f"database {name}", f"granted in {name}")]  # no SQL
    return result_from_findings(check, family.name, findings, f"role {name}")


@pytest.fixture(params=NAMES, ids=range(len(NAMES)))
def name(request) -> str:
    return request.param


@pytest.fixture
def forged(name) -> Report:
    family, check = ALL_CHECKS["DEP-001"]
    return Report(results=[hostile_result("ISO-020", name),
                           CheckResult(check, family.name, Status.NOT_APPLICABLE, reason=f"because {name}")],
                  target=f"role {name}", source=f"outputs {name}", sessions={f"families {name}": f"role {name}"},
                  application_roles=[name], application_roles_origin=f"declared {name}", notes=[f"note {name}"],
                  admin_role=name, umami_role=name)


def test_junit_is_well_formed(forged, name):
    root = ET.fromstring(render(forged, "junit", Severity.HIGH))
    failure = next(root.iter("failure"))
    assert not CONTROL.search(failure.text) and not CONTROL.search(next(root.iter("skipped")).get("message"))
    # three findings, two fixes, the remediation: one line each
    assert len(failure.text.splitlines()) == 6
    assert next(root.iter("testcase")).get("time") == "0.000"


def test_text_keeps_each_finding_on_one_line(forged, name):
    out = render(forged, "text", Severity.HIGH)
    assert not CONTROL.search(out)
    assert not any(line.startswith(("FAKE", "DROP", "enil")) for line in out.splitlines())
    lines = out.splitlines()
    assert sum(line.strip().startswith("[critical] table app.") for line in lines) == 1
    assert sum(line.strip().startswith("sql as the ") for line in lines) == 2


def test_markdown_is_inert(forged, name):
    out = render(forged, "markdown", Severity.HIGH)
    assert not CONTROL.search(out)
    assert "<" not in re.sub(r"</?(details|summary)>", "", out)  # no tag of a name's making
    assert not re.search(r"(?<!\\)\]\(", out) and not re.search(r"(?<!\\)`", out)  # no link, no code span
    assert not any(line.startswith(("FAKE", "DROP")) for line in out.splitlines())
    rows = [line for line in out.splitlines() if line.startswith("| ISO-020 ")]
    assert len(rows) == 3 and all(len(re.findall(r"(?<!\\)\|", row)) == 7 for row in rows)  # cells intact


def test_json_is_valid_and_keeps_names_whole(forged, name):
    data = json.loads(render(forged, "json", Severity.HIGH))
    (finding, *_) = next(c for c in data["checks"] if c["id"] == "ISO-020")["findings"]
    assert finding["subject"] == f"table app.{name}" and data["notes"] == [f"note {name}"]
    assert finding["fix"] == [f"REVOKE SELECT ON TABLE {fixes.qualified('app', name)} FROM {fixes.ident(name)};"]


def sql_tokens(script: str) -> tuple[list[str], list[str]]:
    """Statements and comments as PostgreSQL's lexer splits them (quotes and `--` comments)."""
    statements, comments, current, i = [], [], "", 0
    while i < len(script):
        c = script[i]
        if script.startswith("--", i):
            end = script.find("\n", i)
            end = len(script) if end < 0 else end
            comments.append(script[i:end])
            i = end
            continue
        if c in "\"'":
            end = i + 1
            while not (script[end] == c and script[end + 1:end + 2] != c):
                end += 2 if script[end] == c else 1
            current += script[i:end + 1]
            i = end + 1
            continue
        if c == ";":
            statements.append(current.strip())
            current = ""
        else:
            current += c
        i += 1
    assert not current.strip(), current
    return statements, comments


def test_sql_comments_cannot_start_a_statement(forged, name):
    script = render(forged, "sql", Severity.HIGH)
    statements, comments = sql_tokens(script)
    assert [s.split()[0] for s in statements] == ["BEGIN", "REVOKE", "COMMIT", "BEGIN", "REVOKE", "COMMIT"]
    assert all(c.startswith("-- ") and not CONTROL.search(c) for c in comments)
    # One statement per line and one line per comment: splitting the script by lines is safe too.
    assert all(line == "" or line.startswith("-- ") or line.endswith(";") for line in script.splitlines())
    assert sum(c.startswith("-- not fixable by SQL: ISO-020 database ") for c in comments) == 1


def test_quoted_names_read_back_as_the_name(name):
    """What `fixes.ident` writes is the name again for PostgreSQL: doubled quotes, U& escapes."""
    quoted = fixes.ident(name)
    assert "\n" not in quoted and "\r" not in quoted
    if quoted.startswith('U&"'):
        body = quoted[3:-1].replace('""', '"')
        decoded = re.sub(r"\\(\\|\+[0-9A-F]{6}|[0-9A-F]{4})",
                         lambda m: "\\" if m.group(1) == "\\" else chr(int(m.group(1).lstrip("+"), 16)), body)
    else:
        decoded = quoted[1:-1].replace('""', '"')
    assert decoded == name
