"""Schema-per-tenant on a real PostgreSQL 15: the rehearsal creates each tenant's schema, role, grant and
default privileges as the provider would, fills the tenant registry, and refuses a collision before any
change. Live logins prove that each tenant role works in its own schema only."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg
import pytest

from ops.core.errors import OpsError
from ops.rehearse.checks import check_rehearsal
from ops.rehearse.commands import destroy, rehearse
from ops.rehearse.stack import stored_logins
from tests.conftest import ROOT
from tests.fingerprint import fingerprint
from tests.verify_support import error_line

TENANTS = ("acme", "globex", "initech")
SERVICE_ROLE = "tenant_service"
SERVICE_PASSWORD = "tenant-service-secret"
CONFIG = {"umami:tenants": json.dumps(list(TENANTS)), "umami:tenantRegistry": "public.tenants",
          "umami:tenantServiceRole": SERVICE_ROLE}
INSUFFICIENT = "42501"


def create_service_role(aurora) -> None:
    with aurora.superuser_conn() as conn:
        conn.execute(f"CREATE ROLE {SERVICE_ROLE} LOGIN PASSWORD '{SERVICE_PASSWORD}'")


def rehearse_tenants(aurora, tmp_path, **overrides):
    result = rehearse("dev", dsn=aurora.admin_dsn(), state_root=tmp_path, overrides={**CONFIG, **overrides})
    assert result.ok, [f"{c.label}: {c.detail}" for c in result.changes if c.action == "failed"]
    return result


@pytest.fixture
def tenanted(aurora, tmp_path):
    create_service_role(aurora)
    return aurora, rehearse_tenants(aurora, tmp_path), tmp_path


def login(aurora, result, role: str) -> psycopg.Connection:
    return aurora.cluster.connect(role, stored_logins(result.run)[role], aurora.dbname, autocommit=True)


def sqlstate_of(conn: psycopg.Connection, statement: str) -> str | None:
    """Run `statement` in a transaction that is rolled back; the SQLSTATE it failed with, or None."""
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(statement)
    except psycopg.Error as exc:
        return exc.sqlstate
    return None


# -- what the rehearsal creates -------------------------------------------------------------

def test_each_tenant_has_a_hardened_role_and_a_schema_the_admin_owns(tenanted):
    aurora, result, _ = tenanted
    with aurora.superuser_conn() as conn:
        roles = {r[0]: r[1:] for r in conn.execute(
            "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin, "
            "rolinherit, rolconnlimit, rolconfig, (SELECT count(*) FROM pg_auth_members WHERE member = r.oid) "
            "FROM pg_roles r WHERE rolname LIKE 'tenant\\_%%' AND rolname <> %s", (SERVICE_ROLE,)).fetchall()}
        schemas = dict(conn.execute("SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace "
                                    "WHERE nspname LIKE 'tenant\\_%'").fetchall())
        grants = conn.execute(
            "SELECT n.nspname, pg_get_userbyid(a.grantee), a.privilege_type FROM pg_namespace n, aclexplode(n.nspacl) a "
            "WHERE n.nspname LIKE 'tenant\\_%' AND a.grantee <> n.nspowner ORDER BY 1, 3").fetchall()
        defaults = conn.execute(
            "SELECT n.nspname, d.defaclobjtype, pg_get_userbyid(d.defaclrole), pg_get_userbyid(a.grantee), "
            "string_agg(a.privilege_type, ',' ORDER BY a.privilege_type) FROM pg_default_acl d "
            "JOIN pg_namespace n ON n.oid = d.defaclnamespace, aclexplode(d.defaclacl) a "
            "WHERE n.nspname LIKE 'tenant\\_%' GROUP BY 1, 2, 3, 4 ORDER BY 1, 2").fetchall()
    expected = [f"tenant_{t}" for t in TENANTS]
    assert sorted(roles) == expected and sorted(schemas) == expected
    for name in expected:
        # nothing dangerous, LOGIN and INHERIT, the tenants' own connection limit, no membership
        assert roles[name][:8] == (False, False, False, False, False, True, True, 5), name
        assert sorted(roles[name][8]) == sorted([f"search_path={name}", "statement_timeout=30000",
                                                 "idle_in_transaction_session_timeout=60000"])
        assert roles[name][9] == 0
        assert schemas[name] == aurora.admin.user
    assert grants == [(name, name, privilege) for name in expected for privilege in ("CREATE", "USAGE")]
    assert defaults == [row for name in expected for row in (
        (name, "S", aurora.admin.user, name, "SELECT,UPDATE,USAGE"),
        (name, "r", aurora.admin.user, name, "DELETE,INSERT,REFERENCES,SELECT,TRIGGER,TRUNCATE,UPDATE"))]
    # The provider's statements, as for Umami's role and schema, and no Umami-specific one.
    statements = [s for c in result.changes if "tenant-acme" in c.label for s in c.statements]
    assert any(s.startswith('CREATE ROLE "tenant_acme" WITH ENCRYPTED PASSWORD \'***\'') for s in statements)
    assert 'CREATE SCHEMA IF NOT EXISTS "tenant_acme" AUTHORIZATION "postgres"' in statements
    assert not any("EXTENSION" in s for s in statements)


def test_each_tenant_role_works_in_its_own_schema_and_reaches_no_other(tenanted):
    aurora, result, _ = tenanted
    with login(aurora, result, "tenant_acme") as acme:
        acme.execute("CREATE TABLE orders (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), total int)")
        acme.execute("INSERT INTO orders (total) VALUES (42)")
        assert acme.execute("SELECT current_schema, count(*) FROM orders GROUP BY 1").fetchone() == ("tenant_acme", 1)
    with aurora.connect_as(aurora.admin, autocommit=True) as admin:  # the admin's table: default privileges
        admin.execute("CREATE TABLE tenant_globex.invoices (id serial PRIMARY KEY, total int)")
    with login(aurora, result, "tenant_globex") as globex:
        globex.execute("INSERT INTO tenant_globex.invoices (total) VALUES (7)")  # its own schema: usable
        assert sqlstate_of(globex, "SELECT * FROM tenant_acme.orders") == INSUFFICIENT
        assert sqlstate_of(globex, "CREATE TABLE tenant_acme.stolen (x int)") == INSUFFICIENT
        assert sqlstate_of(globex, "INSERT INTO tenant_acme.orders (total) VALUES (1)") == INSUFFICIENT
        assert sqlstate_of(globex, "SET ROLE tenant_acme") == INSUFFICIENT
        assert sqlstate_of(globex, "CREATE TABLE public.stolen (x int)") == INSUFFICIENT
        assert sqlstate_of(globex, "SELECT * FROM app.customers") == INSUFFICIENT
    with login(aurora, result, "tenant_acme") as acme:
        assert sqlstate_of(acme, "SELECT * FROM tenant_globex.invoices") == INSUFFICIENT
        assert sqlstate_of(acme, "SELECT * FROM umami.nothing_here") == INSUFFICIENT
    with login(aurora, result, "umami_user") as umami:
        assert sqlstate_of(umami, "SELECT * FROM tenant_acme.orders") == INSUFFICIENT


def test_the_registry_lists_the_tenants_and_only_the_service_role_reads_it(tenanted):
    aurora, result, _ = tenanted
    assert result.registry is not None and result.registry.applied
    with aurora.connect_as(aurora.admin, autocommit=True) as admin:
        rows = admin.execute("SELECT name, schema_name, active FROM public.tenants ORDER BY id").fetchall()
        columns = admin.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                                "WHERE attrelid = 'public.tenants'::regclass AND attnum > 0 ORDER BY attnum").fetchall()
    assert rows == [(t, f"tenant_{t}", True) for t in TENANTS]
    assert columns == [("id", "bigint"), ("name", "text"), ("schema_name", "text"), ("active", "boolean"),
                       ("created_at", "timestamp with time zone")]
    with aurora.cluster.connect(SERVICE_ROLE, SERVICE_PASSWORD, aurora.dbname, autocommit=True) as service:
        assert len(service.execute("SELECT id, name, schema_name, active, created_at FROM public.tenants").fetchall()) == 3
        assert sqlstate_of(service, "INSERT INTO public.tenants (name, schema_name) VALUES ('x', 'tenant_x')") \
            == INSUFFICIENT
        assert sqlstate_of(service, "UPDATE public.tenants SET active = false") == INSUFFICIENT
    for role in ("tenant_acme", "umami_user"):
        with login(aurora, result, role) as conn:
            assert sqlstate_of(conn, "SELECT * FROM public.tenants") == INSUFFICIENT, role
    with aurora.connect_as(aurora.app) as app:
        assert sqlstate_of(app, "SELECT * FROM public.tenants") == INSUFFICIENT


def test_the_admins_default_privileges_do_not_leak_the_registry(aurora, tmp_path):
    create_service_role(aurora)
    with aurora.connect_as(aurora.admin, autocommit=True) as admin:
        admin.execute("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO app_user")
        admin.execute("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO PUBLIC")
    result = rehearse_tenants(aurora, tmp_path)
    assert 'REVOKE ALL ON TABLE "public"."tenants" FROM "app_user" CASCADE' in result.registry.statements
    assert 'REVOKE ALL ON SEQUENCE "public"."tenants_id_seq" FROM PUBLIC CASCADE' in result.registry.statements
    with aurora.connect_as(aurora.app) as app:
        assert sqlstate_of(app, "SELECT * FROM public.tenants") == INSUFFICIENT
        assert sqlstate_of(app, "SELECT last_value FROM public.tenants_id_seq") == INSUFFICIENT
    assert rehearse_tenants(aurora, tmp_path).registry.statements == ()


def test_a_second_rehearsal_changes_nothing(tenanted):
    aurora, _, state_root = tenanted
    before = fingerprint(aurora)
    again = rehearse_tenants(aurora, state_root)
    assert {c.action for c in again.changes} == {"same"}
    assert len(again.changes) == 6 + 5 * len(TENANTS)  # Umami's role, schema, grant, 2 defaults, pgcrypto
    assert again.registry.statements == () and "in step with the stack" in again.registry.lines()[-1]
    assert fingerprint(aurora) == before


def test_the_closing_checks_prove_every_tenant_role_works(tenanted, capsys):
    _, result, _ = tenanted
    assert check_rehearsal(result) == 0
    shown = capsys.readouterr().out
    for tenant in TENANTS:
        assert f"PASS  tenant_{tenant}: work in own schema: search_path=tenant_{tenant}; table created in " \
               f"tenant_{tenant}; 1 row" in shown
    assert "isolation confirmed:" in shown


def test_a_tenant_the_stack_no_longer_declares_loses_its_role_keeps_its_schema_and_is_inactive(tenanted):
    aurora, _, state_root = tenanted
    unprotected = {"umami:protectStatefulResources": "false"}
    rehearse_tenants(aurora, state_root, **unprotected)  # protection off in state first, as `pulumi up` needs
    result = rehearse_tenants(aurora, state_root, **unprotected, **{"umami:tenants": '["acme", "globex"]'})
    deleted = sorted(c.label for c in result.changes if c.action == "delete")
    assert deleted == ["DefaultPrivileges tenant-initech-default-sequences", "DefaultPrivileges tenant-initech-default-tables",
                       "Grant tenant-initech-schema-usage", "Role tenant-initech-role"]
    assert [c.label for c in result.changes if c.action == "retain"] == ["Schema tenant-initech-schema"]
    with aurora.connect_as(aurora.admin, autocommit=True) as admin:
        assert admin.execute("SELECT 1 FROM pg_roles WHERE rolname = 'tenant_initech'").fetchone() is None
        assert admin.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'tenant_initech'").fetchone()
        assert admin.execute("SELECT name, active FROM public.tenants ORDER BY id").fetchall() == [
            ("acme", True), ("globex", True), ("initech", False)]
    assert result.registry.inactive == ("initech",)


def test_a_destroy_drops_every_tenant_role_and_keeps_each_schema_with_its_data(aurora, tmp_path):
    """Each role's delete guard looks at its own schema: what a tenant owns there is no reason to refuse."""
    create_service_role(aurora)
    unprotected = {"umami:protectStatefulResources": "false"}
    result = rehearse_tenants(aurora, tmp_path, **unprotected)
    for tenant in TENANTS:
        with login(aurora, result, f"tenant_{tenant}") as conn:
            conn.execute("CREATE TABLE notes (body text)")
            conn.execute("INSERT INTO notes VALUES ('kept')")
    destroyed = destroy("dev", dsn=aurora.admin_dsn(), state_root=tmp_path, overrides={**CONFIG, **unprotected})
    assert destroyed.ok, [(c.label, c.detail) for c in destroyed.changes]
    assert sorted(k.split(" (")[0] for k in destroyed.kept if "tenant" in k) == [
        f"Schema tenant-{t}-schema" for t in TENANTS]
    with aurora.superuser_conn() as conn:
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'tenant\\_%' "
                            f"AND rolname <> '{SERVICE_ROLE}'").fetchone() == (0,)
        for tenant in TENANTS:  # REASSIGN OWNED handed the tenant's table to the admin, data intact
            assert conn.execute(f"SELECT pg_get_userbyid(relowner), (SELECT body FROM tenant_{tenant}.notes) "
                                f"FROM pg_class WHERE oid = 'tenant_{tenant}.notes'::regclass").fetchone() == (
                aurora.admin.user, "kept")


