"""Umami's connection budget, the sampling options, and how the diff judges connection groups."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from ops.core.errors import OpsError
from ops.metrics import budget, snapshot, thresholds
from ops.metrics.budget import Budget
from ops.metrics.connections import Sampling, classify, group_counts, parse_sampling, summarize
from ops.metrics.diff import compare
from ops.metrics.render import summary_line
from ops.core.outputs import ConnectionBudget, parse_outputs

PARTS = {"poolSize": 10, "poolsPerTask": 1, "maxTasks": 4, "migrationConnections": 1, "opsHeadroom": 3, "total": 44}
OUTPUTS = {
    "contractVersion": 1, "dbHost": "db.internal", "dbPort": 5432, "dbName": "appdb", "dbSchema": "umami",
    "dbRole": "umami_user", "dbSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:umami-db",
}


def outputs(**extra):
    return parse_outputs({**OUTPUTS, **extra}, "outputs.json")


# -- the budget from the outputs ---------------------------------------------------

def test_outputs_budget_and_limit_are_read_and_missing_ones_are_none():
    assert budget.from_outputs(outputs(dbConnectionBudget=PARTS, dbConnectionLimit=50)) == (PARTS, 50)
    assert budget.from_outputs(outputs()) == (None, None)             # Pulumi drops null outputs


@pytest.mark.parametrize("extra", [
    {"dbConnectionBudget": {"total": 44}},
    {"dbConnectionBudget": {**PARTS, "poolSize": "ten"}},
    {"dbConnectionBudget": 44},
    {"dbConnectionLimit": "many"},
    {"dbConnectionLimit": True},
])
def test_malformed_budget_outputs_are_one_line_errors(extra):
    with pytest.raises(OpsError) as caught:
        budget.from_outputs(outputs(**extra))
    message = str(caught.value)
    assert next(iter(extra)) in message and "\n" not in message


def test_outputs_built_in_place_are_read_from_their_typed_fields():
    built = outputs()
    built = replace(built, database=replace(built.database, connection_budget=ConnectionBudget(10, 1, 4, 1, 3, 44),
                                            connection_limit=44))
    assert budget.from_outputs(built) == (PARTS, 44)


def test_budget_describes_its_arithmetic_or_its_source():
    assert Budget(44, "dbConnectionBudget", PARTS).describe() == "budget 44 = 10x1x4+1+3"
    reader = {**PARTS, "poolsPerTask": 2, "total": 84}
    assert Budget(84, "dbConnectionBudget", reader).describe() == "budget 84 = 10x2x4+1+3"
    assert Budget(50, "dbConnectionBudget", PARTS).describe() == (
        "budget 50 = 10x1x4+1+3 (which is 44: the outputs disagree with themselves)")
    assert Budget(60, "dbConnectionLimit").describe() == "budget 60 (outputs dbConnectionLimit)"
    assert Budget(10, "rolconnlimit").describe() == "budget 10 (the role's rolconnlimit; the outputs carry no budget)"


# -- sampling ----------------------------------------------------------------------

def test_sampling_defaults_and_spellings():
    assert parse_sampling(None, None) == Sampling(5, 1.0)
    assert parse_sampling("3", "0.5") == Sampling(3, 0.5)
    assert parse_sampling(" 2 ", "2s") == Sampling(2, 2.0)
    assert parse_sampling(1, 0) == Sampling(1, 0.0)
    assert Sampling(5, 1.0).describe() == "5 samples 1 s apart" and Sampling(1, 0).describe() == "1 sample"


@pytest.mark.parametrize("samples, interval, message", [
    ("61", None, "--samples='61' must be a whole number from 1 to 60"),
    ("2.5", None, "--samples='2.5' must be a whole number from 1 to 60"),
    (None, "61", "--sample-interval='61' must be seconds from 0 to 60, e.g. 1 or 0.5"),
    (None, "inf", "--sample-interval='inf' must be seconds from 0 to 60"),
])
def test_bad_sampling_is_a_one_line_error(samples, interval, message):
    with pytest.raises(OpsError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        parse_sampling(samples, interval)


def test_sessions_are_grouped_by_role_and_application_name():
    assert classify("umami_user", "umami-ops", "umami_user") == "ops"      # an ops tool as the umami role
    assert classify("app_user", "umami-ops", "umami_user") == "ops"
    assert classify("umami_user", "", "umami_user") == "umami"
    assert classify(None, "", "umami_user") == "application"               # a role the observer cannot see
    sessions = [
        {"role": "umami_user", "applicationName": "", "count": 3},
        {"role": "app_user", "applicationName": "shop", "count": 4},
        {"role": "postgres", "applicationName": "umami-ops", "count": 1},
    ]
    counts = group_counts(sessions, "umami_user")
    assert counts == {"umami": 3, "application": 4, "ops": 1, "total": 7}
    assert summarize([counts, {**counts, "umami": 5, "total": 9}])["umami"] == {"max": 5, "mean": 4.0,
                                                                                 "values": [3, 5]}


# -- the diff's verdicts on synthetic snapshots --------------------------------------

def doc(taken_at: str, umami: list[int], application: list[int], *, parts=None, limit=None, role_limit=10,
        aurora_connections: float | None = None) -> dict:
    """A valid version-2 snapshot with the given per-sample counts."""
    samples = [{"umami": u, "application": a, "ops": 0, "total": u + a} for u, a in zip(umami, application)]
    metrics = []
    if aurora_connections is not None:
        metrics.append({"namespace": "AWS/RDS", "name": "DatabaseConnections", "stat": "Average", "unit": "count",
                        "scope": "aurora", "status": "Complete", "message": None,
                        "dimensions": {"DBInstanceIdentifier": "db-1"}, "points": 60,
                        "average": aurora_connections, "maximum": aurora_connections, "p95": aurora_connections,
                        "sum": None, "perHour": None})
    result = {
        "format": snapshot.FORMAT, "version": 2, "takenAt": taken_at,
        "source": {"database": "appdb", "databaseOid": 16384, "systemIdentifier": "7", "serverVersion": "15.8",
                   "host": "db.internal", "port": 5432, "clusterIdentifier": "app-aurora",
                   "instanceIdentifiers": ["db-1"], "region": "eu-west-1"},
        "stack": {"schema": "umami", "role": "umami_user", "applicationRoles": [], "maxConnectionsConfigured": None,
                  "connectionBudget": parts, "connectionLimit": limit},
        "observer": {"role": "postgres", "kind": "admin", "credentials": "env", "hiddenSessions": 0, "note": None},
        "database": {
            "sizeBytes": 1000, "schemas": [],
            "connections": {"maxConnections": 1000, "reservedConnections": 3, "umamiRole": "umami_user",
                            "umamiRoleExists": True, "umamiRoleLimit": role_limit,
                            "sampling": {"samples": len(samples), "intervalSeconds": 1.0,
                                         "firstAt": taken_at, "lastAt": taken_at},
                            "groups": summarize(samples), "sessions": []},
            "activity": {"sampledAt": taken_at, "statsReset": None, "xactCommit": 1, "xactRollback": 0,
                         "blksRead": 1, "blksHit": 1, "tempFiles": 0, "tempBytes": 0, "deadlocks": 0},
        },
        "cloudwatch": {"status": "collected" if metrics else "skipped", "reason": None if metrics else "none",
                       "window": None, "calls": 0, "extraMetrics": [], "metrics": metrics},
    }
    return snapshot.validate(result, "test")


BEFORE_AT, AFTER_AT = "2030-01-01T10:00:00+00:00", "2030-01-01T11:00:00+00:00"


def rows(before: dict, after: dict, limits: dict | None = None) -> dict:
    chosen = thresholds.parse(limits, "test") if limits is not None else thresholds.defaults()
    diff = compare(before, after, chosen)
    return {row.key: row for row in diff.rows} | {"_diff": diff}


def test_the_application_is_judged_on_its_peak_and_umami_on_its_budget():
    before = doc(BEFORE_AT, [0, 0, 0], [10, 12, 11])
    after = doc(AFTER_AT, [30, 44, 40], [12, 14, 13], parts=PARTS, limit=44, role_limit=44)
    result = rows(before, after)
    application, umami = result["connections.application"], result["connections.umami"]
    assert (application.before, application.after, application.verdict) == (12, 14, "pass")
    assert application.note == "mean 11.0 -> 13.0"
    assert (umami.after, umami.threshold, umami.verdict) == (44, "max <= 44 (budget)", "pass")
    assert umami.note == ("44/44 max (budget 44 = 10x1x4+1+3); mean 0.0 -> 38.0; "
                          "CONNECTION LIMIT 44: reached, further connections are refused (SQLSTATE 53300)")

    over = doc(AFTER_AT, [45, 20, 20], [12, 14, 15], parts=PARTS, limit=50, role_limit=50)
    result = rows(before, over)
    assert result["connections.umami"].verdict == "fail" and result["connections.application"].verdict == "fail"
    assert summary_line(result["_diff"]) == (
        "THRESHOLDS BROKEN: 2 of 4: Connections: application (every role but umami_user and ops tools) +3 (+25.0 %) "
        "(increase <= 2); Connections: umami 45/44 max (budget 44 = 10x1x4+1+3)")


def test_thresholds_file_allows_umami_past_its_budget_or_only_reports_it():
    before = doc(BEFORE_AT, [0], [5])
    after = doc(AFTER_AT, [46], [5], parts=PARTS, role_limit=50)
    umami = rows(before, after, {"umamiConnectionsOverBudget": 2})["connections.umami"]
    assert (umami.threshold, umami.verdict) == ("max <= 46 (budget 44 + 2)", "pass")
    assert rows(before, after, {"umamiConnectionsOverBudget": 1})["connections.umami"].verdict == "fail"
    umami = rows(before, after, {"umamiConnectionsOverBudget": None})["connections.umami"]
    assert (umami.threshold, umami.verdict) == ("", "info") and umami.note.startswith("46/44 max")


def test_budget_falls_back_from_the_outputs_to_the_role_and_to_none():
    before = doc(BEFORE_AT, [0], [5], role_limit=None)
    limit_only = rows(before, doc(AFTER_AT, [9], [5], limit=60, role_limit=60))["connections.umami"]
    assert limit_only.note.startswith("9/60 max (budget 60 (outputs dbConnectionLimit))")
    none = rows(before, doc(AFTER_AT, [9], [5], role_limit=-1))["connections.umami"]
    assert none.verdict == "info"
    assert none.note.startswith("no budget known") and "the role has no CONNECTION LIMIT" in none.note
    # A baseline that knew the budget stands in for an after snapshot that does not.
    with_parts = doc(BEFORE_AT, [0], [5], parts=PARTS, role_limit=-1)
    assert rows(with_parts, doc(AFTER_AT, [9], [5], role_limit=-1))["_diff"].budget.source == "dbConnectionBudget"


def test_aurora_connections_may_rise_by_the_applications_allowance_plus_umamis_budget():
    def aurora_row(before_value, after_value, parts=PARTS):
        before = doc(BEFORE_AT, [0], [5], role_limit=-1, aurora_connections=before_value)
        after = doc(AFTER_AT, [0], [5], parts=parts, role_limit=-1, aurora_connections=after_value)
        return rows(before, after)["cloudwatch.AWS/RDS DatabaseConnections DBInstanceIdentifier=db-1"]

    assert (aurora_row(20, 66).threshold, aurora_row(20, 66).verdict) == ("increase <= 46", "pass")
    assert aurora_row(20, 66.5).verdict == "fail"
    assert aurora_row(20, 66).note.startswith("2 for the application + Umami's budget 44 = 10x1x4+1+3")
    unknown = aurora_row(20, 22, parts=None)
    assert unknown.verdict == "info" and "no Umami budget is known" in unknown.note


def test_version_1_snapshots_are_upgraded_in_memory():
    v1 = copy.deepcopy(doc(BEFORE_AT, [0], [0]))
    v1["version"] = 1
    for key in ("sampling", "groups"):
        del v1["database"]["connections"][key]
    del v1["stack"]["connectionBudget"], v1["stack"]["connectionLimit"]
    v1["database"]["connections"]["sessions"] = [
        {"database": "appdb", "role": "umami_user", "applicationName": "", "state": "idle", "count": 2},
        {"database": "appdb", "role": "app_user", "applicationName": "shop", "state": "idle", "count": 3},
    ]
    upgraded = snapshot.validate(v1, "old.json")
    assert upgraded["version"] == 2 and upgraded["upgradedFrom"] == 1
    assert upgraded["database"]["connections"]["groups"]["umami"] == {"max": 2, "mean": 2.0, "values": [2]}
    assert upgraded["database"]["connections"]["sampling"]["samples"] == 1
    assert upgraded["stack"]["connectionBudget"] is None
