"""Findings, not aborts: against hostile or broken databases, every check that can be answered is
answered, what cannot be answered fails at its declared severity, and only a login that cannot be
made at all stops the run (exit 2)."""

from __future__ import annotations

import json
from dataclasses import replace

import psycopg
import pytest

from ops.core.errors import OpsError
from ops.verify.__main__ import main
from ops.verify.checks import ALL_CHECKS, Family
from ops.verify.checks.base import Check, Finding, FixAs, Severity, Status
from ops.verify.checks.context import Context
from ops.verify.checks.schema_state import UMAMI_3_1_TABLES
from ops.verify.runner import _run_family, run_verification
from tests.umami_like import run_umami_31_migrations
from tests.verify_support import (
    ADMIN, SUPERUSER, UMAMI, admin_target, connect_as, failing, inject, outputs_of, passfile_only, umami_target,
    verify,
)

UNANSWERED = "could not be answered: "
ISOLATION_FAMILIES = ("roles", "memberships", "privileges", "ownership", "defaults", "reverse", "probes")


@pytest.fixture
def cli_env(rehearsed, monkeypatch):
    return passfile_only(rehearsed, monkeypatch)


def cli_json(rehearsed, capsys) -> tuple[int, dict]:
    code = main(["--outputs", str(rehearsed.outputs_file), "--format", "json", "--quiet"])
    return code, json.loads(capsys.readouterr().out)


def result(report, check_id):
    (found,) = [r for r in report.results if r.check.id == check_id]
    return found


def unanswered(report) -> dict[str, list[str]]:
    return {r.check.id: [f.evidence for f in r.findings] for r in report.results
            if any(f.evidence.startswith(UNANSWERED) for f in r.findings)}


def assert_answered(report, families) -> None:
    for r in report.results:
        if r.family in families:
            assert r.status in (Status.PASS, Status.INFO), (r.check.id, r.status, r.findings)


# -- broken ownership: after a destroy without cascade and a redeploy -----------------

def admin_owns_umamis_tables(rehearsed) -> None:
    """The state a redeploy over a kept schema leaves: the destroy's REASSIGN OWNED gave Umami's tables to
    the admin and its DROP OWNED revoked the role's grants; the new role's default privileges cover only
    objects created after them, so nothing reaches the old tables."""
    with connect_as(rehearsed, ADMIN) as conn:
        conn.execute("SET search_path TO umami")
        run_umami_31_migrations(conn)
        conn.execute("REVOKE ALL ON ALL TABLES IN SCHEMA umami FROM umami_user")
        conn.execute("REVOKE ALL ON ALL SEQUENCES IN SCHEMA umami FROM umami_user")


def test_broken_ownership_is_reported_with_its_repair_and_the_run_goes_on(cli_env, capsys):
    rehearsed = cli_env
    admin_owns_umamis_tables(rehearsed)
    with connect_as(rehearsed, UMAMI) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT count(*) FROM website")  # what Umami answers with a 500

    code, document = cli_json(rehearsed, capsys)
    assert code == 1  # findings, not "could not run"
    failed = {c["id"]: c for c in document["checks"] if c["status"] == "fail"}
    assert set(failed) == {"SCH-002", "SCH-004"}

    report = verify(rehearsed)
    assert_answered(report, ISOLATION_FAMILIES)
    assert unanswered(report) == {"SCH-002": [f"{UNANSWERED}permission denied for table _prisma_migrations"]}
    assert result(report, "SCH-002").severity == Severity.HIGH
    ownership = result(report, "SCH-004")
    assert ownership.status == Status.FAIL and ownership.severity == Severity.HIGH
    findings = {f.subject: f for f in ownership.findings}
    assert set(findings) == ({f"table umami.{t}" for t in UMAMI_3_1_TABLES | {"_prisma_migrations"}}
                             | {"sequence umami.report_number_seq"})
    website = findings["table umami.website"]
    assert website.evidence == "owned by postgres, with no privilege for umami_user: Umami gets permission denied on it"
    # PostgreSQL 15 lets only a member of the new owner hand an object to it: the admin borrows the membership.
    assert website.fix == ('GRANT "umami_user" TO "postgres";',
                           'ALTER TABLE "umami"."website" OWNER TO "umami_user";',
                           'REVOKE "umami_user" FROM "postgres";')
    assert website.fix_as == FixAs.ADMIN
    assert findings["sequence umami.report_number_seq"].fix[1] == \
        'ALTER SEQUENCE "umami"."report_number_seq" OWNER TO "umami_user";'

    inject(rehearsed, [(ADMIN, statement) for f in ownership.findings for statement in f.fix])
    repaired = verify(rehearsed)
    assert failing(repaired) == {}
    assert result(repaired, "SCH-004").status == Status.PASS and result(repaired, "SCH-002").status == Status.PASS
    with connect_as(rehearsed, UMAMI) as conn:
        assert conn.execute("SELECT count(*) FROM website").fetchone() == (0,)
        assert conn.execute("SELECT pg_has_role('postgres', 'umami_user', 'MEMBER')").fetchone() == (False,)


