"""The residual family (RES-0xx): channels no grant closes, each exercised live on a real PostgreSQL 15,
then reported with the same severity whether the admin or umami itself audits."""

from __future__ import annotations

import time
from datetime import timedelta

import psycopg
import pytest

from ops.core.db import connect
from ops.verify.checks import residual
from ops.verify.checks.base import CheckResult, FixAs, Severity, Status, result_from_findings
from tests.verify_support import APP, UMAMI, admin_target, connect_as, failing, umami_target, verify

AUDITORS = pytest.mark.parametrize("as_admin", [True, False], ids=["as-admin", "as-umami"])
NOTIFY_TRIGGER = """
CREATE FUNCTION app.notify_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('orders', row_to_json(NEW)::text);
  RETURN NEW;
END $$;
CREATE TRIGGER orders_notify AFTER INSERT ON app.orders FOR EACH ROW EXECUTE FUNCTION app.notify_order();
"""


def residual_results(rehearsed, as_admin: bool) -> dict[str, CheckResult]:
    report = verify(rehearsed, as_admin=as_admin, only=["residual"])
    return {r.check.id: r for r in report.results if r.family == "residual"}


def by_both_auditors(rehearsed) -> tuple[dict[str, CheckResult], dict[str, CheckResult]]:
    """The family's results as the admin and as umami, which must agree on every severity."""
    admin, umami = residual_results(rehearsed, True), residual_results(rehearsed, False)
    assert {i: (r.status, r.severity) for i, r in admin.items()} == {i: (r.status, r.severity) for i, r in umami.items()}
    return admin, umami


def evaluated(rehearsed, as_admin: bool, check_id: str, **loader) -> CheckResult:
    """One check on data loaded by the family's loader itself (e.g. with another threshold)."""
    target = admin_target(rehearsed) if as_admin else umami_target(rehearsed)
    with connect(target) as conn:
        conn.autocommit = True
        data = residual.load(conn, rehearsed.outputs["dbSchema"], rehearsed.umami.user, **loader)
    (check,) = [c for c in residual.CHECKS if c.id == check_id]
    return result_from_findings(check, "residual", check.evaluate(data), "test")


@AUDITORS
def test_clean_database_reports_each_channel_as_info(rehearsed, as_admin):
    results = residual_results(rehearsed, as_admin)
    assert list(results) == ["RES-001", "RES-002", "RES-003", "RES-004"]
    assert {r.status for r in results.values()} == {Status.INFO}
    notify = results["RES-001"].findings[-1].evidence
    assert "can LISTEN and NOTIFY on any channel" in notify
    seen = "sees every session's statement" if as_admin else "lacks pg_read_all_stats"
    assert seen in notify
    assert "no other role's session holds an advisory lock" in results["RES-002"].findings[0].evidence
    assert results["RES-003"].findings[0].evidence.startswith("no open transaction; threshold 300 s; the role's "
                                                              "statement_timeout=30000, "
                                                              "idle_in_transaction_session_timeout=60000")
    assert "outside schema umami: app (0 functions, 1 views)" in results["RES-004"].findings[0].evidence
    assert results["RES-001"].ran_as.startswith("postgres" if as_admin else "umami_user")


def test_application_notifications_reach_umami_and_are_reported(rehearsed):
    with connect_as(rehearsed, APP) as app:
        app.execute(NOTIFY_TRIGGER)
    with connect_as(rehearsed, UMAMI) as umami, connect_as(rehearsed, APP) as listener, \
            connect_as(rehearsed, APP) as app:
        listener.execute("LISTEN orders")  # the application's own listener, its last statement
        umami.execute("LISTEN orders")
        app.execute("INSERT INTO app.orders (customer_id, total) VALUES (7, 4242.00)")
        (received,) = list(umami.notifies(timeout=5, stop_after=1))
        assert received.channel == "orders" and '"total":4242.00' in received.payload
        umami.execute("NOTIFY orders, 'forged by umami'")
        forged = [n.payload for n in listener.notifies(timeout=5, stop_after=2)]
        assert "forged by umami" in forged

        admin, as_umami = by_both_auditors(rehearsed)
        for results in (admin, as_umami):
            sent = results["RES-001"].findings[0]
            assert (sent.severity, sent.subject) == (Severity.LOW, "channel orders")
            assert sent.evidence.startswith("notified by app.notify_order() (a function body): umami_user can LISTEN")
            assert sent.fix == ()  # no SQL closes it
        listening = [f for f in admin["RES-001"].findings if f.subject == f"pid {listener.info.backend_pid} (app_user)"]
        assert [(f.severity, "LISTEN orders" in f.evidence) for f in listening] == [(Severity.INFO, True)]
        assert not any(f.subject.startswith("pid ") for f in as_umami["RES-001"].findings)  # hidden from umami
        assert failing(verify(rehearsed, only=["residual"])) == {"RES-001": [
            "low channel orders: " + admin["RES-001"].findings[0].evidence]}


def test_advisory_locks_of_another_role_are_reported_with_their_keys(rehearsed):
    with connect_as(rehearsed, APP) as app, connect_as(rehearsed, UMAMI) as umami:
        app.execute("SELECT pg_advisory_lock(72707369), pg_advisory_lock(-1, 7), pg_advisory_lock_shared(-5)")
        umami.execute("SELECT pg_advisory_lock(99)")  # umami's own lock is not another role's
        # Live: the application's key is out of umami's reach only while held, and umami blocks the application.
        assert umami.execute("SELECT pg_try_advisory_lock(72707369)").fetchone() == (False,)
        assert app.execute("SELECT pg_try_advisory_lock(99)").fetchone() == (False,)

        admin, as_umami = by_both_auditors(rehearsed)
        for results in (admin, as_umami):
            (held,) = results["RES-002"].findings
            assert (held.severity, held.subject) == (Severity.LOW, f"pid {app.info.backend_pid} (app_user)")
            assert held.evidence == ("holds pg_advisory_lock(72707369), pg_advisory_lock(-1, 7), "
                                     "pg_advisory_lock_shared(-5): umami_user can take the same keys and block it")
            assert results["RES-002"].status == Status.FAIL

    admin, _ = by_both_auditors(rehearsed)  # the sessions closed, their locks with them
    assert admin["RES-002"].status == Status.INFO


