"""How ops connects: every libpq parameter of a DSN kept, TLS from the outputs (sslmode and
the CA bundle as a private file), tunnels that keep verify-full, and the budget arithmetic."""

from __future__ import annotations

import os
import stat

import psycopg
import pytest
from psycopg import conninfo as pg_conninfo

import ops.core.aws
import ops.core.db
from ops.core import credentials
from ops.verify.checks.base import NotApplicable, Severity
from ops.verify.checks.connections import ConnectionData, RoleUsage, TaskCeiling, limit_covers_ceiling, live_connections
from ops.core.db import Target, connect, target_from_dsn
from ops.core.errors import OpsError
from ops.core.outputs import ConnectionBudget, parse_outputs

PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
BASE = {"contractVersion": 1, "dbHost": "umami.cluster-abc.eu-west-1.rds.amazonaws.com", "dbPort": 5432,
        "dbName": "appdb", "dbSchema": "umami", "dbRole": "umami_user", "dbSecretArn": "arn:secret"}


def outputs(**changes):
    return parse_outputs({**BASE, **changes}, "test outputs")


@pytest.fixture
def captured(monkeypatch):
    """The conninfo ops.core.db.connect hands to psycopg (nothing is contacted)."""
    seen = []

    def fake_connect(conninfo, **_):
        seen.append(pg_conninfo.conninfo_to_dict(conninfo))
        raise psycopg.OperationalError("stop here")

    monkeypatch.setattr(ops.core.db.psycopg, "connect", fake_connect)
    return seen


@pytest.fixture
def no_aws(monkeypatch):
    """Any AWS client ops asks for fails the test."""
    calls = []

    def refuse(service, region=None):
        calls.append(service)
        raise AssertionError(f"unexpected AWS call: {service}")

    monkeypatch.setattr(ops.core.aws, "client", refuse)
    return calls


# -- DSNs keep every libpq parameter -------------------------------------------------------

DSN = ("postgresql://admin:s3cr%40t@db.example.com:6432/appdb?sslmode=verify-full&sslrootcert=/etc/ca.pem"
       "&sslcert=/etc/client.crt&sslkey=/etc/client.key&target_session_attrs=read-write"
       "&options=-c%20search_path%3Dapp")


def test_dsn_keeps_tls_and_session_parameters_in_the_conninfo_used_to_connect(captured):
    target = target_from_dsn(DSN)
    assert (target.sslmode, target.sslrootcert, target.password) == ("verify-full", "/etc/ca.pem", "s3cr@t")
    with pytest.raises(OpsError) as failure:
        connect(target)
    (used,) = captured
    assert {k: used[k] for k in ("host", "port", "dbname", "user", "sslmode", "sslrootcert", "sslcert", "sslkey",
                                 "target_session_attrs")} == {
        "host": "db.example.com", "port": "6432", "dbname": "appdb", "user": "admin", "sslmode": "verify-full",
        "sslrootcert": "/etc/ca.pem", "sslcert": "/etc/client.crt", "sslkey": "/etc/client.key",
        "target_session_attrs": "read-write"}
    # The DSN's options stay; ops' timeouts and read-only come after them.
    assert used["options"].startswith("-c search_path=app -c statement_timeout=")
    assert "default_transaction_read_only=on" in used["options"]
    assert "s3cr@t" not in str(failure.value) and "admin@db.example.com:6432/appdb" in str(failure.value)


def test_key_value_dsn_keeps_its_parameters_and_its_own_choices_win():
    target = target_from_dsn("host=db user=admin password=pw sslmode=require connect_timeout=3 "
                             "application_name=dba-audit sslcompression=0")
    info = pg_conninfo.conninfo_to_dict(target.conninfo())
    assert (info["connect_timeout"], info["application_name"], info["sslcompression"]) == ("3", "dba-audit", "0")
    assert "sslrootcert" not in info  # none given: libpq's own default (PGSSLROOTCERT, ~/.postgresql)


