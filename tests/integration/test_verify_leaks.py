"""For every database check id: inject exactly that leak into a clean rehearsed database
and assert that the check, and only the expected ones, report it.

Some leaks are visible to more than one check by nature (a readable table is also
read by the live probe); each case lists every check it must trip, no more.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ops.verify.checks import ALL_CHECKS
from ops.verify.checks.base import Severity
from tests.verify_support import (
    ADMIN, APP, SUPERUSER, UMAMI, connect_as, failing, inject, outputs_of, verify,
)
from tests.umami_like import run_umami_31_migrations, run_umami_like_migrations

FDW = [(SUPERUSER, "CREATE FOREIGN DATA WRAPPER test_fdw"),
       (SUPERUSER, "CREATE SERVER test_server FOREIGN DATA WRAPPER test_fdw")]
UMAMI_TABLE = [(UMAMI, "CREATE TABLE umami.probe_target (id int)")]


@dataclass(frozen=True)
class Leak:
    check: str
    steps: list[tuple[str, str]]
    expected: set[str]
    severity: Severity  # of the check under test's worst finding
    variant: str = ""

    def __str__(self) -> str:
        return f"{self.check}-{self.variant}" if self.variant else self.check


LEAKS = [
    Leak("ISO-001", [(SUPERUSER, "ALTER ROLE umami_user SUPERUSER")],
         {"ISO-001", "PRB-001", "PRB-002", "PRB-003", "PRB-004"}, Severity.CRITICAL),
    Leak("ISO-002", [(ADMIN, "ALTER ROLE umami_user CREATEROLE")], {"ISO-002"}, Severity.HIGH),
    Leak("ISO-003", [(ADMIN, "ALTER ROLE umami_user CREATEDB")], {"ISO-003"}, Severity.HIGH),
    Leak("ISO-004", [(SUPERUSER, "ALTER ROLE umami_user REPLICATION")], {"ISO-004"}, Severity.HIGH),
    Leak("ISO-005", [(SUPERUSER, "ALTER ROLE umami_user BYPASSRLS")], {"ISO-005"}, Severity.HIGH),
    Leak("ISO-006", [(ADMIN, "ALTER ROLE umami_user CONNECTION LIMIT -1")], {"ISO-006"}, Severity.MEDIUM),
    Leak("ISO-007", [(ADMIN, "ALTER ROLE umami_user IN DATABASE appdb SET role = app_user")], {"ISO-007"},
         Severity.HIGH),
    Leak("ISO-010", [(SUPERUSER, "GRANT pg_read_all_data TO umami_user")],
         {"ISO-010", "PRB-001", "PRB-004"}, Severity.CRITICAL),
    Leak("ISO-011", [(ADMIN, "CREATE ROLE reporting NOLOGIN"), (ADMIN, "GRANT reporting TO umami_user")],
         {"ISO-011"}, Severity.HIGH),
    Leak("ISO-012", [(ADMIN, "CREATE ROLE reporting NOLOGIN"), (ADMIN, "GRANT umami_user TO reporting")],
         {"ISO-012"}, Severity.MEDIUM),
    Leak("ISO-020", [(APP, "GRANT SELECT ON public.settings TO umami_user")],
         {"ISO-020", "PRB-001", "PRB-004"}, Severity.CRITICAL),
    Leak("ISO-021", [(APP, "GRANT SELECT (key) ON public.settings TO umami_user")],
         {"ISO-021", "PRB-001", "PRB-004"}, Severity.CRITICAL),
    Leak("ISO-022", [(APP, "CREATE SEQUENCE public.ticket_numbers"),
                     (APP, "GRANT USAGE ON SEQUENCE public.ticket_numbers TO umami_user")], {"ISO-022"}, Severity.HIGH),
    Leak("ISO-023", [(APP, "CREATE FUNCTION public.customer_count() RETURNS bigint LANGUAGE sql SECURITY DEFINER "
                           "AS 'SELECT count(*) FROM app.customers'")], {"ISO-023"}, Severity.HIGH),
    Leak("ISO-024", [(ADMIN, "GRANT CREATE ON SCHEMA public TO umami_user")], {"ISO-024", "PRB-002"}, Severity.HIGH),
    Leak("ISO-025", [(APP, "GRANT USAGE ON SCHEMA app TO umami_user")], {"ISO-025"}, Severity.LOW),
    Leak("ISO-026", [(ADMIN, "GRANT CREATE ON DATABASE appdb TO umami_user")], {"ISO-026"}, Severity.HIGH),
    Leak("ISO-027", [(ADMIN, "GRANT TEMPORARY ON DATABASE appdb TO umami_user")], {"ISO-027"}, Severity.LOW),
    Leak("ISO-028", [(SUPERUSER, "GRANT CONNECT ON DATABASE postgres TO umami_user")], {"ISO-028"}, Severity.MEDIUM),
    Leak("ISO-029", [(SUPERUSER, "CREATE DATABASE otherdb"),
                     (f"{SUPERUSER}@otherdb", "CREATE TABLE other_data (id int)"),
                     (f"{SUPERUSER}@otherdb", "GRANT SELECT ON other_data TO umami_user")], {"ISO-029"}, Severity.MEDIUM),
    Leak("ISO-030", [(ADMIN, "SELECT lo_create(4242)"), (ADMIN, "GRANT SELECT ON LARGE OBJECT 4242 TO umami_user")],
         {"ISO-030"}, Severity.HIGH),
    Leak("ISO-031", FDW + [(SUPERUSER, "GRANT USAGE ON FOREIGN SERVER test_server TO umami_user")],
         {"ISO-031"}, Severity.HIGH),
    Leak("ISO-032", FDW + [(SUPERUSER, "CREATE USER MAPPING FOR umami_user SERVER test_server")],
         {"ISO-032"}, Severity.MEDIUM),
    Leak("ISO-033", [(ADMIN, "GRANT CREATE ON SCHEMA public TO PUBLIC")], {"ISO-033", "PRB-002"}, Severity.MEDIUM),
    Leak("ISO-040", [(SUPERUSER, "ALTER TABLE public.settings OWNER TO umami_user")],
         {"ISO-040", "PRB-001", "PRB-004"}, Severity.HIGH),
    Leak("ISO-041", [(SUPERUSER, "ALTER SCHEMA umami OWNER TO umami_user")], {"ISO-041"}, Severity.MEDIUM),
    Leak("ISO-050", [(APP, "ALTER DEFAULT PRIVILEGES FOR ROLE app_user IN SCHEMA app GRANT SELECT ON TABLES TO umami_user")],
         {"ISO-050"}, Severity.HIGH),
    Leak("ISO-051", [(UMAMI, "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO app_user")], {"ISO-051"}, Severity.HIGH),
    Leak("ISO-060", [(ADMIN, "GRANT USAGE ON SCHEMA umami TO app_user")], {"ISO-060"}, Severity.HIGH),
    Leak("ISO-061", UMAMI_TABLE + [(UMAMI, "GRANT SELECT ON umami.probe_target TO app_user")], {"ISO-061"},
         Severity.MEDIUM),
    Leak("ISO-062", [(ADMIN, "GRANT USAGE ON SCHEMA umami TO umami_user WITH GRANT OPTION")], {"ISO-062"},
         Severity.MEDIUM),
    Leak("ISO-063", [(ADMIN, "CREATE ROLE reporting NOLOGIN")] + UMAMI_TABLE
         + [(UMAMI, "GRANT SELECT ON umami.probe_target TO reporting")], {"ISO-063"}, Severity.MEDIUM),
    Leak("ISO-064", [(ADMIN, "ALTER ROLE app_user SET search_path = app, umami")], {"ISO-064"}, Severity.MEDIUM),
    Leak("ISO-064", [(SUPERUSER, "ALTER ROLE ALL IN DATABASE appdb SET search_path = public, umami")], {"ISO-064"},
         Severity.MEDIUM, variant="every-role"),
    Leak("ISO-065", [(SUPERUSER, "GRANT rds_superuser TO app_user")], {"ISO-065"}, Severity.HIGH),
    Leak("ISO-066", [(ADMIN, "GRANT umami_user TO app_user")], {"ISO-066"}, Severity.HIGH),
    # The live probes: each leak is also in the catalogs, which is the point (the audit and reality agree).
    Leak("PRB-001", [(APP, "GRANT USAGE ON SCHEMA app TO umami_user"), (APP, "GRANT SELECT ON app.orders TO umami_user")],
         {"ISO-020", "ISO-025", "PRB-001", "PRB-004"}, Severity.CRITICAL),
    Leak("PRB-002", [(ADMIN, "CREATE ROLE writers NOLOGIN"), (ADMIN, "GRANT CREATE ON SCHEMA public TO writers"),
                     (ADMIN, "GRANT writers TO umami_user")], {"ISO-011", "ISO-024", "PRB-002"}, Severity.HIGH),
    # NOINHERIT: nothing is inherited, yet SET ROLE works; the catalog audit counts that path.
    # NOINHERIT also departs from the declared model (DES-003).
    Leak("PRB-003", [(ADMIN, "ALTER ROLE umami_user NOINHERIT"), (SUPERUSER, "GRANT app_user TO umami_user")],
         {"DES-003", "ISO-011", "ISO-020", "ISO-022", "ISO-024", "ISO-025", "PRB-003"}, Severity.CRITICAL),
    Leak("PRB-004", [(APP, "GRANT REFERENCES ON public.settings TO umami_user")], {"ISO-020", "PRB-004"},
         Severity.HIGH),
]


def test_every_database_check_has_a_leak():
    database_checks = {cid for cid, (family, _) in ALL_CHECKS.items()
                       # destroy (opt-in): its own planted cases in test_verify_destroy.py
                       # desired (missing access, not leaks): its own cases in test_verify_desired.py
                       # residual (what no grant prevents): exercised live in test_verify_residual.py
                       # tenants (needs tenants): its own planted cases in test_verify_tenants.py
                       if family.name not in ("schema", "secret", "connections", "deployment", "destroy", "desired",
                                              "residual", "tenants")}
    assert {leak.check for leak in LEAKS} == database_checks


@pytest.mark.parametrize("leak", LEAKS, ids=str)
def test_injected_leak_is_reported_by_exactly_the_expected_checks(rehearsed, leak):
    inject(rehearsed, leak.steps)
    report = verify(rehearsed)
    found = failing(report)
    assert set(found) == leak.expected, found
    (result,) = [r for r in report.results if r.check.id == leak.check]
    assert result.severity == leak.severity, result.findings


def test_membership_path_through_noinherit_is_described(rehearsed):
    inject(rehearsed, [(ADMIN, "ALTER ROLE umami_user NOINHERIT"), (ADMIN, "CREATE ROLE reporting NOLOGIN"),
                       (ADMIN, "GRANT reporting TO umami_user"), (SUPERUSER, "GRANT pg_monitor TO reporting")])
    found = failing(verify(rehearsed, only=["memberships"]))
    assert set(found) == {"ISO-010", "ISO-011"}
    assert any("umami_user → reporting → pg_monitor (by SET ROLE" in e for e in found["ISO-010"])


def test_latent_table_grant_is_medium_until_the_schema_is_usable(rehearsed):
    inject(rehearsed, [(APP, "GRANT SELECT ON app.customers TO umami_user")])
    (result,) = [r for r in verify(rehearsed, only=["ISO-020"]).results if r.check.id == "ISO-020"]
    assert result.severity == Severity.MEDIUM and "latent" in result.findings[0].evidence
    inject(rehearsed, [(APP, "GRANT USAGE ON SCHEMA app TO umami_user")])
    (result,) = [r for r in verify(rehearsed, only=["ISO-020"]).results if r.check.id == "ISO-020"]
    assert result.severity == Severity.CRITICAL and "effective" in result.findings[0].evidence


def test_discovered_application_roles_are_checked_in_reverse(rehearsed):
    inject(rehearsed, [(ADMIN, "CREATE ROLE billing LOGIN"), (ADMIN, "GRANT USAGE ON SCHEMA umami TO billing")])
    report = verify(rehearsed, outputs=outputs_of(rehearsed, applicationRoles=[]))
    assert "billing" in report.application_roles and "app_user" in report.application_roles
    assert report.application_roles_origin.startswith("discovered")
    assert set(failing(report)) == {"ISO-060"}


def test_audit_as_umami_sees_the_same_leaks(rehearsed):
    inject(rehearsed, [(APP, "GRANT SELECT ON public.settings TO umami_user"),
                       (ADMIN, "GRANT USAGE ON SCHEMA umami TO app_user")])
    as_admin, as_umami = failing(verify(rehearsed)), failing(verify(rehearsed, as_admin=False))
    assert as_admin == as_umami and {"ISO-020", "ISO-060"} <= set(as_umami)


SCHEMA_LEAKS = {
    # Version 3.1.0 expects 17 tables; the small migration set creates 3.
    "SCH-001": (lambda conn: run_umami_like_migrations(conn), Severity.MEDIUM),
    "SCH-002": (lambda conn: run_umami_31_migrations(conn, failed="20_add_heatmap"), Severity.HIGH),
}


@pytest.mark.parametrize("check", sorted(SCHEMA_LEAKS))
def test_schema_state_problem_is_reported(rehearsed, check):
    migrate, severity = SCHEMA_LEAKS[check]
    with connect_as(rehearsed, UMAMI) as conn:
        migrate(conn)
    report = verify(rehearsed, outputs=outputs_of(rehearsed, umamiVersion="3.1.0"))
    found = failing(report)
    assert set(found) == {check}, found
    (result,) = [r for r in report.results if r.check.id == check]
    assert result.severity == severity


def test_missing_pgcrypto_is_reported(rehearsed):
    inject(rehearsed, [(ADMIN, "DROP EXTENSION pgcrypto")])
    found = failing(verify(rehearsed))
    assert set(found) == {"SCH-003"} and "first migration will fail" in found["SCH-003"][0]


def test_rolled_back_migration_is_low(rehearsed):
    with connect_as(rehearsed, UMAMI) as conn:
        run_umami_31_migrations(conn)
        conn.execute("UPDATE _prisma_migrations SET rolled_back_at = now() WHERE migration_name = '01_init'")
    report = verify(rehearsed, outputs=outputs_of(rehearsed, umamiVersion="3.1.0"))
    assert failing(report) == {"SCH-002": ["low 01_init: rolled back (marked resolved; check it was re-applied)"]}


def test_extension_grants_to_public_are_informational(rehearsed):
    """pg_stat_statements' view is granted to PUBLIC by its install script (pg_init_privs): not a leak."""
    inject(rehearsed, [(SUPERUSER, "CREATE EXTENSION pg_stat_statements SCHEMA public")])
    report = verify(rehearsed)
    assert failing(report) == {}
    (result,) = [r for r in report.results if r.check.id == "ISO-020"]
    assert result.findings and all(f.severity == Severity.INFO for f in result.findings)
    assert "view public.pg_stat_statements" in {f.subject for f in result.findings}