@AUDITORS
def test_long_transaction_of_umami_is_medium_above_the_threshold_with_its_terminate_fix(rehearsed, as_admin):
    with connect_as(rehearsed, UMAMI) as umami:
        umami.autocommit = False
        xid = umami.execute("SELECT txid_current()").fetchone()[0]
        assert xid > 0
        pid = umami.info.backend_pid
        time.sleep(1.5)

        above = evaluated(rehearsed, as_admin, "RES-003", long_transaction_after=timedelta(seconds=1))
        (finding,) = above.findings
        assert (above.status, finding.severity, finding.subject) == (Status.FAIL, Severity.MEDIUM,
                                                                     f"pid {pid} (umami_user)")
        assert " s in database appdb (idle in transaction), holds back VACUUM by" in finding.evidence
        assert "threshold 1 s" in finding.evidence
        assert finding.fix == (f"SELECT pg_terminate_backend({pid});",) and finding.fix_as == FixAs.ROLE

        below = evaluated(rehearsed, as_admin, "RES-003", long_transaction_after=timedelta(seconds=60))
        assert below.status == Status.INFO
        assert below.findings[0].evidence.startswith(f"oldest open transaction: pid {pid}, ")
        default = residual_results(rehearsed, as_admin)["RES-003"]  # the run's own threshold: 5 minutes
        assert default.status == Status.INFO and "threshold 300 s" in default.findings[0].evidence

        with connect_as(rehearsed, UMAMI) as another_session:  # the role ends its own session
            assert another_session.execute(finding.fix[0]).fetchone() == (True,)
        with pytest.raises(psycopg.OperationalError):
            umami.execute("SELECT 1")
    assert evaluated(rehearsed, as_admin, "RES-003").findings[0].evidence.startswith("no open transaction")


def test_an_auditor_without_pg_read_all_stats_is_told_what_it_cannot_see(rehearsed):
    with connect_as(rehearsed, UMAMI) as umami, connect_as(rehearsed, APP) as auditor:
        umami.autocommit = False
        umami.execute("SELECT txid_current()")
        data = residual.load(auditor, rehearsed.outputs["dbSchema"], rehearsed.umami.user,
                             long_transaction_after=timedelta(0))
    assert (data.sees_all_sessions, data.open_transactions, data.hidden_role_sessions) == (False, (), 1)
    (finding,) = residual.long_transactions(data)
    assert finding.evidence.endswith("; 1 of its sessions are hidden from this auditor (needs pg_read_all_stats)")


def test_function_bodies_outside_the_schema_are_counted_and_readable_by_umami(rehearsed):
    before, _ = by_both_auditors(rehearsed)
    with connect_as(rehearsed, APP) as app:
        app.execute("CREATE FUNCTION app.api_token() RETURNS text LANGUAGE sql AS $$ SELECT 'tok-4f2a' $$")
    with connect_as(rehearsed, UMAMI) as umami:
        umami.execute("CREATE FUNCTION umami.own() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$")  # inside: not counted
        # Live: no USAGE on schema app, yet the body and the view's definition are readable.
        assert umami.execute("SELECT prosrc FROM pg_proc WHERE proname = 'api_token'").fetchone() == (
            " SELECT 'tok-4f2a' ",)
        (view,) = umami.execute("SELECT pg_get_viewdef(c.oid) FROM pg_class c "
                                "WHERE c.relname = 'order_totals'").fetchone()
        assert "sum(orders.total)" in view

    admin, as_umami = by_both_auditors(rehearsed)
    for results in (admin, as_umami):
        (disclosed,) = results["RES-004"].findings
        assert disclosed.severity == Severity.INFO
        assert disclosed.evidence == ("every role, umami_user included, reads 1 function bodies (pg_proc.prosrc) and "
                                      "1 view definitions (pg_get_viewdef) outside schema umami: "
                                      "app (1 functions, 1 views)")
    assert before["RES-004"].findings[0].evidence.startswith("every role, umami_user included, reads 0 function")


@pytest.mark.parametrize("source, channels", [
    ("PERFORM pg_notify('orders', x);", ["orders"]),
    ("PERFORM pg_notify('it''s', x);", ["it's"]),
    ("PERFORM pg_notify(channel_name, x);", [residual.COMPUTED_CHANNEL]),
    ("BEGIN NOTIFY Orders; NOTIFY \"Mixed\"\"Case\", 'x'; END", ["orders", 'Mixed"Case']),
    ("-- notify the caller\nSELECT 1", []),
])
def test_channels_are_read_from_function_bodies(source, channels):
    assert residual.notify_channels(source) == channels


@pytest.mark.parametrize("classid, objid, objsubid, mode, call", [
    (0, 72707369, 1, "ExclusiveLock", "pg_advisory_lock(72707369)"),
    (0xFFFFFFFF, 0xFFFFFFFB, 1, "ShareLock", "pg_advisory_lock_shared(-5)"),
    (0xFFFFFFFF, 7, 2, "ExclusiveLock", "pg_advisory_lock(-1, 7)"),
])
def test_advisory_keys_are_shown_as_the_call_that_takes_them(classid, objid, objsubid, mode, call):
    assert residual.advisory_call(classid, objid, objsubid, mode) == call