def test_dsn_without_parameters_gets_ops_defaults():
    info = pg_conninfo.conninfo_to_dict(target_from_dsn("postgresql://admin@db/appdb").conninfo())
    assert (info["application_name"], info["connect_timeout"], info["sslmode"]) == ("umami-ops", "10", "prefer")


@pytest.mark.parametrize("dsn, message", [
    ("postgresql://admin:pw@db/appdb?sslmode=bogus", "has sslmode=bogus; libpq allows disable, allow"),
    ("postgresql://admin:pw@/appdb", "lacks host"),
    ("host=db user=admin password=pw port=x", "non-numeric port"),
])
def test_bad_dsns_fail_in_one_line_without_the_password(dsn, message):
    with pytest.raises(OpsError) as failure:
        target_from_dsn(dsn)
    assert message in str(failure.value) and "pw" not in str(failure.value).replace("password", "")


# -- tunnels ----------------------------------------------------------------------------------

def test_tunnel_with_verify_full_keeps_the_certificate_name_and_connects_to_hostaddr():
    target = Target("db.example.com", 5432, "appdb", "u", sslmode="verify-full", sslrootcert="/ca.pem")
    tunnelled = target.through("127.0.0.1", 15432)
    info = pg_conninfo.conninfo_to_dict(tunnelled.conninfo())
    assert (info["host"], info["hostaddr"], info["port"]) == ("db.example.com", "127.0.0.1", "15432")
    assert tunnelled.describe() == "u@db.example.com (via 127.0.0.1):15432/appdb"
    assert target.through("localhost", None).params["hostaddr"] in ("127.0.0.1", "::1")


def test_tunnel_without_name_checking_replaces_the_host():
    target = Target("db.example.com", 5432, "appdb", "u", sslmode="require")
    assert (target.through("127.0.0.1", 15432).host, target.through(None, 15432).host) == ("127.0.0.1", "db.example.com")
    with pytest.raises(OpsError, match="cannot resolve tunnel host 'no-such-host.invalid'"):
        Target("db", 5432, "d", "u", sslmode="verify-full").through("no-such-host.invalid", None)


# -- outputs -------------------------------------------------------------------------------------

def test_new_outputs_are_optional_and_sslmode_defaults_to_verify_full():
    plain = outputs()
    assert plain.database.sslmode == "verify-full"
    assert (plain.database.ca_bundle, plain.database.reader_host, plain.database.connection_limit, plain.database.pool_size,
            plain.database.connection_budget) == (None, None, None, None, None)
    budget = {"poolSize": 10, "poolsPerTask": 2, "maxTasks": 4, "migrationConnections": 1, "opsHeadroom": 3,
              "total": 84}
    full = outputs(dbCaBundle=PEM, dbReaderHost="umami.cluster-ro-abc.eu-west-1.rds.amazonaws.com",
                   dbConnectionLimit=84, dbPoolSize=10, dbConnectionBudget=budget, dbSslMode="verify-ca")
    assert full.database.connection_budget == ConnectionBudget(10, 2, 4, 1, 3, 84)
    assert (full.database.sslmode, full.database.connection_limit, full.database.reader_host.split(".")[1]) == (
        "verify-ca", 84, "cluster-ro-abc")


@pytest.mark.parametrize("changes, message", [
    ({"dbSslMode": "no-verify"}, "dbSslMode='no-verify' is not a libpq sslmode"),
    ({"dbCaBundle": "not a certificate"}, "dbCaBundle holds no PEM certificate"),
    ({"dbConnectionLimit": "many"}, "dbConnectionLimit='many' is not a whole number"),
    ({"dbPoolSize": 0}, "dbPoolSize=0 is below 1"),
    ({"dbConnectionBudget": {"poolSize": 10}}, "dbConnectionBudget lacks poolsPerTask, maxTasks"),
    ({"dbReaderHost": 5}, "dbReaderHost must be a string"),
])
def test_bad_new_outputs_fail_in_one_line(changes, message):
    with pytest.raises(OpsError, match=message.replace("(", r"\(")):
        outputs(**changes)