def test_a_preview_shows_the_registry_statements_and_changes_nothing(aurora, tmp_path):
    create_service_role(aurora)
    before = fingerprint(aurora)
    preview = rehearse("dev", dsn=aurora.admin_dsn(), state_root=tmp_path, overrides=CONFIG, preview=True)
    assert preview.registry is not None and not preview.registry.applied
    assert preview.registry.statements[0].startswith('CREATE TABLE "public"."tenants" (id bigint GENERATED ALWAYS')
    assert preview.registry.statements[1:] == (
        'GRANT SELECT ON TABLE "public"."tenants" TO "tenant_service"',
        """INSERT INTO "public"."tenants" (name, schema_name) VALUES ('acme', 'tenant_acme'), """
        """('globex', 'tenant_globex'), ('initech', 'tenant_initech')""")
    assert fingerprint(aurora) == before


# -- refused before any change ----------------------------------------------------------------

@pytest.mark.parametrize("existing", ["CREATE ROLE tenant_initech LOGIN", "CREATE SCHEMA tenant_initech AUTHORIZATION app_user"])
def test_a_tenant_colliding_with_an_existing_role_or_schema_changes_nothing(aurora, tmp_path, existing):
    create_service_role(aurora)
    with aurora.superuser_conn() as conn:
        conn.execute(existing)
    before = fingerprint(aurora)
    result = cli("--stack", "dev", "--dsn", aurora.admin_dsn(), "--state-root", str(tmp_path),
                 *(f"--set={k}={v}" for k, v in CONFIG.items()))
    assert result.returncode == 2, result.stdout
    line = one_error_line(result)
    kind = "role" if "ROLE" in existing else "schema"
    assert line.startswith(f"error: umami:tenants=initech (tenant_initech): {kind} tenant_initech already exists")
    assert "the rehearsal never adopts it" in line
    assert fingerprint(aurora) == before


