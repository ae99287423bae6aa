"""ops.metrics connection verdicts against a real PostgreSQL 15: the application's +2, Umami's budget, sampling."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from ops.core.db import APPLICATION_NAME
from ops.metrics import snapshot
from ops.metrics.__main__ import main
from ops.metrics.collect import SnapshotRequest, take_snapshot
from ops.metrics.connections import Sampling
from ops.core.outputs import load_outputs_file
from tests.integration.test_metrics_database import (FAST_SAMPLING, create_umami_by_sql, diff_json, rows_by_key,
                                                     snap, umami_connect, write_outputs)
from tests.integration.test_metrics_database import as_admin, no_aws  # noqa: F401  (fixtures)

# 2 x 1 x 3 + 1 + 3: a small stack whose budget a test can fill and exceed.
BUDGET = {"poolSize": 2, "poolsPerTask": 1, "maxTasks": 3, "migrationConnections": 1, "opsHeadroom": 3, "total": 10}
ROLE_LIMIT = 12    # configured above the budget, so the server lets Umami go past it


class Sessions:
    """Connections a test opens and closes by the handful."""

    def __init__(self, observer: psycopg.Connection, connect):
        self.observer = observer
        self.connect = connect
        self.open: list[psycopg.Connection] = []

    def add(self, count: int) -> None:
        for _ in range(count):
            conn = self.connect()
            conn.execute("SELECT 1")
            self.open.append(conn)

    def close(self, keep: int = 0) -> None:
        """Close all but the first `keep`, and wait until the server has ended their backends."""
        pids = []
        while len(self.open) > keep:
            conn = self.open.pop()
            pids.append(conn.info.backend_pid)
            conn.close()
        deadline = time.monotonic() + 10      # a backend leaves pg_stat_activity a moment after its client
        while self.observer.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)",
                                    (pids,)).fetchone()[0]:
            assert time.monotonic() < deadline, f"backends {pids} did not end"
            time.sleep(0.01)


@pytest.fixture
def sessions(as_admin):
    """(application sessions, Umami sessions), closed after the test.

    The test watches them end through one session of its own, open throughout and
    named like an ops tool (so no snapshot counts it, and none sees it come or go).
    """
    aurora = as_admin
    observer = aurora.cluster.connect(aurora.superuser.user, aurora.superuser.password, aurora.dbname,
                                      autocommit=True, application_name=APPLICATION_NAME)
    app = Sessions(observer, lambda: aurora.connect_as(aurora.app, application_name="shop", autocommit=True))
    umami = Sessions(observer, lambda: umami_connect(aurora))
    yield app, umami
    app.close()
    umami.close()
    observer.close()


def check(baseline: Path, outputs: Path, capsys, *extra: str) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["check", "--baseline", str(baseline), "--outputs", str(outputs), "--format", "json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_application_gets_plus_two_and_umami_its_budget(as_admin, sessions, tmp_path, capsys):
    aurora = as_admin
    app, umami = sessions
    create_umami_by_sql(aurora, connection_limit=ROLE_LIMIT)
    outputs = write_outputs(tmp_path / "outputs.json", aurora, dbConnectionBudget=BUDGET,
                            dbConnectionLimit=ROLE_LIMIT)
    app.add(3)                                     # the application's steady pool
    baseline = tmp_path / "before.json"
    assert snap(outputs, baseline) == 0

    # The deploy: Umami opens 8 (well above the story's +2, within its budget), the application 2 more.
    umami.add(8)
    app.add(2)
    code, report = check(baseline, outputs, capsys)
    rows = rows_by_key(report)
    assert code == 0, report["summary"]["line"]
    application = rows["connections.application"]
    assert (application["before"], application["after"], application["verdict"]) == (3, 5, "pass")
    assert application["threshold"] == "increase <= 2"
    assert application["label"] == "application (every role but umami_user and ops tools)"
    assert application["note"] == "mean 3.0 -> 5.0"
    umami_row = rows["connections.umami"]
    assert (umami_row["before"], umami_row["after"], umami_row["verdict"]) == (0, 8, "pass")
    assert umami_row["threshold"] == "max <= 10 (budget)"
    assert umami_row["note"] == "8/10 max (budget 10 = 2x1x3+1+3); mean 0.0 -> 8.0; CONNECTION LIMIT 12"
    assert rows["connections.total"]["verdict"] == "info" and rows["connections.total"]["delta"] == 10
    assert report["connections"]["budget"] == {"total": 10, "source": "dbConnectionBudget", "parts": BUDGET,
                                               "text": "budget 10 = 2x1x3+1+3"}

    # The application 5 up on the baseline: the story's limit is broken, and only that.
    app.add(3)
    code, report = check(baseline, outputs, capsys)
    rows = rows_by_key(report)
    assert code == 1
    assert report["summary"]["broken"] == ["connections.application"]
    assert (rows["connections.application"]["after"], rows["connections.application"]["verdict"]) == (8, "fail")
    assert rows["connections.umami"]["verdict"] == "pass"
    app.close()

    # Umami past its budget (the role's limit of 12 still lets it): broken, with the arithmetic in the result line.
    umami.add(3)
    code, report = check(baseline, outputs, capsys)
    assert code == 1
    assert report["summary"]["broken"] == ["connections.umami"]
    assert "Connections: umami 11/10 max (budget 10 = 2x1x3+1+3)" in report["summary"]["line"]
    capsys.readouterr()
    assert main(["check", "--baseline", str(baseline), "--outputs", str(outputs)]) == 1
    text = capsys.readouterr().out
    assert "max <= 10 (budget)" in text and "FAIL" in text
    assert text.rstrip().splitlines()[-1] == (
        "Result: THRESHOLDS BROKEN: 1 of 4: Connections: umami 11/10 max (budget 10 = 2x1x3+1+3)")


def test_without_a_budget_in_the_outputs_the_roles_limit_is_the_budget(as_admin, sessions, tmp_path, capsys):
    aurora = as_admin
    app, umami = sessions
    create_umami_by_sql(aurora, connection_limit=10)
    outputs = write_outputs(tmp_path / "outputs.json", aurora)     # outputs from before the budget existed
    baseline = tmp_path / "before.json"
    assert snap(outputs, baseline) == 0
    umami.add(8)
    code, report = check(baseline, outputs, capsys)
    umami_row = rows_by_key(report)["connections.umami"]
    assert code == 0 and umami_row["verdict"] == "pass"
    assert umami_row["note"].startswith("8/10 max (budget 10 (the role's rolconnlimit; the outputs carry no budget))")
    assert report["connections"]["budget"]["source"] == "rolconnlimit"

    # A DBA lowers the limit under Umami's feet: its sessions stay, and are now over its budget.
    with aurora.connect_as(aurora.admin, autocommit=True) as conn:
        conn.execute("ALTER ROLE umami_user CONNECTION LIMIT 6")
    code, report = check(baseline, outputs, capsys)
    umami_row = rows_by_key(report)["connections.umami"]
    assert code == 1 and report["summary"]["broken"] == ["connections.umami"]
    assert umami_row["threshold"] == "max <= 6 (budget)"
    assert "CONNECTION LIMIT 6: reached, further connections are refused (SQLSTATE 53300)" in umami_row["note"]


def test_a_role_limit_below_the_outputs_budget_is_named(as_admin, sessions, tmp_path, capsys):
    aurora = as_admin
    create_umami_by_sql(aurora, connection_limit=4)
    outputs = write_outputs(tmp_path / "outputs.json", aurora, dbConnectionBudget=BUDGET)
    assert snap(outputs, tmp_path / "before.json") == 0
    sessions[1].add(1)
    code, report = check(tmp_path / "before.json", outputs, capsys)
    note = rows_by_key(report)["connections.umami"]["note"]
    assert code == 0
    assert "CONNECTION LIMIT 4, below the budget: Umami's tasks are refused beyond 4 (SQLSTATE 53300)" in note


def test_samples_catch_connections_one_instant_would_miss(as_admin, sessions, tmp_path):
    """Each sample is its own transaction, so a burst between two samples shows in the peak, not the mean."""
    aurora = as_admin
    app, _ = sessions
    create_umami_by_sql(aurora)
    outputs = load_outputs_file(write_outputs(tmp_path / "outputs.json", aurora))
    app.add(1)
    pauses = []

    def sleep(seconds: float) -> None:            # between samples 1-2 a burst starts, between 3-4 it ends
        pauses.append(seconds)
        if len(pauses) == 1:
            app.add(3)
        elif len(pauses) == 3:
            app.close(keep=1)

    doc = take_snapshot(SnapshotRequest(outputs, sampling=Sampling(4, 0.25)), progress=lambda message: None,
                        sleep=sleep)
    groups = doc["database"]["connections"]["groups"]
    assert pauses == [0.25, 0.25, 0.25]
    assert groups["application"] == {"max": 4, "mean": 2.5, "values": [1, 4, 4, 1]}
    assert groups["total"]["values"] == [1, 4, 4, 1]
    assert groups["ops"]["values"] == [1, 1, 1, 1]    # the test's observer; the snapshot's own session is left out
    assert doc["database"]["connections"]["sampling"]["samples"] == 4
    assert doc["stack"]["connectionBudget"] is None and doc["stack"]["connectionLimit"] is None


def test_default_sampling_spreads_the_samples_over_the_interval(as_admin, tmp_path):
    outputs = write_outputs(tmp_path / "outputs.json", as_admin)
    assert snap(outputs, tmp_path / "s.json", "--samples", "3", "--sample-interval", "0.3") == 0
    sampling = snapshot.load(tmp_path / "s.json")["database"]["connections"]["sampling"]
    spread = datetime.fromisoformat(sampling["lastAt"]) - datetime.fromisoformat(sampling["firstAt"])
    assert (sampling["samples"], sampling["intervalSeconds"]) == (3, 0.3)
    assert 0.6 <= spread.total_seconds() < 5


def test_check_samples_as_the_baseline_did(as_admin, tmp_path, capsys):
    outputs = write_outputs(tmp_path / "outputs.json", as_admin)
    assert snap(outputs, tmp_path / "before.json", "--samples", "3", "--sample-interval", "0") == 0
    code, report = check(tmp_path / "before.json", outputs, capsys, "--out", str(tmp_path / "after.json"))
    assert code == 0
    assert snapshot.load(tmp_path / "after.json")["database"]["connections"]["sampling"]["samples"] == 3
    assert "connections: max and mean of 3 samples 0 s apart in each snapshot" in report["notes"]


def as_version_1(path: Path) -> Path:
    """The same snapshot as the previous release wrote it: one instant, no budget, no groups."""
    doc = json.loads(path.read_text())
    doc["version"] = 1
    del doc["database"]["connections"]["sampling"], doc["database"]["connections"]["groups"]
    del doc["stack"]["connectionBudget"], doc["stack"]["connectionLimit"]
    out = path.with_name("v1-" + path.name)
    out.write_text(json.dumps(doc))
    return out


def test_a_version_1_baseline_still_diffs(as_admin, sessions, tmp_path, capsys):
    aurora = as_admin
    app, umami = sessions
    create_umami_by_sql(aurora)
    outputs = write_outputs(tmp_path / "outputs.json", aurora, dbConnectionBudget=BUDGET)
    app.add(1)
    assert snap(outputs, tmp_path / "before.json") == 0
    old = as_version_1(tmp_path / "before.json")
    umami.add(2)
    app.add(1)
    assert snap(outputs, tmp_path / "after.json") == 0

    code, report = diff_json(capsys, str(old), str(tmp_path / "after.json"))
    rows = rows_by_key(report)
    assert code == 0
    assert (rows["connections.application"]["before"], rows["connections.application"]["after"]) == (1, 2)
    assert rows["connections.umami"]["note"].startswith("2/10 max (budget 10 = 2x1x3+1+3)")
    assert ("the before snapshot is format version 1: its connections are one instant, "
            "and it records no budget from the outputs") in report["notes"]
    assert any(n.startswith("connections: max and mean of 1 sample before and 2 samples") for n in report["notes"])

    # `check` against a version-1 baseline samples with the defaults, not its single instant.
    capsys.readouterr()
    assert main(["check", "--baseline", str(old), "--outputs", str(outputs), "--sample-interval", "0",
                 "--out", str(tmp_path / "now.json")]) == 0
    assert snapshot.load(tmp_path / "now.json")["database"]["connections"]["sampling"]["samples"] == 5


def test_version_1_baseline_missing_a_field_is_one_line(as_admin, tmp_path, capsys):
    outputs = write_outputs(tmp_path / "outputs.json", as_admin)
    assert snap(outputs, tmp_path / "before.json", *FAST_SAMPLING) == 0
    old = as_version_1(tmp_path / "before.json")
    doc = json.loads(old.read_text())
    del doc["database"]["connections"]["sessions"]
    old.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["diff", str(old), str(tmp_path / "before.json")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == f"error: {old}: /database/connections/sessions: required but missing"