# -- TLS from the outputs ---------------------------------------------------------------------

def test_ca_bundle_is_written_once_to_a_private_file():
    first = credentials.ca_file(PEM)
    assert stat.S_IMODE(os.stat(first).st_mode) == 0o600
    assert open(first).read() == PEM and credentials.ca_file(PEM) == first
    os.unlink(first)  # a vanished file is written again
    again = credentials.ca_file(PEM)
    assert os.path.exists(again) and open(again).read() == PEM


@pytest.mark.parametrize("mode, bundle, verifies", [
    ("verify-full", True, True), ("verify-ca", True, True), ("require", True, False),
    ("disable", False, False), ("verify-full", False, False),
])
def test_connections_from_outputs_use_their_sslmode_and_ca(no_aws, monkeypatch, mode, bundle, verifies):
    monkeypatch.setenv("UMAMI_DB_PASSWORD", "pw")
    out = outputs(dbSslMode=mode, **({"dbCaBundle": PEM} if bundle else {}))
    target, source = credentials.umami_target(out)
    info = pg_conninfo.conninfo_to_dict(target.conninfo())
    assert info["sslmode"] == mode and source == "environment UMAMI_DB_PASSWORD"
    assert ("sslrootcert" in info) == verifies
    if verifies:
        assert open(info["sslrootcert"]).read() == PEM
    assert no_aws == []


def test_admin_dsn_keeps_its_own_tls_whatever_the_outputs_say(no_aws, monkeypatch):
    monkeypatch.setenv("UMAMI_ADMIN_DSN", DSN)
    target, source = credentials.admin_target(outputs(dbSslMode="disable", adminSecretArn="arn:admin"),
                                              host="127.0.0.1", port=15432)
    assert (target.sslmode, target.sslrootcert, target.params["sslcert"]) == ("verify-full", "/etc/ca.pem",
                                                                              "/etc/client.crt")
    assert (target.host, target.params["hostaddr"], target.port) == ("db.example.com", "127.0.0.1", 15432)
    assert source == "environment UMAMI_ADMIN_DSN" and no_aws == []


def test_admin_secret_is_not_read_when_told_not_to(no_aws, monkeypatch):
    monkeypatch.delenv("UMAMI_ADMIN_DSN", raising=False)
    assert credentials.admin_target(outputs(adminSecretArn="arn:admin"), read_secrets=False) is None
    assert no_aws == []


# -- the connection budget -------------------------------------------------------------------

class FakeData(ConnectionData):
    """ConnectionData with its answers given, not fetched."""

    def __init__(self, usage: RoleUsage, ceiling: TaskCeiling | None = None, **output_changes):
        self.outputs = outputs(**output_changes)
        self.__dict__.update(usage=usage, ceiling=ceiling)


@pytest.mark.parametrize("sessions, severity", [(7, None), (8, Severity.MEDIUM), (9, Severity.MEDIUM),
                                                (10, Severity.HIGH)])
def test_live_connections_warn_at_80_and_fail_at_100_percent(sessions, severity):
    findings = live_connections(FakeData(RoleUsage("umami_user", 10, sessions, 1)))
    assert [f.severity for f in findings] == ([severity] if severity else [])
    if severity:
        assert f"holds {sessions} of its 10 connections" in findings[0].evidence
        assert "ops sessions besides: 1" in findings[0].evidence


def test_live_connections_without_a_limit_are_left_to_iso_006():
    with pytest.raises(NotApplicable, match="ISO-006"):
        live_connections(FakeData(RoleUsage("umami_user", -1, 50, 0)))


