"""The desired-state family (DES-0xx) on a real rehearsed database: each part of the privilege model
that goes missing or drifts is reported alone, by its check, with the exact SQL that repairs it;
after running that SQL as the admin, nothing is reported."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ops.verify.checks import FAMILIES
from ops.verify.checks.base import FixAs, Severity, Status
from privilege_model import model_for
from tests.verify_support import ADMIN, UMAMI, failing, inject, outputs_of, verify

# The families that log in as umami: with a NOLOGIN role they cannot be answered.
UMAMI_LOGIN_FAMILIES = ("probes", "schema")


@dataclass(frozen=True)
class Drift:
    name: str
    steps: list[tuple[str, str]]
    check: str
    severity: Severity  # of the check's worst finding
    fixes: list[str]    # every finding's fix, in the report's order

    def __str__(self) -> str:
        return self.name


DRIFTS = [
    Drift("schema-usage-revoked", [(ADMIN, "REVOKE USAGE ON SCHEMA umami FROM umami_user")], "DES-001", Severity.HIGH,
          ['GRANT USAGE ON SCHEMA "umami" TO "umami_user";']),
    Drift("schema-create-revoked", [(ADMIN, "REVOKE CREATE ON SCHEMA umami FROM umami_user")], "DES-001", Severity.HIGH,
          ['GRANT CREATE ON SCHEMA "umami" TO "umami_user";']),
    Drift("table-defaults-revoked",
          [(ADMIN, "ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA umami REVOKE INSERT, TRUNCATE ON TABLES "
                   "FROM umami_user")], "DES-002", Severity.MEDIUM,
          ['ALTER DEFAULT PRIVILEGES FOR ROLE "postgres" IN SCHEMA "umami" GRANT INSERT, TRUNCATE ON TABLES '
           'TO "umami_user";']),
    Drift("sequence-defaults-revoked",
          [(ADMIN, "ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA umami REVOKE ALL ON SEQUENCES FROM umami_user")],
          "DES-002", Severity.MEDIUM,
          ['ALTER DEFAULT PRIVILEGES FOR ROLE "postgres" IN SCHEMA "umami" GRANT USAGE, SELECT, UPDATE ON SEQUENCES '
           'TO "umami_user";']),
    Drift("noinherit", [(ADMIN, "ALTER ROLE umami_user NOINHERIT")], "DES-003", Severity.LOW,
          ['ALTER ROLE "umami_user" WITH INHERIT;']),
    Drift("connection-limit-lowered", [(ADMIN, "ALTER ROLE umami_user CONNECTION LIMIT 20")], "DES-004",
          Severity.MEDIUM, ['ALTER ROLE "umami_user" CONNECTION LIMIT 44;']),
    Drift("connection-limit-raised", [(ADMIN, "ALTER ROLE umami_user CONNECTION LIMIT 200")], "DES-004",
          Severity.MEDIUM, ['ALTER ROLE "umami_user" CONNECTION LIMIT 44;']),
    # PostgreSQL lets a role change its own session defaults: no grant is needed for these two.
    Drift("statement-timeout-set-by-the-role", [(UMAMI, "ALTER ROLE umami_user SET statement_timeout = 0")],
          "DES-005", Severity.MEDIUM, ['ALTER ROLE "umami_user" SET statement_timeout TO 30000;']),
    Drift("search-path-set-by-the-role", [(UMAMI, "ALTER ROLE umami_user SET search_path = umami, app, public")],
          "DES-005", Severity.HIGH, ['ALTER ROLE "umami_user" SET search_path TO "umami";']),
    Drift("search-path-emptied", [(ADMIN, "ALTER ROLE umami_user SET search_path = ''")], "DES-005", Severity.MEDIUM,
          ['ALTER ROLE "umami_user" SET search_path TO "umami";']),
    Drift("idle-timeout-reset", [(ADMIN, "ALTER ROLE umami_user RESET idle_in_transaction_session_timeout")],
          "DES-005", Severity.MEDIUM, ['ALTER ROLE "umami_user" SET idle_in_transaction_session_timeout TO 60000;']),
    Drift("timeout-overridden-in-this-database",
          [(ADMIN, "ALTER ROLE umami_user IN DATABASE appdb SET statement_timeout = '5min'")], "DES-005",
          Severity.MEDIUM, ['ALTER ROLE "umami_user" IN DATABASE "appdb" RESET statement_timeout;']),
    Drift("search-path-overridden-in-this-database-by-the-role",
          [(UMAMI, "ALTER ROLE umami_user IN DATABASE appdb SET search_path = app")], "DES-005", Severity.HIGH,
          ['ALTER ROLE "umami_user" IN DATABASE "appdb" RESET search_path;']),
    Drift("undeclared-setting-by-the-role", [(UMAMI, "ALTER ROLE umami_user SET work_mem = '64MB'")], "DES-005",
          Severity.MEDIUM, ['ALTER ROLE "umami_user" RESET work_mem;']),
]


def test_every_desired_check_has_a_drift():
    assert {d.check for d in DRIFTS} == {c.id for f in FAMILIES if f.name == "desired" for c in f.checks}


def _result(report, check_id):
    (result,) = [r for r in report.results if r.check.id == check_id]
    return result


def _fixes(result) -> list[str]:
    assert all(f.fix and f.fix_as == FixAs.ADMIN for f in result.findings), result.findings
    return [statement for f in result.findings for statement in f.fix]


@pytest.mark.parametrize("drift", DRIFTS, ids=str)
def test_drift_is_reported_alone_and_its_fix_repairs_it(rehearsed, drift):
    inject(rehearsed, drift.steps)
    report = verify(rehearsed)
    found = failing(report)
    assert set(found) == {drift.check}, found
    result = _result(report, drift.check)
    assert result.severity == drift.severity, result.findings
    assert _fixes(result) == drift.fixes
    inject(rehearsed, [(ADMIN, statement) for statement in drift.fixes])
    assert failing(verify(rehearsed)) == {}


def test_evidence_names_what_is_missing_or_different(rehearsed):
    inject(rehearsed, [(ADMIN, "REVOKE USAGE, CREATE ON SCHEMA umami FROM umami_user"),
                       (UMAMI, "ALTER ROLE umami_user SET search_path = umami, app, public"),
                       (UMAMI, "ALTER ROLE umami_user SET statement_timeout = 0")])
    found = failing(verify(rehearsed))
    assert found["DES-001"] == [
        "high schema umami: umami_user lacks USAGE on it: Umami cannot reach any object in its schema",
        "high schema umami: umami_user lacks CREATE on it: Prisma's migrations cannot create Umami's tables"]
    assert found["DES-005"] == [
        'high umami_user search_path: search_path=umami, app, public: names app, public besides umami; '
        'declared search_path="umami"',
        "medium umami_user statement_timeout: statement_timeout=0: 0 ms, declared 30000 ms"]


def test_the_issue_case_fails_at_low(rehearsed):
    """Schema grant and default privileges revoked: once a silent pass, now a failing run."""
    inject(rehearsed, [(ADMIN, "REVOKE USAGE, CREATE ON SCHEMA umami FROM umami_user"),
                       (ADMIN, "ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA umami REVOKE ALL ON TABLES "
                               "FROM umami_user"),
                       (ADMIN, "ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA umami REVOKE ALL ON SEQUENCES "
                               "FROM umami_user")])
    report = verify(rehearsed)
    assert set(failing(report)) == {"DES-001", "DES-002"}
    assert report.exit_code(Severity.LOW) == 1 and report.exit_code(Severity.HIGH) == 1


def test_nologin_is_reported(rehearsed):
    """A role that cannot log in: the catalog audit says why, the checks that need its login fail with
    the reason (fail closed), and the run still reports instead of stopping."""
    inject(rehearsed, [(ADMIN, "ALTER ROLE umami_user NOLOGIN")])
    report = verify(rehearsed, skip=UMAMI_LOGIN_FAMILIES)
    assert set(failing(report)) == {"DES-003"}
    whole = verify(rehearsed)
    unanswered = {r.check.id for r in whole.results if r.family in UMAMI_LOGIN_FAMILIES}
    assert set(failing(whole)) == {"DES-003"} | unanswered
    assert all(f.evidence.startswith("could not be answered: umami_user cannot log in")
               for r in whole.results if r.family in UMAMI_LOGIN_FAMILIES for f in r.findings)
    result = _result(report, "DES-003")
    assert result.severity == Severity.HIGH
    assert [f.evidence for f in result.findings] == ["umami_user has NOLOGIN: Umami cannot log in"]
    inject(rehearsed, [(ADMIN, statement) for statement in _fixes(result)])
    assert failing(verify(rehearsed)) == {}


def test_settings_are_compared_by_value_not_spelling(rehearsed):
    inject(rehearsed, [(UMAMI, "ALTER ROLE umami_user SET statement_timeout = '30s'"),
                       (ADMIN, "ALTER ROLE umami_user SET idle_in_transaction_session_timeout = '1min'"),
                       (ADMIN, "ALTER ROLE umami_user SET search_path = \"umami\"")])
    report = verify(rehearsed)
    assert failing(report) == {}
    assert _result(report, "DES-005").status == Status.PASS


def test_the_model_from_the_outputs_restores_every_part(rehearsed):
    """The statements the model renders are valid PostgreSQL and establish all of it."""
    inject(rehearsed, [(ADMIN, "REVOKE ALL ON SCHEMA umami FROM umami_user"),
                       (ADMIN, "ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA umami REVOKE ALL ON TABLES "
                               "FROM umami_user"),
                       (ADMIN, "ALTER ROLE umami_user NOINHERIT CONNECTION LIMIT 5"),
                       (UMAMI, "ALTER ROLE umami_user SET statement_timeout = 0"),
                       (UMAMI, "ALTER ROLE umami_user RESET search_path")])
    assert set(failing(verify(rehearsed))) == {"DES-001", "DES-002", "DES-003", "DES-004", "DES-005"}
    db = outputs_of(rehearsed).database
    model = model_for(database=db.name, schema=db.schema, role=db.role, admin_role=db.admin_role,
                      connection_limit=db.connection_limit, statement_timeout_ms=db.statement_timeout_ms,
                      idle_in_transaction_timeout_ms=db.idle_in_transaction_timeout_ms)
    inject(rehearsed, [(ADMIN, statement) for statement in model.statements()])
    assert failing(verify(rehearsed)) == {}


def test_outputs_without_the_timeouts_compare_what_is_known(rehearsed):
    older = outputs_of(rehearsed, dbStatementTimeoutMs=None, dbIdleInTransactionTimeoutMs=None)
    inject(rehearsed, [(UMAMI, "ALTER ROLE umami_user SET statement_timeout = 0")])
    report = verify(rehearsed, outputs=older)
    assert failing(report) == {}
    result = _result(report, "DES-005")
    assert result.status == Status.INFO
    assert [f.evidence for f in result.findings] == [
        "statement_timeout, idle_in_transaction_session_timeout not compared: the outputs have no "
        "dbStatementTimeoutMs, dbIdleInTransactionTimeoutMs (written before they were exported)"]
    inject(rehearsed, [(UMAMI, "ALTER ROLE umami_user SET search_path = umami, public")])
    assert set(failing(verify(rehearsed, outputs=older))) == {"DES-005"}


def test_outputs_without_a_connection_limit_leave_it_uncompared(rehearsed):
    inject(rehearsed, [(ADMIN, "ALTER ROLE umami_user CONNECTION LIMIT 20")])
    report = verify(rehearsed, outputs=outputs_of(rehearsed, dbConnectionLimit=None))
    assert failing(report) == {}
    result = _result(report, "DES-004")
    assert result.status == Status.NOT_APPLICABLE and "no dbConnectionLimit" in result.reason


def test_no_limit_at_all_is_left_to_iso_006(rehearsed):
    inject(rehearsed, [(ADMIN, "ALTER ROLE umami_user CONNECTION LIMIT -1")])
    report = verify(rehearsed)
    assert set(failing(report)) == {"ISO-006"}
    assert "ISO-006" in _result(report, "DES-004").reason


def test_default_privileges_need_a_known_admin(rehearsed):
    inject(rehearsed, [(ADMIN, "ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA umami REVOKE ALL ON TABLES "
                               "FROM umami_user")])
    report = verify(rehearsed, as_admin=False, outputs=outputs_of(rehearsed, dbAdminRole=None))
    result = _result(report, "DES-002")
    assert result.status == Status.NOT_APPLICABLE and result.reason.startswith("the admin role is not known")
    assert failing(report) == {}


def test_audit_as_umami_sees_the_same_drift(rehearsed):
    inject(rehearsed, [(ADMIN, "REVOKE CREATE ON SCHEMA umami FROM umami_user"),
                       (ADMIN, "ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA umami REVOKE TRIGGER ON TABLES "
                               "FROM umami_user"),
                       (UMAMI, "ALTER ROLE umami_user SET work_mem = '8MB'")])
    as_admin, as_umami = failing(verify(rehearsed)), failing(verify(rehearsed, as_admin=False))
    assert as_admin == as_umami and set(as_umami) == {"DES-001", "DES-002", "DES-005"}