def test_partly_granted_admin_table_names_what_is_missing(rehearsed):
    """A table the admin creates gets the stack's default privileges (fully granted: passes); one
    privilege revoked from it is reported by name."""
    inject(rehearsed, [(ADMIN, "CREATE TABLE umami.dba_notes (id int)")])
    assert result(verify(rehearsed, only=["SCH-004"]), "SCH-004").status == Status.PASS
    inject(rehearsed, [(ADMIN, "REVOKE DELETE, TRUNCATE ON umami.dba_notes FROM umami_user")])
    (finding,) = result(verify(rehearsed, only=["SCH-004"]), "SCH-004").findings
    assert finding.subject == "table umami.dba_notes"
    assert finding.evidence == "owned by postgres, and umami_user lacks DELETE, TRUNCATE on it"


# -- a hostile _prisma_migrations (umami owns it and can change it) -----------------------

HOSTILE_MIGRATIONS = {
    "extra-column": ("ALTER TABLE _prisma_migrations ADD COLUMN note text",
                     ["medium table umami._prisma_migrations: column note (text) is not one of Prisma's: "
                      "the table was changed after Prisma created it"]),
    "extra-required-column": (
        "ALTER TABLE _prisma_migrations ADD COLUMN tenant integer NOT NULL DEFAULT 0;"
        "ALTER TABLE _prisma_migrations ALTER COLUMN tenant DROP DEFAULT",
        ["high table umami._prisma_migrations: column tenant (integer) is not one of Prisma's: NOT NULL without a "
         "default: Prisma's INSERT of the next migration fails"]),
    "renamed-column": ("ALTER TABLE _prisma_migrations RENAME COLUMN finished_at TO finished",
                       ["high table umami._prisma_migrations: column finished_at (timestamp with time zone) is "
                        "missing (renamed or dropped): Prisma cannot read its migrations",
                        "medium table umami._prisma_migrations: column finished (timestamp with time zone) is not "
                        "one of Prisma's: the table was changed after Prisma created it"]),
    "wrong-type": ("ALTER TABLE _prisma_migrations ALTER COLUMN rolled_back_at TYPE text",
                   ["high table umami._prisma_migrations: column rolled_back_at is text, Prisma's is timestamp "
                    "with time zone: Prisma cannot read its migrations"]),
    "dropped-column": ("ALTER TABLE _prisma_migrations DROP COLUMN migration_name",
                       ["high table umami._prisma_migrations: column migration_name (character varying) is missing "
                        "(renamed or dropped): Prisma cannot read its migrations"]),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_MIGRATIONS))
def test_hostile_migrations_table_is_a_finding_not_an_abort(rehearsed, case):
    statement, expected = HOSTILE_MIGRATIONS[case]
    with connect_as(rehearsed, UMAMI) as conn:
        run_umami_31_migrations(conn)
        conn.execute(statement)
    report = verify(rehearsed)
    assert unanswered(report) == {}
    assert failing(report) == {"SCH-002": expected}
    assert_answered(report, ISOLATION_FAMILIES)
    assert {r.check.id: r.status for r in report.results if r.family == "schema" and r.check.id != "SCH-002"} == {
        "SCH-001": Status.PASS, "SCH-003": Status.PASS, "SCH-004": Status.PASS}


def test_a_column_of_its_own_is_dropped_by_umami(rehearsed):
    with connect_as(rehearsed, UMAMI) as conn:
        run_umami_31_migrations(conn, failed="20_add_heatmap")
        conn.execute("ALTER TABLE _prisma_migrations ADD COLUMN note text")
    findings = result(verify(rehearsed), "SCH-002").findings
    # The history is still read through Prisma's columns: the failed migration is reported too.
    assert [f.subject for f in findings] == ["20_add_heatmap", "table umami._prisma_migrations"]
    (extra,) = [f for f in findings if f.fix]
    assert extra.fix == ('ALTER TABLE "umami"."_prisma_migrations" DROP COLUMN "note";',) and extra.fix_as == FixAs.ROLE
    inject(rehearsed, [(UMAMI, extra.fix[0])])
    assert [f.subject for f in result(verify(rehearsed), "SCH-002").findings] == ["20_add_heatmap"]


def test_renamed_column_fails_the_cli_with_exit_1_not_2(cli_env, capsys):
    with connect_as(cli_env, UMAMI) as conn:
        run_umami_31_migrations(conn)
        conn.execute("ALTER TABLE _prisma_migrations RENAME COLUMN finished_at TO finished")
    code, document = cli_json(cli_env, capsys)
    assert code == 1
    assert {c["id"] for c in document["checks"] if c["status"] == "fail"} == {"SCH-002"}


# -- database errors: permission denied on a catalog, a lock timeout ------------------------

