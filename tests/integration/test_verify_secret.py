"""The credentials secret: read from (moto's) Secrets Manager, checked against the outputs
and the real database; and the CLI's one-line failures when it cannot be read."""

from __future__ import annotations

import json
from urllib.parse import quote

import boto3
import pytest
from moto import mock_aws

from components.secrets import database_url
from ops.verify.checks.base import Severity, Status
from ops.verify.checks.context import SecretSource
from ops.verify.__main__ import main
from ops.verify.runner import run_verification
from tests.verify_support import admin_target, error_line, failing, outputs_of, umami_target

REGION = "eu-west-1"
SERVICE_KEYS = ("ecsClusterArn", "ecsClusterName", "ecsServiceName", "targetGroupArn", "url", "logGroupName")


def document(rehearsed, **changes) -> dict:
    """The secret as the stack writes it; `changes` alter fields (DATABASE_URL follows unless given)."""
    doc = {"username": rehearsed.umami.user, "password": rehearsed.umami.password, "host": "127.0.0.1",
           "port": rehearsed.aurora.port, "database": "appdb", "schema": "umami"}
    doc.update({k: v for k, v in changes.items() if k != "DATABASE_URL"})
    doc["DATABASE_URL"] = changes.get("DATABASE_URL") or database_url(
        doc["username"], doc["password"], doc["host"], doc["port"], doc["database"], doc["schema"], "verify-full")
    return doc


def check_secret(rehearsed, doc: dict):
    return run_verification(outputs_of(rehearsed), umami=umami_target(rehearsed), admin=admin_target(rehearsed),
                            include_aws=False, only=["secret"], secret=SecretSource("secret test", doc))


def test_stack_written_secret_passes(rehearsed):
    report = check_secret(rehearsed, document(rehearsed))
    assert {r.check.id: r.status for r in report.results if r.family == "secret"} == {
        f"SEC-00{i}": Status.PASS for i in range(1, 5)}


def _without(key: str):
    def change(doc: dict) -> dict:
        doc.pop(key)
        return doc
    return change


@pytest.mark.parametrize("check, change", [
    ("SEC-001", _without("schema")),
    ("SEC-002", lambda doc: {**doc, "host": "other.example.com",
                             "DATABASE_URL": doc["DATABASE_URL"].replace("127.0.0.1", "other.example.com")}),
    ("SEC-003", "wrong password"),
    ("SEC-004", lambda doc: {**doc, "DATABASE_URL": doc["DATABASE_URL"].replace("schema=umami", "schema=public")}),
], ids=["SEC-001", "SEC-002", "SEC-003", "SEC-004"])
def test_each_secret_problem_is_reported_alone(rehearsed, check, change):
    doc = document(rehearsed, password="not-the-password") if change == "wrong password" else change(document(rehearsed))
    report = check_secret(rehearsed, doc)
    found = failing(report)
    assert set(found) == {check}, found
    (result,) = [r for r in report.results if r.check.id == check]
    assert result.severity == Severity.HIGH
    assert rehearsed.umami.password not in json.dumps(found)


def test_password_mismatch_inside_database_url_names_no_password(rehearsed):
    doc = document(rehearsed)
    doc["DATABASE_URL"] = doc["DATABASE_URL"].replace(quote(rehearsed.umami.password, safe=""), "Other%21pass")
    found = failing(check_secret(rehearsed, doc))
    assert found == {"SEC-004": ["high secret test DATABASE_URL: the password in DATABASE_URL (URL-decoded) "
                                 "differs from the password key"]}


# -- through the command line, with Secrets Manager in moto ---------------------------

@pytest.fixture
def deployed(rehearsed, tmp_path, monkeypatch):
    """The rehearsed database presented as a deployed database-only stack with its secret in AWS."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    for key in ("UMAMI_DB_PASSWORD", "PGPASSFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("UMAMI_ADMIN_DSN", rehearsed.aurora.admin_dsn())
    with mock_aws():
        sm = boto3.client("secretsmanager", REGION)
        arn = sm.create_secret(Name="observability/umami-db-credentials",
                               SecretString=json.dumps(document(rehearsed)))["ARN"]
        outputs = {k: v for k, v in rehearsed.outputs.items() if k not in SERVICE_KEYS}
        outputs.update(rehearsal=False, dbSecretArn=arn, adminSecretArn=None)
        path = tmp_path / "outputs.json"
        path.write_text(json.dumps(outputs))
        yield path, sm, arn


def test_cli_checks_a_deployed_database_only_stack(deployed, capsys, rehearsed):
    path, _, _ = deployed
    assert main(["--outputs", str(path), "--format", "json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out)
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    assert all(statuses[f"SEC-00{i}"] == "pass" for i in range(1, 5))
    assert {statuses[f"DEP-00{i}"] for i in range(1, 8)} == {"n/a"}
    assert any("umami_user (real login, secret" in who for who in report["ranAs"].values())
    assert rehearsed.umami.password not in out and rehearsed.aurora.admin.password not in out


def test_cli_exits_2_when_the_secret_is_missing(deployed, capsys):
    path, sm, arn = deployed
    sm.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    assert main(["--outputs", str(path)]) == 2
    assert error_line(capsys.readouterr().err).startswith(f"error: cannot read secret {arn}: ResourceNotFoundException")


def test_cli_exits_2_when_the_secret_is_malformed(deployed, capsys):
    path, sm, arn = deployed
    sm.put_secret_value(SecretId=arn, SecretString="username=umami_user")
    assert main(["--outputs", str(path)]) == 2
    assert error_line(capsys.readouterr().err) == f"error: secret {arn} is not a JSON object"


def test_a_wrong_umami_password_fails_the_checks_that_need_the_login(deployed, capsys, monkeypatch):
    """The admin still audits; the probes and schema checks fail with the reason, never the password."""
    path, _, _ = deployed
    monkeypatch.setenv("UMAMI_DB_PASSWORD", "definitely-wrong")
    assert main(["--outputs", str(path), "--skip", "secret", "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    unanswered = {c["id"] for c in report["checks"] if c["status"] == "fail"
                  and all('password authentication failed for user "umami_user"' in f["evidence"]
                          for f in c["findings"])}
    assert {c["id"] for c in report["checks"] if c["family"] in ("probes", "schema")} <= unanswered
    assert "definitely-wrong" not in json.dumps(report)


def test_rehearsal_can_check_the_secret_the_stack_would_store(rehearsed):
    """What ops.rehearse passes to run_verification: the credentials document of the recorded SecretVersion."""
    # The credentials document, not the admin login (the other JSON secret the stack stores).
    versions = [r.inputs.get("secretString") for r in rehearsed.result.run.by_type(
        "aws:secretsmanager/secretVersion:SecretVersion")]
    (stored,) = [json.loads(v) for v in versions if isinstance(v, str) and '"DATABASE_URL"' in v]
    report = run_verification(outputs_of(rehearsed), umami=umami_target(rehearsed), admin=admin_target(rehearsed),
                              include_aws=False, secret=SecretSource("the stack's credentials document", stored))
    assert failing(report) == {}
    assert {r.check.id: r.status for r in report.results if r.family == "secret"} == {
        f"SEC-00{i}": Status.PASS for i in range(1, 5)}
