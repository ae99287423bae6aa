"""The connection budget checks (CON-0xx) on the real cluster, the service's ceiling from
(moto's) ECS and application autoscaling, the reader login, and ops.verify's own
connections: at most the ops headroom as the umami role, and no AWS call when the
credentials come from the environment."""

from __future__ import annotations

import json
from contextlib import ExitStack

import boto3
import psycopg
import pytest
from moto import mock_aws

import ops.core.aws
from ops.verify.checks.base import Severity, Status
from ops.verify.checks.context import SecretSource
from ops.verify.__main__ import main
from ops.verify.runner import run_verification
from tests.integration.test_verify_deployment import REGION, build_world
from tests.verify_support import ADMIN, admin_target, error_line, inject, outputs_of, umami_target

SERVICE_KEYS = ("ecsClusterArn", "ecsClusterName", "ecsServiceName", "targetGroupArn", "url", "logGroupName")
DATABASE_FAMILIES = "roles,memberships,privileges,ownership,defaults,reverse,probes,schema"


def hold_umami_connections(rehearsed, count: int, stack: ExitStack) -> None:
    """`count` sessions as umami, labelled like Umami's pool (not ops)."""
    for _ in range(count):
        target = umami_target(rehearsed)
        stack.enter_context(psycopg.connect(target.conninfo(application_name="umami-like-pool")))


def set_limit(rehearsed, limit: int) -> None:
    inject(rehearsed, [(ADMIN, f"ALTER ROLE umami_user CONNECTION LIMIT {limit}")])


def result_of(report, check_id: str):
    (result,) = [r for r in report.results if r.check.id == check_id]
    return result


def check(rehearsed, only, outputs=None, include_aws=False, as_admin=True, **kw):
    return run_verification(outputs or outputs_of(rehearsed), umami=umami_target(rehearsed),
                            admin=admin_target(rehearsed) if as_admin else None, include_aws=include_aws,
                            only=only, **kw)


# -- CON-001: live connections against the limit -------------------------------------------

@pytest.mark.parametrize("held, status, severity", [
    (7, Status.PASS, None), (8, Status.FAIL, Severity.MEDIUM), (10, Status.FAIL, Severity.HIGH),
])
def test_live_connections_against_the_limit(rehearsed, held, status, severity):
    set_limit(rehearsed, 10)
    with ExitStack() as stack:
        hold_umami_connections(rehearsed, held, stack)
        report = check(rehearsed, ["CON-001"])  # as the admin: umami itself may have no connection left
    result = result_of(report, "CON-001")
    assert (result.status, result.severity) == (status, severity)
    if severity:
        assert f"holds {held} of its 10 connections" in result.findings[0].evidence
    assert result.ran_as.startswith("postgres")


def test_live_connections_as_umami_do_not_count_ops_own_session(rehearsed):
    set_limit(rehearsed, 10)
    with ExitStack() as stack:
        hold_umami_connections(rehearsed, 7, stack)
        report = check(rehearsed, ["probes", "CON-001"], as_admin=False)  # probes leave ops' session open
    assert result_of(report, "CON-001").status == Status.PASS


# -- CON-002: the limit against the service's ceiling (moto) ----------------------------------