def test_every_colliding_tenant_is_named_in_the_one_line(aurora, tmp_path):
    create_service_role(aurora)
    with aurora.superuser_conn() as conn:
        conn.execute("CREATE ROLE tenant_acme NOLOGIN")
        conn.execute("CREATE SCHEMA tenant_globex AUTHORIZATION app_user")
    before = fingerprint(aurora)
    with pytest.raises(OpsError) as error:
        rehearse("dev", dsn=aurora.admin_dsn(), state_root=tmp_path, overrides=CONFIG)
    line = str(error.value)
    assert line.startswith("umami:tenants=acme (tenant_acme): role tenant_acme already exists") and "\n" not in line
    assert line.endswith("(also refused: umami:tenants=globex (tenant_globex))")
    assert fingerprint(aurora) == before


def test_a_tenant_that_is_an_application_role_is_refused_before_any_change(aurora, tmp_path):
    with aurora.superuser_conn() as conn:
        conn.execute("CREATE ROLE tenant_legacy LOGIN")
    before = fingerprint(aurora)
    with pytest.raises(OpsError) as error:
        rehearse("dev", dsn=aurora.admin_dsn(), state_root=tmp_path, overrides={
            "umami:tenants": '["legacy"]', "umami:applicationRoles": '["app_user", "tenant_legacy"]'})
    assert str(error.value).startswith("umami:tenants=legacy gives schema and role tenant_legacy, which is an "
                                       "application role (umami:applicationRoles)")
    assert fingerprint(aurora) == before


