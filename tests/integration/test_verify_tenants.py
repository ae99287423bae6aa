"""The cross-tenant matrix (the `tenants` family of ops.verify) on a real PostgreSQL 15.

Three tenants are created with SQL as the admin, as the privilege model renders them (schema owned by
the admin, USAGE and CREATE to the tenant's role, default privileges FOR ROLE admin), each owning a
table and a sequence it created itself. Each leak between tenant_a and tenant_b is planted alone and
must be reported with exactly that pair; the finding's own SQL, run as the admin, must close it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from facts import tenant_role, tenant_schema
from ops.verify.checks.base import Severity, Status
from privilege_model import model_for
from tests.verify_support import ADMIN, APP, SUPERUSER, UMAMI, connect_as, failing, inject, outputs_of, verify

TENANTS = ("a", "b", "c")
TENANT_CHECKS = ("TEN-001", "TEN-002", "TEN-003", "TEN-004", "TEN-005", "TEN-006", "TEN-007",
                 "TEN-010", "TEN-011", "TEN-012", "TEN-013")


def tenant_steps(rehearsed, names=TENANTS) -> list[tuple[str, str]]:
    """Each tenant as the stack builds it, then a table and a sequence its role creates and owns."""
    admin = rehearsed.aurora.admin.user
    steps = []
    for name in names:
        role, schema = tenant_role(name), tenant_schema(name)
        model = model_for(database=rehearsed.aurora.dbname, schema=schema, role=role, admin_role=admin,
                          connection_limit=5, statement_timeout_ms=30_000, idle_in_transaction_timeout_ms=60_000)
        steps += [(ADMIN, f'CREATE ROLE "{role}" LOGIN'), (ADMIN, f'CREATE SCHEMA "{schema}" AUTHORIZATION "{admin}"')]
        steps += [(ADMIN, statement) for statement in model.statements()]
        steps.append((SUPERUSER, f'SET ROLE "{role}"; CREATE TABLE "{schema}".orders (id bigint PRIMARY KEY, '
                                 f'total numeric); CREATE SEQUENCE "{schema}".order_numbers; RESET ROLE'))
    return steps


@pytest.fixture
def tenants(rehearsed):
    inject(rehearsed, tenant_steps(rehearsed))
    return rehearsed


def verify_tenants(rehearsed, *, tenants=TENANTS, as_admin=True, **changes):
    return verify(rehearsed, as_admin=as_admin, outputs=outputs_of(rehearsed, tenants=list(tenants), **changes))


def findings_of(report, check_id: str):
    (result,) = [r for r in report.results if r.check.id == check_id]
    return result.findings


def run_fixes(rehearsed, report) -> None:
    """Every fix of the failing tenant checks, as the admin would run them (umami's own: as umami)."""
    for result in report.results:
        if result.family == "tenants" and result.status == Status.FAIL:
            for finding in result.findings:
                who = ADMIN if finding.fix_as.value == "admin" else UMAMI
                with connect_as(rehearsed, who) as conn:
                    for statement in finding.fix:
                        conn.execute(statement)


def test_clean_three_tenants_pass_every_check(tenants):
    report = verify_tenants(tenants)
    assert failing(report) == {}
    assert {r.check.id: r.status for r in report.results if r.family == "tenants"} == dict.fromkeys(
        TENANT_CHECKS, Status.PASS)
    # The catalog audit's 6 queries, then the matrix's own 4 (areas, relations, functions, row-level
    # security); the principals and default privileges are shared.
    assert report.audit_queries == 10


@dataclass(frozen=True)
class Leak:
    name: str
    steps: list[tuple[str, str]]
    check: str
    evidence: str  # the start of the finding's evidence
    severity: Severity
    also: frozenset[str] = frozenset()  # other checks the same leak trips by nature


LEAKS = [
    Leak("table-grant", [(SUPERUSER, "GRANT SELECT ON tenant_b.orders TO tenant_a")], "TEN-002",
         "SELECT on table tenant_b.orders (schema not usable: latent", Severity.MEDIUM),
    Leak("column-grant", [(SUPERUSER, "GRANT SELECT (total) ON tenant_b.orders TO tenant_a")], "TEN-002",
         "SELECT (total) on table tenant_b.orders (schema not usable: latent", Severity.MEDIUM),
    Leak("sequence-grant", [(SUPERUSER, "GRANT USAGE ON SEQUENCE tenant_b.order_numbers TO tenant_a")], "TEN-003",
         "USAGE on sequence tenant_b.order_numbers", Severity.LOW),
    Leak("schema-usage", [(ADMIN, "GRANT USAGE ON SCHEMA tenant_b TO tenant_a")], "TEN-001",
         "USAGE on schema tenant_b", Severity.MEDIUM),
    Leak("schema-create", [(ADMIN, "GRANT CREATE ON SCHEMA tenant_b TO tenant_a")], "TEN-001",
         "CREATE on schema tenant_b", Severity.HIGH),
    Leak("membership", [(ADMIN, "GRANT tenant_b TO tenant_a")], "TEN-006",
         "member: tenant_a → tenant_b (can act as tenant_b)", Severity.HIGH),
    Leak("membership-set-role", [(ADMIN, "CREATE ROLE bridge NOLOGIN NOINHERIT"), (ADMIN, "GRANT bridge TO tenant_a"),
                                 (ADMIN, "GRANT tenant_b TO bridge")], "TEN-006",
         "member: tenant_a → bridge → tenant_b (by SET ROLE", Severity.HIGH),
    Leak("default-privileges", [(SUPERUSER, "ALTER DEFAULT PRIVILEGES FOR ROLE tenant_b IN SCHEMA tenant_b "
                                            "GRANT SELECT ON TABLES TO tenant_a")], "TEN-005",
         "SELECT on the tables tenant_b creates in schema tenant_b", Severity.HIGH),
    Leak("ownership", [(SUPERUSER, "ALTER TABLE tenant_b.orders OWNER TO tenant_a")], "TEN-007",
         "owns table tenant_b.orders", Severity.HIGH),
    Leak("via-group", [(ADMIN, "CREATE ROLE readers NOLOGIN"), (ADMIN, "GRANT readers TO tenant_a"),
                       (SUPERUSER, "GRANT SELECT ON tenant_b.orders TO readers")], "TEN-002",
         "SELECT on table tenant_b.orders via tenant_a → readers", Severity.MEDIUM),
    Leak("definer-function", [(ADMIN, "GRANT USAGE ON SCHEMA tenant_b TO tenant_a"),
                              (SUPERUSER, "SET ROLE tenant_b; CREATE FUNCTION tenant_b.order_count() RETURNS bigint "
                                          "LANGUAGE sql SECURITY DEFINER AS 'SELECT count(*) FROM tenant_b.orders'; "
                                          "RESET ROLE")], "TEN-004",
         "EXECUTE on tenant_b.order_count() in schema tenant_b via PUBLIC (SECURITY DEFINER: runs as tenant_b)",
         # umami's own view of the same function: latent, as umami cannot use the schema (ISO-023).
         Severity.HIGH, frozenset({"TEN-001", "TEN-013", "ISO-023"})),
]


@pytest.mark.parametrize("leak", LEAKS, ids=lambda leak: leak.name)
def test_each_leak_between_two_tenants_is_reported_with_exactly_that_pair(tenants, leak):
    inject(tenants, leak.steps)
    report = verify_tenants(tenants)
    found = failing(report)
    assert set(found) == {leak.check} | leak.also, found
    (finding,) = findings_of(report, leak.check)
    assert finding.subject == "tenant_a → tenant_b"
    assert finding.evidence.startswith(leak.evidence), finding.evidence
    assert finding.severity == leak.severity
    assert finding.fix and all(statement.endswith(";") for statement in finding.fix)
    assert all(f.subject == "tenant_a → tenant_b" or f.subject.startswith("function ")
               for check in leak.also for f in findings_of(report, check))
    run_fixes(tenants, report)
    assert failing(verify_tenants(tenants)) == {}


def test_a_public_grant_names_every_other_principal_once(tenants):
    inject(tenants, [(SUPERUSER, "GRANT SELECT ON tenant_b.orders TO PUBLIC")])
    report = verify_tenants(tenants)
    (finding,) = findings_of(report, "TEN-002")
    # umami's own view of the same grant is ISO-020's; the application role and the other tenants are the matrix's.
    assert finding.subject == "app_user, tenant_a, tenant_c → tenant_b"
    assert finding.evidence.startswith("SELECT on table tenant_b.orders via PUBLIC (schema not usable")
    assert finding.fix == ('GRANT "tenant_b" TO "postgres";', 'SET ROLE "tenant_b";',
                           'REVOKE SELECT ON TABLE "tenant_b"."orders" FROM PUBLIC;', 'RESET ROLE;',
                           'REVOKE "tenant_b" FROM "postgres";')
    assert {"TEN-002", "ISO-020"} <= set(failing(report))
    assert not {cid for cid in failing(report) if cid.startswith("TEN-")} - {"TEN-002"}
    run_fixes(tenants, report)
    assert failing(verify_tenants(tenants)) == {}


def test_an_application_role_is_a_principal_without_an_area(tenants):
    inject(tenants, [(SUPERUSER, "GRANT INSERT ON tenant_c.orders TO app_user")])
    (finding,) = findings_of(verify_tenants(tenants), "TEN-002")
    assert finding.subject == "app_user → tenant_c" and finding.evidence.startswith("INSERT on table tenant_c.orders")


def test_a_tenant_reaching_umami_is_reported_once(tenants):
    # ISO-060 names every grantee of umami's schema; the matrix leaves that to it.
    inject(tenants, [(ADMIN, "GRANT USAGE ON SCHEMA umami TO tenant_a")])
    found = failing(verify_tenants(tenants))
    assert set(found) == {"ISO-060"} and "tenant_a" in found["ISO-060"][0]
    # An admin-owned table there granted to a tenant is seen by no umami check: the matrix reports it.
    inject(tenants, [(ADMIN, "CREATE TABLE umami.admin_notes (id int)"),
                     (ADMIN, "GRANT SELECT ON umami.admin_notes TO tenant_a")])
    report = verify_tenants(tenants)
    (finding,) = findings_of(report, "TEN-002")
    assert finding.subject == "tenant_a → umami_user"
    assert finding.severity == Severity.CRITICAL  # tenant_a can use umami's schema


def test_row_level_security_posture(tenants):
    inject(tenants, [
        (SUPERUSER, "SET ROLE tenant_c; CREATE TABLE tenant_c.invoices (id int, tenant text); "
                    "ALTER TABLE tenant_c.invoices ENABLE ROW LEVEL SECURITY; "
                    "CREATE POLICY everyone ON tenant_c.invoices USING (true) WITH CHECK (true); "
                    "CREATE TABLE tenant_c.notes (id int, tenant text); "
                    "CREATE POLICY own_rows ON tenant_c.notes USING (tenant = current_user); RESET ROLE"),
    ])
    report = verify_tenants(tenants)
    found = failing(report)
    assert set(found) == {"TEN-010", "TEN-011", "TEN-012"}, found
    assert [f.subject for f in findings_of(report, "TEN-010")] == ["table tenant_c.notes"]
    (forced,) = findings_of(report, "TEN-011")
    assert forced.subject == "table tenant_c.invoices" and "owner tenant_c bypasses" in forced.evidence
    (permissive,) = findings_of(report, "TEN-012")
    assert permissive.subject == "policy everyone on tenant_c.invoices" and not permissive.fix
    assert "USING and WITH CHECK (true)" in permissive.evidence
    run_fixes(tenants, report)
    assert set(failing(verify_tenants(tenants))) == {"TEN-012"}  # only its author can write the predicate


def registry_steps(active=("a", "b"), inactive=("c",)) -> list[tuple[str, str]]:
    rows = [f"('{name}', '{tenant_schema(name)}', {str(name in active).lower()})" for name in (*active, *inactive)]
    return [(ADMIN, "CREATE TABLE public.tenants (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                    "name text UNIQUE NOT NULL, schema_name text UNIQUE NOT NULL, active boolean NOT NULL DEFAULT true, "
                    "created_at timestamptz NOT NULL DEFAULT now())"),
            (ADMIN, "REVOKE ALL ON public.tenants FROM PUBLIC"),
            (ADMIN, f"INSERT INTO public.tenants (name, schema_name, active) VALUES {', '.join(rows)}")]


def test_the_registry_is_the_tenant_list_when_the_outputs_declare_none(tenants):
    inject(tenants, registry_steps() + [(SUPERUSER, "GRANT SELECT ON tenant_b.orders TO tenant_a"),
                                        (SUPERUSER, "GRANT SELECT ON tenant_c.orders TO tenant_a")])
    report = verify_tenants(tenants, tenants=(), tenantRegistry="public.tenants")
    # tenant_c is inactive in the registry: not a principal, its schema not an area.
    assert [f.subject for f in findings_of(report, "TEN-002")] == ["tenant_a → tenant_b"]
    assert report.audit_queries == 11  # the 10 above and the registry


def test_an_unreadable_registry_is_noted(tenants):
    inject(tenants, registry_steps())
    report = verify_tenants(tenants, tenants=(), tenantRegistry="public.tenants", as_admin=False)
    (note,) = findings_of(report, "TEN-001")
    assert note.severity == Severity.INFO
    assert note.evidence.startswith("the tenant registry public.tenants could not be read as umami_user "
                                    "(permission denied for table tenants)")
    assert failing(report) == {}


def test_declared_tenants_without_schema_or_role_are_noted(tenants):
    report = verify_tenants(tenants, tenants=(*TENANTS, "d"))
    assert [f.evidence for f in findings_of(report, "TEN-001")] == ["tenant d: schema tenant_d and role tenant_d not found"]
    assert failing(report) == {}


def test_without_tenants_the_family_is_not_applicable(rehearsed):
    report = verify(rehearsed)
    reasons = {r.reason for r in report.results if r.family == "tenants"}
    assert reasons == {"no tenants: the outputs declare none and configure no tenantRegistry"}
    assert report.audit_queries == 6


def test_audit_as_umami_sees_the_same_pairs(tenants):
    inject(tenants, [(ADMIN, "GRANT tenant_b TO tenant_a"), (SUPERUSER, "GRANT SELECT ON tenant_c.orders TO tenant_b")])
    as_admin, as_umami = verify_tenants(tenants), verify_tenants(tenants, as_admin=False)
    assert failing(as_admin) == failing(as_umami)
    assert {f.subject for f in findings_of(as_umami, "TEN-002")} == {"tenant_a, tenant_b → tenant_c"}


def test_umami_leaks_stay_with_umamis_own_checks(tenants):
    inject(tenants, [(SUPERUSER, "GRANT SELECT ON tenant_a.orders TO umami_user"),
                     (APP, "SELECT 1")])
    found = failing(verify_tenants(tenants))
    assert "ISO-020" in found and not {cid for cid in found if cid.startswith("TEN-")}