@pytest.mark.parametrize("as_admin", [True, False], ids=["as-admin", "as-umami"])
def test_unreadable_catalog_fails_its_checks_and_every_other_family_runs(rehearsed, as_admin):
    """A hardened database: pg_default_acl (per database) is no longer readable by PUBLIC."""
    inject(rehearsed, [(SUPERUSER, "REVOKE SELECT ON pg_catalog.pg_default_acl FROM PUBLIC")])
    report = verify(rehearsed, as_admin=as_admin)
    lost = unanswered(report)
    assert {"ISO-050", "ISO-051"} <= set(lost)
    assert all(evidence == [f"{UNANSWERED}permission denied for table pg_default_acl"] for evidence in lost.values())
    for check_id in lost:
        r = result(report, check_id)
        assert r.status == Status.FAIL and r.severity == ALL_CHECKS[check_id][1].severity
    assert set(failing(report, Severity.INFO)) == set(lost)
    # The same connection served the families after the failure.
    assert_answered(report, [f for f in ISOLATION_FAMILIES if f != "defaults"] + ["schema"])
    assert result(report, "CON-001").status == Status.PASS


def test_a_lock_timeout_fails_the_check_that_waited(rehearsed):
    with connect_as(rehearsed, UMAMI) as conn:
        run_umami_31_migrations(conn)
    with connect_as(rehearsed, SUPERUSER) as holder:
        holder.autocommit = False
        holder.execute("LOCK TABLE umami._prisma_migrations IN ACCESS EXCLUSIVE MODE")
        report = verify(rehearsed)
        holder.rollback()
    assert unanswered(report) == {"SCH-002": [f"{UNANSWERED}canceling statement due to lock timeout"]}
    assert set(failing(report)) == {"SCH-002"}
    assert result(report, "SCH-004").status == Status.PASS and result(report, "CON-001").status == Status.PASS


def test_without_any_login_the_run_stops(rehearsed):
    wrong = replace(umami_target(rehearsed), password="not-the-password")
    with pytest.raises(OpsError, match=r"^cannot connect to umami_user@"):
        run_verification(outputs_of(rehearsed), umami=wrong, admin=None, include_aws=False)


def test_a_umami_login_that_fails_while_the_admin_audits_is_a_finding(rehearsed):
    wrong = replace(umami_target(rehearsed), password="not-the-password")
    report = run_verification(outputs_of(rehearsed), umami=wrong, admin=admin_target(rehearsed), include_aws=False)
    needs_login = {r.check.id for r in report.results if r.family in ("probes", "schema")}
    assert set(failing(report)) == needs_login
    assert all(f.evidence.startswith("could not be answered: umami_user cannot log in") and "not-the-password"
               not in f.evidence for r in report.results if r.family in ("probes", "schema") for f in r.findings)
    assert {r.status for r in report.results if r.family == "privileges"} <= {Status.PASS, Status.INFO}


def test_recover_leaves_every_connection_usable(rehearsed):
    ctx = Context(outputs=outputs_of(rehearsed), umami=umami_target(rehearsed), admin=admin_target(rehearsed),
                  include_aws=False)
    try:
        assert ctx.catalog.principals.umami is not None  # the catalog now holds the audit connection
        ctx.audit_conn.execute("BEGIN")
        with pytest.raises(psycopg.errors.UndefinedTable):
            ctx.audit_conn.execute("SELECT * FROM no_such_table")
        umami = ctx.umami_conn
        pid = umami.info.backend_pid
        with connect_as(rehearsed, SUPERUSER) as su:
            su.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError):
            umami.execute("SELECT 1")

        ctx.recover()
        assert ctx.audit_conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert ctx.umami_conn is not umami and ctx.umami_conn.info.backend_pid != pid
        assert ctx.umami_conn.execute("SELECT current_user").fetchone() == ("umami_user",)
        ctx.close()
        # A catalog whose connection closed follows the one opened next.
        assert ctx.catalog.conn is ctx.audit_conn and not ctx.catalog.conn.closed
        assert ctx.catalog.relation_acls is not None
    finally:
        ctx.close()


def test_data_of_an_unexpected_shape_fails_the_check_that_read_it(rehearsed):
    """A row that is not what a check reads (here a role name where a list of rows was expected) fails
    that check at its declared severity; its neighbour in the family is still answered."""
    def rows_per_role(data):
        return [Finding(Severity.LOW, row["name"], "listed") for row in data["roles"]]

    checks = (Check("T-001", "reads rows", Severity.MEDIUM, "-", rows_per_role),
              Check("T-002", "reads nothing", Severity.HIGH, "-", lambda data: []))
    family = Family("shape", "Shape", checks, lambda ctx: {"roles": "umami_user"}, lambda ctx: "test")
    ctx = Context(outputs=outputs_of(rehearsed), umami=umami_target(rehearsed), admin=None, include_aws=False)
    first, second = _run_family(family, ctx, {"T-001", "T-002"})
    assert first.status == Status.FAIL and first.severity == Severity.MEDIUM
    assert [f.evidence for f in first.findings] == [f"{UNANSWERED}TypeError: string indices must be integers, not 'str'"]
    assert second.status == Status.PASS