def test_a_registry_without_its_service_role_is_refused_before_any_change(aurora, tmp_path):
    before = fingerprint(aurora)
    with pytest.raises(OpsError, match=f"^umami:tenantServiceRole={SERVICE_ROLE}: role {SERVICE_ROLE} does not "
                                       "exist; create the service's role first"):
        rehearse("dev", dsn=aurora.admin_dsn(), state_root=tmp_path, overrides=CONFIG)
    assert fingerprint(aurora) == before


# -- python -m ops.tenants registry --------------------------------------------------------------

def test_the_registry_command_plans_applies_and_then_finds_nothing_to_do(tenanted):
    aurora, result, _ = tenanted
    outputs = str(result.outputs_path)
    with aurora.connect_as(aurora.admin, autocommit=True) as admin:  # drift a DBA might cause
        admin.execute("DELETE FROM public.tenants WHERE name = 'globex'")
        admin.execute("GRANT SELECT ON public.tenants TO PUBLIC")
        admin.execute("GRANT SELECT (name) ON public.tenants TO app_user")
    env = {"PGPASSFILE": str(result.base / "pgpass")}
    planned = tenants_cli("registry", "--outputs", outputs, env=env)
    assert planned.returncode == 1, planned.stderr
    assert [line.strip() for line in planned.stdout.splitlines()[1:-1]] == [
        'REVOKE ALL ON TABLE "public"."tenants" FROM PUBLIC CASCADE',
        'REVOKE ALL ON TABLE "public"."tenants" FROM "app_user" CASCADE',
        """INSERT INTO "public"."tenants" (name, schema_name) VALUES ('globex', 'tenant_globex')"""]
    assert "plan only, nothing changed" in planned.stdout
    applied = tenants_cli("registry", "--outputs", outputs, "--apply", env=env)
    assert applied.returncode == 0, applied.stderr
    assert "applied 3 statement(s): 3 active tenant(s): acme, globex, initech" in applied.stdout
    with aurora.connect_as(aurora.app) as app:
        assert sqlstate_of(app, "SELECT name FROM public.tenants") == INSUFFICIENT
    again = tenants_cli("registry", "--outputs", outputs, env=env)
    assert again.returncode == 0 and "in step with the stack, nothing to change" in again.stdout


