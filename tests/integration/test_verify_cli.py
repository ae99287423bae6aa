"""`python -m ops.verify` on the rehearsal's outputs: exit codes, every format parsed back,
and the one-line failures (exit 2) when it cannot run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ops.engine.pgcluster import free_port
from ops.verify.__main__ import main
from tests.verify_support import ADMIN, APP, error_line, inject, passfile_only

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli_env(rehearsed, monkeypatch):
    return passfile_only(rehearsed, monkeypatch)


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_rehearsal_outputs_pass_with_every_format_parsed_back(cli_env, capsys):
    outputs = str(cli_env.outputs_file)
    code, out, _ = run(["--outputs", outputs, "--format", "json"], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["exitCode"] == 0 and report["auditQueries"] == 6
    assert report["ranAs"]["roles, memberships, privileges, ownership, defaults, desired, reverse, residual, connections"].startswith(
        "postgres")
    assert report["ranAs"]["probes, schema"].startswith("umami_user (real login, PGPASSFILE")

    code, out, _ = run(["--outputs", outputs, "--format", "junit"], capsys)
    suites = ET.fromstring(out)
    assert code == 0 and suites.get("failures") == "0" and int(suites.get("tests")) == len(report["checks"])
    skipped = {case.get("name").split()[0]: case.find("skipped").get("message")
               for case in suites.iter("testcase") if case.find("skipped") is not None}
    assert skipped.pop("CON-003") == "n/a: no dbReaderHost: Umami has no replica URL"
    # The dev stack declares no tenants: the cross-tenant matrix (TEN-0xx) has nothing to check.
    tenants = {cid: skipped.pop(cid) for cid in list(skipped) if cid.startswith("TEN-")}
    assert set(tenants.values()) == {"n/a: no tenants: the outputs declare none and configure no tenantRegistry"}
    assert len(skipped) == 12 and all("rehearsal" in message for message in skipped.values())

    code, out, _ = run(["--outputs", outputs, "--format", "markdown"], capsys)
    assert code == 0 and ":white_check_mark:" in out
    assert "| ID | Check | Severity | Result | Evidence | Remediation |" in out

    code, out, _ = run(["--outputs", outputs], capsys)
    assert code == 0 and "summary: " in out and "nothing at or above high" in out


def test_findings_set_the_exit_code_and_show_in_every_format(cli_env, capsys):
    inject(cli_env, [(APP, "GRANT SELECT ON public.settings TO umami_user"),
                     (ADMIN, "GRANT TEMPORARY ON DATABASE appdb TO umami_user")])
    outputs = str(cli_env.outputs_file)
    code, out, _ = run(["--outputs", outputs, "--format", "json"], capsys)
    assert code == 1
    failed = {c["id"]: c for c in json.loads(out)["checks"] if c["status"] == "fail"}
    assert set(failed) == {"ISO-020", "ISO-027", "PRB-001", "PRB-004"}
    assert failed["ISO-020"]["findings"][0]["subject"] == "table public.settings"

    code, out, _ = run(["--outputs", outputs, "--format", "junit"], capsys)
    failures = {case.get("name").split()[0] for case in ET.fromstring(out).iter("testcase")
                if case.find("failure") is not None}
    assert code == 1 and failures == {"ISO-020", "PRB-001", "PRB-004"}  # ISO-027 is low: below --fail-on high

    code, out, _ = run(["--outputs", outputs, "--format", "markdown"], capsys)
    rows = [line for line in out.splitlines() if line.startswith("| ISO-020 ")]
    assert code == 1 and ":x:" in out and len(rows) == 1 and "**fail**" in rows[0] and "REVOKE" in rows[0]

    assert run(["--outputs", outputs, "--only", "ISO-027"], capsys)[0] == 0
    assert run(["--outputs", outputs, "--only", "ISO-027", "--fail-on", "low"], capsys)[0] == 1
    assert run(["--outputs", outputs, "--skip", "privileges,probes"], capsys)[0] == 0


def test_only_and_skip_report_what_was_left_out(cli_env, capsys):
    code, out, _ = run(["--outputs", str(cli_env.outputs_file), "--only", "probes", "--skip", "PRB-003",
                        "--format", "json"], capsys)
    checks = {c["id"]: c for c in json.loads(out)["checks"]}
    assert code == 0
    assert {cid for cid, c in checks.items() if c["status"] == "pass"} == {"PRB-001", "PRB-002", "PRB-004"}
    assert checks["PRB-003"]["status"] == "skipped" and checks["PRB-003"]["reason"] == "not selected (--only/--skip)"
    assert checks["ISO-001"]["status"] == "skipped"


def test_real_process_on_rehearsal_outputs(cli_env):
    env = {**os.environ, "PGPASSFILE": str(cli_env.pgpass)}
    done = subprocess.run([sys.executable, "-m", "ops.verify", "--outputs", str(cli_env.outputs_file),
                           "--format", "json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["exitCode"] == 0


def test_real_process_on_a_malformed_outputs_file(tmp_path):
    bad = tmp_path / "outputs.json"
    bad.write_text('{"contractVersion": 1, "dbHost": ')
    done = subprocess.run([sys.executable, "-m", "ops.verify", "--outputs", str(bad)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert error_line(done.stderr) == f"error: outputs file {bad} is not valid JSON (line 1: Expecting value)"


@pytest.mark.parametrize("content, message", [
    ("[]", "stack outputs must be a JSON object"),
    ('{"contractVersion": 1}', "missing output(s) dbHost, dbPort"),
    ('{"contractVersion": 9, "dbHost": "h", "dbPort": 5432, "dbName": "d", "dbSchema": "s", "dbRole": "r", '
     '"dbSecretArn": "a"}', "contractVersion=9"),
])
def test_outputs_that_are_not_a_stack_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "outputs.json"
    path.write_text(content)
    code, out, err = run(["--outputs", str(path)], capsys)
    assert code == 2 and out == "" and message in error_line(err)


def test_unreachable_database_exits_2(cli_env, tmp_path, capsys, monkeypatch):
    port = free_port()
    outputs = {**cli_env.outputs, "dbPort": port}
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    monkeypatch.setenv("UMAMI_DB_PASSWORD", "irrelevant")
    code, out, err = run(["--outputs", str(path)], capsys)
    line = error_line(err)
    assert code == 2 and out == ""
    assert line.startswith(f"error: cannot connect to umami_user@127.0.0.1:{port}/appdb") and "irrelevant" not in line


def test_unknown_check_id_exits_2_before_connecting(tmp_path, capsys):
    code, _, err = run(["--outputs", str(tmp_path / "never-read.json"), "--only", "ISO-999"], capsys)
    assert code == 2
    assert error_line(err).startswith("error: --only ISO-999: no such check id or family")


def test_stack_without_the_pulumi_cli_says_to_pass_outputs(capsys, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    code, _, err = run(["--stack", "dev"], capsys)
    assert code == 2 and "pass --outputs FILE" in error_line(err)


def test_missing_schema_exits_2(cli_env, tmp_path, capsys):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({**cli_env.outputs, "dbSchema": "analytics"}))
    code, out, err = run(["--outputs", str(path)], capsys)
    assert code == 2 and out == ""
    assert error_line(err) == "error: schema analytics does not exist in database appdb"


def test_rehearsal_outputs_with_url_check_umamis_endpoints(cli_env, capsys):
    from tests.integration.test_verify_http import Umami, serve
    server = serve(Umami, default_password=True)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        code, out, _ = run(["--outputs", str(cli_env.outputs_file), "--url", url, "--format", "json"], capsys)
    finally:
        server.shutdown()
        server.server_close()
    checks = {c["id"]: c for c in json.loads(out)["checks"]}
    assert code == 1
    assert (checks["DEP-005"]["status"], checks["DEP-006"]["status"]) == ("pass", "fail")
    assert checks["DEP-006"]["findings"][0]["severity"] == "critical"
    assert {checks[f"DEP-00{i}"]["reason"] for i in (1, 2, 3, 4, 7)} == {"rehearsal: nothing is deployed on AWS"}


def test_tunnel_keeps_verifying_the_certificate_name(cli_env, tmp_path, capsys, monkeypatch):
    """dbHost is the name the certificate carries; --db-host is where the tunnel listens."""
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({**cli_env.outputs, "dbHost": "localhost", "dbPort": 1}))
    monkeypatch.setenv("UMAMI_DB_PASSWORD", cli_env.umami.password)
    code, out, _ = run(["--outputs", str(path), "--only", "probes", "--db-host", "127.0.0.1",
                        "--db-port", str(cli_env.aurora.port), "--format", "json"], capsys)
    assert code == 0, out
    assert {c["status"] for c in json.loads(out)["checks"] if c["id"].startswith("PRB")} == {"pass"}


def test_a_ca_that_did_not_sign_the_server_is_refused(cli_env, tmp_path, capsys, monkeypatch):
    from ops.engine.pgcluster import issue_certificates
    other_ca = issue_certificates(("localhost", "127.0.0.1"))[0].decode()
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({**cli_env.outputs, "dbCaBundle": other_ca}))
    monkeypatch.setenv("UMAMI_DB_PASSWORD", cli_env.umami.password)
    code, out, err = run(["--outputs", str(path), "--only", "probes"], capsys)
    line = error_line(err)
    assert code == 2 and out == "" and "certificate verify failed" in line
    assert cli_env.umami.password not in line
