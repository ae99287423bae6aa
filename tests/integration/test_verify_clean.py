"""No false positives: the clean rehearsed database passes every check at `low` and above,
as the admin and as umami alone, before and after Umami-like migrations."""

import pytest

from ops.verify.checks import ALL_CHECKS
from ops.verify.checks.base import Status
from ops.verify.checks.schema_state import UMAMI_3_1_TABLES
from tests.verify_support import (
    UMAMI, connect_as, failing, outputs_of, verify,
)
from tests.umami_like import run_umami_31_migrations, run_umami_like_migrations

DATABASE_FAMILIES = ("roles", "memberships", "privileges", "ownership", "defaults", "desired", "reverse", "residual", "probes",
                     "schema")


@pytest.mark.parametrize("as_admin", [True, False], ids=["as-admin", "as-umami"])
def test_clean_rehearsed_database_has_no_findings(rehearsed, as_admin):
    report = verify(rehearsed, as_admin=as_admin)
    assert failing(report) == {}
    ran = {r.check.id for r in report.results if r.status in (Status.PASS, Status.INFO)}
    assert ran == {cid for cid, (family, _) in ALL_CHECKS.items() if family.name in DATABASE_FAMILIES} | {"CON-001"}
    assert report.audit_queries == 6
    audit_role = "postgres" if as_admin else "umami_user"
    assert all(r.ran_as.startswith(audit_role) for r in report.results if r.family == "privileges")
    assert all(r.ran_as.startswith("umami_user") for r in report.results if r.family == "probes")
    # Before Umami's first start there is nothing to compare: informational only.
    (schema,) = [r for r in report.results if r.check.id == "SCH-001"]
    assert schema.status == Status.INFO and "has not started" in schema.findings[0].evidence


def test_clean_after_umami_31_migrations(rehearsed):
    with connect_as(rehearsed, UMAMI) as conn:
        run_umami_31_migrations(conn)
    report = verify(rehearsed, outputs=outputs_of(rehearsed, umamiVersion="3.1.0"))
    assert failing(report) == {}
    assert {r.check.id: r.status for r in report.results if r.family == "schema"} == {
        "SCH-001": Status.PASS, "SCH-002": Status.PASS, "SCH-003": Status.PASS, "SCH-004": Status.PASS}


def test_clean_after_umami_like_migrations_of_unknown_version(rehearsed):
    with connect_as(rehearsed, UMAMI) as conn:
        run_umami_like_migrations(conn)
    report = verify(rehearsed, as_admin=False, outputs=outputs_of(rehearsed, umamiVersion=None))
    assert failing(report) == {}
    (schema,) = [r for r in report.results if r.check.id == "SCH-001"]
    assert schema.status == Status.INFO and "no table list" in schema.findings[0].evidence


def test_aws_checks_are_not_applicable_in_a_rehearsal(rehearsed):
    report = verify(rehearsed)
    not_applicable = {r.check.id: r.reason for r in report.results if r.status == Status.NOT_APPLICABLE}
    reader = not_applicable.pop("CON-003")
    # The rehearsed dev stack declares no tenants: the cross-tenant matrix has nothing to check.
    tenants = {cid: not_applicable.pop(cid) for cid, (f, _) in ALL_CHECKS.items() if f.name == "tenants"}
    assert set(not_applicable) == {cid for cid, (f, _) in ALL_CHECKS.items()
                                   if f.name in ("secret", "deployment")} | {"CON-002"}
    assert all(reason.startswith("rehearsal") for reason in not_applicable.values())
    assert reader == "no dbReaderHost: Umami has no replica URL"
    assert set(tenants.values()) == {"no tenants: the outputs declare none and configure no tenantRegistry"}


def test_umami_31_migrations_create_the_expected_tables_as_the_role(rehearsed):
    with connect_as(rehearsed, UMAMI) as conn:
        run_umami_31_migrations(conn)
        rows = conn.execute("SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c "
                            "JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE n.nspname = 'umami' AND c.relkind = 'r'").fetchall()
    assert {name for name, _ in rows} == set(UMAMI_3_1_TABLES) | {"_prisma_migrations"}
    assert {owner for _, owner in rows} == {"umami_user"}
