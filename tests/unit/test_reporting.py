"""The report toolkit: escaping per format, credentials masked, aligned tables, the JSON envelope,
and the renderers fed hostile names (control characters, `<script>`, `|`, backticks, newlines)
and mis-encoded passwords."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from ops.core import reporting
from ops.verify.checks import ALL_CHECKS
from ops.verify.checks.base import Finding, Severity, Status, result_from_findings
from ops.verify.checks.secret import SecretData, database_url
from ops.core.errors import OpsError
from ops.preview.model import CRITICAL, HIGH, MEDIUM, Finding as Risk, Review, severity_rank
from ops.preview.render import render as render_review
from ops.verify.report import Report, render

HOSTILE = "evil\x1b[2J\x00|`x`\n<script>alert(1)</script>\u2028\u202e\r\nFAKE LINE"


# -- severity ----------------------------------------------------------------------------

def test_one_severity_model_for_verify_and_preview():
    assert Severity is reporting.Severity
    assert (CRITICAL, HIGH, MEDIUM) == reporting.Severity.labels()[:3]
    assert [severity_rank(s) for s in ("critical", "high", "medium", "low", "info", "bogus")] == [0, 1, 2, 3, 4, 5]
    assert reporting.at_or_above("high", "medium") and not reporting.at_or_above("medium", "high")
    assert reporting.at_or_above(Severity.CRITICAL, "critical") and not reporting.at_or_above("bogus", "info")
    with pytest.raises(ValueError, match="not one of info, low"):
        Severity.parse("severe")


# -- escaping ----------------------------------------------------------------------------

def test_text_escapes_every_control_and_invisible_character():
    out = reporting.text(HOSTILE)
    assert "\n" not in out and "\r" not in out and "\x1b" not in out and "\x00" not in out
    assert "\u2028" not in out and "\u202e" not in out
    assert out == "evil\\x1b[2J\\x00|`x`\\n<script>alert(1)</script>\\u2028\\u202e\\r\\nFAKE LINE"
    assert reporting.text("café ümlaut 日本") == "café ümlaut 日本"  # printable non-ASCII stays
    assert reporting.text("\x7f\x85\U000e0001") == "\\x7f\\x85\\U000e0001"


def test_markdown_is_inert_and_one_line():
    out = reporting.markdown(HOSTILE)
    assert "\n" not in out and "<" not in out and ">" not in out
    assert "&lt;script&gt;" in out and "\\|" in out and "\\\\x1b" in out
    assert reporting.markdown("a\\|b") == "a\\\\\\|b"  # a backslash cannot un-escape the pipe
    assert reporting.markdown("R&D <b>") == "R&amp;D &lt;b&gt;"
    assert reporting.markdown("plain text") == "plain text"


@pytest.mark.parametrize("value, expected", [
    ("name", "`name`"), ("a|b", "`a\\|b`"), ("a`b", "`` a`b ``"), ("a``b", "``` a``b ```"),
    ("x\ny", "`x y`"), ("<script>", "`<script>`"),
])
def test_markdown_code(value, expected):
    assert reporting.markdown_code(value) == expected


def test_xml_replaces_what_xml_forbids_and_keeps_the_rest():
    assert reporting.xml("a\x00b\x1bc\ufffe") == "a\\x00b\\x1bc\\ufffe"
    assert reporting.xml("tab\tnew\nline <&> é") == "tab\tnew\nline <&> é"
    element = ET.Element("case", name=reporting.xml(HOSTILE))
    element.text = reporting.xml(HOSTILE)
    parsed = ET.fromstring(ET.tostring(element, encoding="unicode"))
    assert "<script>" in parsed.text and "<script>" in parsed.get("name")


# -- aligned tables ------------------------------------------------------------------------

def test_aligned_pads_every_column_but_the_last():
    lines = reporting.aligned([("metric", "before", "note"), ("cpu", "5", ""), ("connections", "12", "peak")], "lr")
    assert lines == ["  metric       before  note", "  cpu               5", "  connections      12  peak"]


def test_aligned_minimum_widths_and_gap():
    lines = reporting.aligned([("ID", "SEV", "TITLE"), ("A-1", "high", "t")], widths=(8, 9), gap=" ", indent="")
    assert lines == ["ID       SEV       TITLE", "A-1      high      t"]
    assert reporting.aligned([]) == []


def test_markdown_table_head():
    assert reporting.markdown_table_head(["A", "B"], "lr") == ["| A | B |", "| --- | ---: |"]


# -- envelope ------------------------------------------------------------------------------

def test_envelope_puts_format_and_version_first():
    doc = reporting.envelope("umami-x", 3, {"a": 1})
    assert list(doc) == ["format", "version", "a"]
    assert json.loads(reporting.dumps(doc)) == doc
    with pytest.raises(ValueError):
        reporting.envelope("umami-x", 1, {"version": 2})


def test_read_envelope_accepts_known_versions_and_legacy_spellings():
    assert reporting.read_envelope({"format": "f", "version": 2}, "f", (1, 2), "file") == 2
    assert reporting.read_envelope({"format": "f/1"}, "f", (1,), "file", legacy={"f/1": 1}) == 1
    with pytest.raises(OpsError, match="file is f version 3; this ops package reads versions 1, 2"):
        reporting.read_envelope({"format": "f", "version": 3}, "f", (1, 2), "file")
    with pytest.raises(OpsError, match="not a f document"):
        reporting.read_envelope({"format": "g", "version": 1}, "f", (1,), "file")
    with pytest.raises(OpsError):
        reporting.read_envelope({"format": "f", "version": True}, "f", (1,), "file")


# -- the renderers, fed hostile names --------------------------------------------------------

@pytest.fixture
def hostile_report() -> Report:
    family, check = ALL_CHECKS["ISO-020"]
    findings = [Finding(Severity.CRITICAL, f"table {HOSTILE}", f"SELECT for {HOSTILE}")]
    return Report(results=[result_from_findings(check, family.name, findings, f"role {HOSTILE}")],
                  target=f"role {HOSTILE}", source="outputs.json", notes=[HOSTILE])


def test_verify_junit_is_well_formed_with_hostile_names(hostile_report):
    root = ET.fromstring(render(hostile_report, "junit", Severity.HIGH))
    failure = next(root.iter("failure"))
    assert "<script>" in failure.text and "\x1b" not in failure.text
    assert failure.text.count("\n") == 1  # one evidence line, then the fix


def test_verify_text_keeps_one_line_per_finding(hostile_report):
    out = render(hostile_report, "text", Severity.HIGH)
    assert not any(c in out for c in "\x1b\x00\r\u2028\u202e")
    assert not any(line.startswith("FAKE LINE") for line in out.splitlines())
    assert sum("SELECT for evil" in line for line in out.splitlines()) == 1


def test_verify_markdown_is_inert(hostile_report):
    out = render(hostile_report, "markdown", Severity.HIGH)
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "REVOKE ALL ON &lt;object&gt; FROM &lt;grantee&gt;" in out  # the remediation is text, not HTML
    rows = [line for line in out.splitlines() if line.startswith("| ISO-020")]
    assert len(rows) == 1 and rows[0].replace("\\|", "").count("|") == 7


def test_verify_json_carries_the_envelope(hostile_report):
    data = json.loads(render(hostile_report, "json", Severity.HIGH))
    assert (data["format"], data["version"]) == ("umami-ops-verify-report", 1)
    assert data["target"] == f"role {HOSTILE}"  # JSON escapes by itself; the value is kept whole


def test_preview_renderers_with_hostile_names():
    risk = Risk(severity=CRITICAL, rule="stateful-delete", urn="urn:x", resource=HOSTILE,
                type="postgresql:index/schema:Schema", title=f"schema `{HOSTILE}` will be deleted", detail="x")
    review = Review(title=f"Offline plan diff · stack `{HOSTILE}`", source=HOSTILE, changes=[], findings=[risk],
                    notes=[HOSTILE])
    md = render_review(review, "markdown")
    prose = re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", md)  # code spans show markup literally
    assert "<script>" not in prose and "<script>" in md and "FAKE LINE" not in [line.strip() for line in md.splitlines()]
    row = next(line for line in md.splitlines() if line.startswith("| **CRITICAL**"))
    assert row.replace("\\|", "").count(" | ") == 3
    text = render_review(review, "text")
    assert not any(c in text for c in "\x1b\x00\r\u2028\u202e")
    assert not any(line.startswith("FAKE LINE") for line in text.splitlines())
    data = json.loads(render_review(review, "json"))
    assert (data["format"], data["version"]) == ("umami-ops-preview-review", 1)


def test_markdown_escapes_link_and_code_syntax():
    assert reporting.markdown("[link](http://x)") == "\\[link\\]\\(http://x)"
    assert reporting.markdown("![img](x) `code`") == "!\\[img\\]\\(x) \\`code\\`"
    assert "](" not in reporting.markdown("[a](b) [c]  (d)")


def test_sql_comment_is_one_line():
    assert reporting.sql_comment("x\nDROP TABLE t; --\r\u2028y") == "-- x\\nDROP TABLE t; --\\r\\u2028y"


# -- credentials never reach a report ------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("postgresql://umami_user:pa@ss/w0rd@db:5432/appdb?schema=umami",
     "postgresql://umami_user:***@db:5432/appdb?schema=umami"),
    ("url postgres://u:p%40ss@db/x and more", "url postgres://u:***@db/x and more"),
    ("host=db password='it''s s3cret' user=x", "host=db password=*** user=x"),
    ("PGPASSWORD=hunter2 psql", "PGPASSWORD=*** psql"),
    ("UMAMI_DB_PASSWORD=abc123", "UMAMI_DB_PASSWORD=***"),
    ('{"username": "u", "password": "s3\\"cret"}', '{"username": "u", "password": "***"}'),
    ("{'password': 'x y'}", "{'password': \"***\"}"),
    ("verifier SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk+/=:c2VydmVy stored", "verifier SCRAM-SHA-256$*** stored"),
    ("key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY used", "key *** used"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "Authorization: Bearer ***"),
])
def test_redact_secrets_masks_credentials(value, expected):
    assert reporting.redact_secrets(value) == expected


@pytest.mark.parametrize("value", [
    "SELECT for umami_user via PUBLIC (schema usable: effective now)",
    "table app.CustomerOrderHistoryArchive2023Partitions",  # long, but not 40 characters of base64
    "commit 3f786850e387550fdab836ed7e6dc881de23001b",  # hex: no upper case
    "the password in DATABASE_URL (URL-decoded) differs from the password key",
    "http://127.0.0.1:3000/api/heartbeat", "bearer token missing",
])
def test_redact_secrets_leaves_ordinary_evidence_alone(value):
    assert reporting.redact_secrets(value) == value


def _sec004_report(document: dict) -> Report:
    family, check = ALL_CHECKS["SEC-004"]
    data = SecretData(source="secret observability/umami-db-credentials", document=document, outputs=None,
                      login_target=None)  # SEC-004 reads the document alone
    return Report(results=[result_from_findings(check, family.name, database_url(data), "secret")],
                  target="role umami_user", source="outputs.json")


def _runs_of(secret: str, length: int = 4) -> set[str]:
    return {secret[i:i + length] for i in range(len(secret) - length + 1)}


@pytest.mark.parametrize("password", [
    "5432/hunter2-Zq9xK@x",  # '/' ends the authority early: the port, then the database, hold the password
    "9876?sslmode=Tr0ub4dor#frag",  # '?' and '#' cut the URL: the port is the password's first digits
    "p@ss%41w0rd-Zq9xK!",  # an unescaped '@' and a '%' that decodes to something else
])
def test_mis_encoded_database_url_shows_no_part_of_the_password(password):
    """SEC-004 on a DATABASE_URL written without URL-encoding: no run of 4 of the password's characters
    appears in the evidence or in any format."""
    document = {"username": "umami_user", "password": password, "host": "db.example.com", "port": 5432,
                "database": "appdb", "schema": "umami",
                "DATABASE_URL": f"postgresql://umami_user:{password}@db.example.com:5432/appdb?schema=umami"}
    report = _sec004_report(document)
    (result,) = report.results
    assert result.status == Status.FAIL and result.findings
    evidence = " ".join(f"{f.subject} {f.evidence}" for f in result.findings)
    assert not any(run in evidence for run in _runs_of(password)), evidence  # fixed where it is written
    for fmt in ("text", "json", "markdown", "junit", "sql"):
        out = render(report, fmt, Severity.HIGH)
        assert not any(run in out for run in _runs_of(password)), (fmt, out)


def test_every_format_masks_a_credential_a_check_let_through():
    family, check = ALL_CHECKS["SEC-004"]
    leaky = [Finding(Severity.HIGH, "postgresql://umami_user:Tr0ub4dor@db/appdb",
                     "DATABASE_URL=postgresql://umami_user:Tr0ub4dor&3@db/appdb; PGPASSWORD=Tr0ub4dor&3")]
    report = Report(results=[result_from_findings(check, family.name, leaky, "secret")], target="role umami_user",
                    source="outputs.json", notes=["verifier SCRAM-SHA-256$4096:c2FsdA==$c3Q=:c2U="])
    for fmt in ("text", "json", "markdown", "junit", "sql"):
        out = render(report, fmt, Severity.HIGH)
        assert "Tr0ub4dor" not in out and "c2FsdA" not in out, fmt
        assert "***" in out