@pytest.fixture
def deployed_service(rehearsed, monkeypatch):
    """The rehearsed database as the database of a deployed service (ECS, autoscaling 1..2 in moto)."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        world = build_world("http://127.0.0.1:9")
        service = {key: world.outputs[key] for key in ("awsRegion", *SERVICE_KEYS) if key in world.outputs}
        yield {**service, "rehearsal": False}, boto3.client("application-autoscaling", REGION)


def register_autoscaling(client, max_capacity: int) -> None:
    client.register_scalable_target(ServiceNamespace="ecs", ResourceId="service/umami-dev/umami-dev",
                                    ScalableDimension="ecs:service:DesiredCount", MinCapacity=1,
                                    MaxCapacity=max_capacity)


BUDGET = {"poolSize": 10, "poolsPerTask": 1, "maxTasks": 4, "migrationConnections": 1, "opsHeadroom": 3,
          "total": 44}


@pytest.mark.parametrize("limit, findings", [
    (44, []),
    (43, [(Severity.HIGH, "CONNECTION LIMIT 43 < pool 10 x 1 pool(s) per task x 4 tasks (autoscaling max 2 x "
                          "maximumPercent 200 %) + 1 migration + 3 ops = 44: the next rolling deployment or "
                          "scale-out fails with SQLSTATE 53300")]),
])
def test_limit_against_the_service_ceiling(rehearsed, deployed_service, limit, findings):
    outputs, autoscaling = deployed_service
    register_autoscaling(autoscaling, 2)
    set_limit(rehearsed, limit)
    outputs.update(dbConnectionBudget=BUDGET, dbConnectionLimit=limit)
    report = check(rehearsed, ["CON-002"], outputs=outputs_of(rehearsed, **outputs), include_aws=True)
    result = result_of(report, "CON-002")
    assert [(f.severity, f.evidence) for f in result.findings] == findings
    assert result.status == (Status.FAIL if findings else Status.PASS)


def test_ceiling_without_autoscaling_is_the_desired_count(rehearsed, deployed_service):
    outputs, _ = deployed_service
    set_limit(rehearsed, 10)
    outputs.update(dbConnectionBudget=None, dbPoolSize=5, dbConnectionLimit=None)  # outputs of an older stack
    report = check(rehearsed, ["CON-002"], outputs=outputs_of(rehearsed, **outputs), include_aws=True)
    (finding,) = result_of(report, "CON-002").findings
    assert finding.evidence.startswith("CONNECTION LIMIT 10 < pool 5 x 1 pool(s) per task x 2 tasks (desired count "
                                       "(no autoscaling) 1 x maximumPercent 200 %) + 1 migration + 3 ops = 14")


def test_limit_check_is_not_applicable_in_a_rehearsal(rehearsed):
    result = result_of(check(rehearsed, ["CON-002"]), "CON-002")
    assert (result.status, result.reason) == (Status.NOT_APPLICABLE, "rehearsal: nothing is deployed on AWS")


# -- CON-003: the reader --------------------------------------------------------------------

def test_reader_of_the_same_cluster_accepts_the_login(rehearsed):
    # "localhost" is a second name of the same cluster (its certificate names both).
    result = result_of(check(rehearsed, ["CON-003"], outputs=outputs_of(rehearsed, dbReaderHost="localhost")),
                       "CON-003")
    assert result.status == Status.PASS


def test_unreachable_reader_is_high(rehearsed):
    result = result_of(check(rehearsed, ["CON-003"], outputs=outputs_of(rehearsed, dbReaderHost="127.0.0.2")),
                       "CON-003")
    assert result.status == Status.FAIL and result.severity == Severity.HIGH
    assert result.findings[0].evidence.startswith("the umami login is refused: cannot connect to umami_user@127.0.0.2")
    assert rehearsed.umami.password not in result.findings[0].evidence


def test_reader_is_not_applicable_without_a_reader_or_through_a_tunnel(rehearsed):
    assert result_of(check(rehearsed, ["CON-003"]), "CON-003").reason == "no dbReaderHost: Umami has no replica URL"
    result = result_of(check(rehearsed, ["CON-003"], outputs=outputs_of(rehearsed, dbReaderHost="localhost"),
                             tunnel=True), "CON-003")
    assert result.status == Status.NOT_APPLICABLE and "--db-host" in result.reason


# -- ops.verify's own connections --------------------------------------------------------------

def test_verify_needs_no_more_than_the_ops_headroom_as_umami(rehearsed):
    """With CONNECTION LIMIT 3 (the budget's ops headroom) and nothing else connected, every
    check that logs in as umami still gets its connection: probes, schema, the secret's
    password and the reader."""
    from tests.integration.test_verify_secret import document
    set_limit(rehearsed, 3)  # declared in the outputs too: a limit other than the stack's is DES-004's drift
    report = run_verification(outputs_of(rehearsed, dbReaderHost="localhost", dbConnectionLimit=3),
                              umami=umami_target(rehearsed),
                              admin=None, include_aws=False,
                              secret=SecretSource("secret test", document(rehearsed)))
    ran = {r.check.id for r in report.results if r.status == Status.PASS}
    assert {"PRB-001", "SCH-002", "SEC-003", "CON-001", "CON-003"} <= ran
    assert not [r.check.id for r in report.results if r.status == Status.FAIL]


# -- no AWS call with credentials from the environment ------------------------------------------

@pytest.fixture
def environment_only(rehearsed, tmp_path, monkeypatch):
    """Deployed-stack outputs (service, admin secret) with both logins in the environment and
    no AWS at all: no credentials, no region, and any boto3 client fails the test."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
                "AWS_REGION", "AWS_PROFILE", "PGPASSFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    calls = []

    def refuse(service, region=None):
        calls.append(service)
        raise AssertionError(f"AWS {service} asked")

    monkeypatch.setattr(ops.core.aws, "client", refuse)
    monkeypatch.setenv("UMAMI_DB_PASSWORD", rehearsed.umami.password)
    monkeypatch.setenv("UMAMI_ADMIN_DSN", rehearsed.aurora.admin_dsn())
    outputs = {**rehearsed.outputs, "rehearsal": False, "awsRegion": REGION, "ecsClusterName": "umami-dev",
               "ecsServiceName": "umami-dev", "targetGroupArn": "arn:aws:elasticloadbalancing:tg",
               "url": "http://127.0.0.1:9", "logGroupName": "/ecs/umami-dev",
               "dbSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf",
               "adminSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:admin-AbCdEf"}
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    return path, calls


def test_database_and_secret_families_make_no_aws_call(environment_only, capsys):
    path, calls = environment_only
    code = main(["--outputs", str(path), "--only", f"{DATABASE_FAMILIES},secret,CON-001,CON-003",
                 "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and calls == []
    statuses = {c["id"]: c for c in report["checks"]}
    assert {c["status"] for c in statuses.values() if c["id"].startswith(("ISO", "PRB", "SCH"))} <= {"pass", "info"}
    assert {statuses[f"SEC-00{i}"]["reason"] for i in range(1, 5)} == {
        "the umami password comes from UMAMI_DB_PASSWORD: Secrets Manager is not read"}
    assert report["ranAs"]["probes, schema"].startswith("umami_user (real login, environment UMAMI_DB_PASSWORD")
    assert any(who.startswith("postgres (admin/auditor, environment UMAMI_ADMIN_DSN")
               for who in report["ranAs"].values())


def test_no_aws_runs_every_family_that_does_not_need_aws(environment_only, capsys):
    path, calls = environment_only
    assert main(["--outputs", str(path), "--no-aws", "--format", "json"]) == 2  # url http://127.0.0.1:9: refused
    assert "GET http://127.0.0.1:9/api/heartbeat" in error_line(capsys.readouterr().err)
    assert main(["--outputs", str(path), "--no-aws", "--skip", "DEP-005,DEP-006", "--format", "json"]) == 0
    checks = {c["id"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert calls == []
    assert {checks[i]["reason"] for i in ("DEP-001", "DEP-004", "DEP-007", "CON-002")} == {
        "AWS checks not requested (--no-aws)"}


def test_no_aws_without_the_umami_password_exits_2(environment_only, capsys, monkeypatch):
    path, _ = environment_only
    monkeypatch.delenv("UMAMI_DB_PASSWORD")
    assert main(["--outputs", str(path), "--no-aws"]) == 2
    assert error_line(capsys.readouterr().err).startswith("error: --no-aws needs UMAMI_DB_PASSWORD")


def test_umami_password_alone_leaves_the_admin_secret_unread(environment_only, capsys, monkeypatch):
    path, calls = environment_only
    monkeypatch.delenv("UMAMI_ADMIN_DSN")
    assert main(["--outputs", str(path), "--only", "roles", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert calls == [] and report["ranAs"]["roles"].startswith("umami_user (no admin login available)")
    assert report["notes"] == ["the admin secret is not read (the umami password comes from UMAMI_DB_PASSWORD); "
                               "the catalog audit runs as the admin with UMAMI_ADMIN_DSN"]