def test_the_registry_command_refuses_a_table_that_is_not_a_registry(aurora, tmp_path):
    create_service_role(aurora)
    result = rehearse_tenants(aurora, tmp_path)
    with aurora.connect_as(aurora.admin, autocommit=True) as admin:
        admin.execute("DROP TABLE public.tenants")
        admin.execute("CREATE TABLE public.tenants (id int, label text)")
    before = fingerprint(aurora)
    refused = tenants_cli("registry", "--outputs", str(result.outputs_path), "--apply",
                          env={"PGPASSFILE": str(result.base / "pgpass")})
    assert refused.returncode == 2
    assert one_error_line(refused) == ("error: umami:tenantRegistry=public.tenants: public.tenants exists but is not "
                                       "a tenant registry (lacks name, schema_name, active, created_at); name another "
                                       "table")
    assert fingerprint(aurora) == before


# -- helpers ----------------------------------------------------------------------------------

def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "ops.rehearse", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=_env(env))


def tenants_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "ops.tenants", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=_env(env))


def _env(extra):
    return {**{k: v for k, v in os.environ.items() if k not in ("UMAMI_ADMIN_DSN", "UMAMI_DB_PASSWORD")},
            **(extra or {})}


def one_error_line(result) -> str:
    """The one `error:` line of a run that could not happen (progress lines aside), no traceback."""
    return error_line(result.stderr)