def test_task_ceiling_rounds_maximum_percent_down_but_never_below_the_capacity():
    assert TaskCeiling(2, "autoscaling max", 200).tasks == 4
    assert TaskCeiling(3, "autoscaling max", 150).tasks == 4
    assert TaskCeiling(1, "autoscaling max", 100).tasks == 1
    assert TaskCeiling(2, "autoscaling max", 50).tasks == 2


def test_limit_below_the_ceiling_shows_the_arithmetic():
    ceiling = TaskCeiling(2, "autoscaling max", 200)
    budget = {"poolSize": 10, "poolsPerTask": 1, "maxTasks": 4, "migrationConnections": 1, "opsHeadroom": 3,
              "total": 44}
    assert limit_covers_ceiling(FakeData(RoleUsage("umami_user", 44, 0, 0), ceiling, dbConnectionBudget=budget,
                                         dbConnectionLimit=44)) == []
    (finding,) = limit_covers_ceiling(FakeData(RoleUsage("umami_user", 10, 0, 0), ceiling,
                                               dbConnectionBudget=budget))
    assert finding.severity == Severity.HIGH
    assert finding.evidence.startswith("CONNECTION LIMIT 10 < pool 10 x 1 pool(s) per task x 4 tasks "
                                       "(autoscaling max 2 x maximumPercent 200 %) + 1 migration + 3 ops = 44")


def test_without_a_budget_output_the_stack_defaults_count_the_reader_pool():
    ceiling = TaskCeiling(2, "autoscaling max", 200)
    findings = limit_covers_ceiling(FakeData(RoleUsage("umami_user", 44, 0, 0), ceiling, dbReaderHost="reader"))
    assert [f.evidence.split(":")[0] for f in findings] == [
        "CONNECTION LIMIT 44 < pool 10 x 2 pool(s) per task x 4 tasks (autoscaling max 2 x maximumPercent 200 %) "
        "+ 1 migration + 3 ops = 84"]


def test_a_budget_below_the_service_ceiling_is_medium():
    ceiling = TaskCeiling(3, "autoscaling max", 200)
    budget = {"poolSize": 5, "poolsPerTask": 1, "maxTasks": 4, "migrationConnections": 1, "opsHeadroom": 3,
              "total": 24}
    findings = limit_covers_ceiling(FakeData(RoleUsage("umami_user", 100, 0, 0), ceiling, dbConnectionBudget=budget,
                                             dbConnectionLimit=24))
    # The live limit against dbConnectionLimit is DES-004's finding, not repeated here.
    assert sorted((f.severity, f.evidence) for f in findings) == [
        (Severity.MEDIUM, "the stack budgeted 4 tasks at once, the service can run 6")]


class FakeDeployment:
    def __init__(self, service, scalable_target):
        self.service, self.scalable_target = service, scalable_target


class FakeContext:
    def __init__(self, deployment, no_aws_reason=None):
        self.deployment, self.no_aws_reason, self.outputs = deployment, no_aws_reason, outputs()


@pytest.mark.parametrize("service, target, expected", [
    ({"desiredCount": 1, "deploymentConfiguration": {"maximumPercent": 150}}, {"MaxCapacity": 3},
     TaskCeiling(3, "autoscaling max", 150)),
    ({"desiredCount": 2, "deploymentConfiguration": {"maximumPercent": 100}}, None,
     TaskCeiling(2, "desired count (no autoscaling)", 100)),
    ({"desiredCount": 1}, {"MaxCapacity": 2}, TaskCeiling(2, "autoscaling max", 200)),  # ECS's default percent
])
def test_task_ceiling_comes_from_autoscaling_and_the_deployment_configuration(service, target, expected):
    assert ConnectionData(FakeContext(FakeDeployment(service, target))).ceiling == expected


def test_task_ceiling_without_aws_is_not_applicable():
    with pytest.raises(NotApplicable, match="^rehearsal: nothing is deployed on AWS$"):
        ConnectionData(FakeContext(None, "rehearsal: nothing is deployed on AWS")).ceiling  # noqa: B018 (raises)
