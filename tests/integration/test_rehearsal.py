"""The rehearsal itself: idempotence, destroy safety, the throwaway cluster and the CLI."""

import json
import subprocess
import sys

import pytest

from ops.rehearse.commands import destroy, rehearse
from tests.conftest import ROOT, rehearse_into
from tests.umami_like import run_umami_like_migrations

UNPROTECTED = {"umami:protectStatefulResources": "false"}


def app_snapshot(aurora):
    """Everything outside umami that destroy must leave alone."""
    with aurora.superuser_conn() as conn:
        return {
            "customers": conn.execute("SELECT count(*), sum(length(email)) FROM app.customers").fetchone(),
            "settings": conn.execute("SELECT * FROM public.settings ORDER BY key").fetchall(),
            "roles": conn.execute("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname IN ('app_user', 'postgres') ORDER BY 1").fetchall(),
            "extensions": conn.execute("SELECT extname, extnamespace::regnamespace::text FROM pg_extension ORDER BY 1").fetchall(),
            "public_acl": conn.execute("SELECT nspacl::text FROM pg_namespace WHERE nspname = 'public'").fetchone(),
            "app_acl": conn.execute("SELECT relname, relacl::text FROM pg_class WHERE relnamespace = 'app'::regnamespace ORDER BY 1").fetchall(),
        }


def test_second_rehearsal_changes_nothing(aurora, tmp_path):
    first = rehearse_into(aurora, tmp_path)
    assert {c.action for c in first.result.changes} == {"create"}
    second = rehearse_into(aurora, tmp_path)
    assert [(c.label, c.action) for c in second.result.changes if c.action != "same"] == []
    assert len(second.result.changes) == 6
    assert second.umami.password == first.umami.password


def test_drift_is_invisible_without_refresh_and_repaired_with_it(aurora, tmp_path):
    """`pulumi up` diffs against its state; only `--refresh` reads the catalog first."""
    rehearse_into(aurora, tmp_path)
    with aurora.superuser_conn() as conn:
        conn.execute("ALTER ROLE umami_user CONNECTION LIMIT 50 CREATEDB")
        conn.execute("REVOKE CREATE ON SCHEMA umami FROM umami_user")
    again = rehearse_into(aurora, tmp_path)
    assert {c.action for c in again.result.changes} == {"same"} and again.result.drift == []
    with aurora.superuser_conn() as conn:  # the drift is still there: a real `up` never saw it
        assert conn.execute("SELECT rolconnlimit, rolcreatedb FROM pg_roles WHERE rolname = 'umami_user'").fetchone() == (50, True)
    refreshed = rehearse_into(aurora, tmp_path, refresh=True)
    drift = {c.label: c.detail for c in refreshed.result.drift}
    assert drift == {"Role umami-role": "connectionLimit: 44 -> 50; createDatabase: false -> true",
                     "Grant umami-schema-usage": 'privileges: ["USAGE", "CREATE"] -> ["USAGE"]'}
    changed = {c.label: c.action for c in refreshed.result.changes if c.action != "same"}
    assert changed == {"Role umami-role": "update", "Grant umami-schema-usage": "update"}
    role = next(c for c in refreshed.result.changes if c.label == "Role umami-role")
    assert 'ALTER ROLE "umami_user" CONNECTION LIMIT 44' in role.statements
    assert 'ALTER ROLE "umami_user" WITH NOCREATEDB' in role.statements
    with aurora.superuser_conn() as conn:
        assert conn.execute("SELECT rolconnlimit, rolcreatedb FROM pg_roles WHERE rolname = 'umami_user'").fetchone() == (44, False)


def test_destroy_leaves_the_application_and_a_shared_pgcrypto_untouched(aurora, tmp_path):
    with aurora.superuser_conn() as conn:
        conn.execute("CREATE EXTENSION pgcrypto SCHEMA public")
    before = app_snapshot(aurora)
    rehearsed = rehearse_into(aurora, tmp_path, UNPROTECTED)
    pgcrypto = next(c for c in rehearsed.result.changes if c.label == "Extension umami-pgcrypto")
    # The provider's Create runs and does nothing; its Read records where pgcrypto really is.
    assert pgcrypto.action == "create" and "already installed in schema public" in pgcrypto.detail
    changes, ok = destroy("dev", dsn=aurora.admin_dsn(), state_root=tmp_path, overrides=UNPROTECTED)
    assert ok, [(c.label, c.detail) for c in changes]
    assert app_snapshot(aurora) == before
    with aurora.superuser_conn() as conn:
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'umami_user'").fetchone()[0] == 0
        # Without dropSchemaCascade the schema is retained (empty here), as `pulumi destroy` keeps it.
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relnamespace = 'umami'::regnamespace"
                            ).fetchone()[0] == 0
        assert "umami-schema" in " ".join(f"{c.label} {c.action}" for c in changes if c.action == "retain")
        assert conn.execute("SELECT count(*) FROM pg_default_acl").fetchone()[0] == 0


def test_destroy_refuses_protected_resources_and_changes_nothing(rehearsed):
    aurora = rehearsed.aurora
    before = app_snapshot(aurora)
    with pytest.raises(Exception, match="is protected \\(umami:protectStatefulResources=true\\)"):
        destroy("dev", dsn=aurora.admin_dsn(), state_root=rehearsed.result.base.parent)
    assert app_snapshot(aurora) == before
    with aurora.connect_as(rehearsed.umami) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "umami_user"


def test_destroy_keeps_umami_data_unless_cascade_is_asked_for(aurora, tmp_path):
    rehearsed = rehearse_into(aurora, tmp_path, UNPROTECTED)
    with aurora.connect_as(rehearsed.umami) as conn:
        run_umami_like_migrations(conn)
    changes, ok = destroy("dev", dsn=aurora.admin_dsn(), state_root=tmp_path, overrides=UNPROTECTED)
    assert ok, [(c.label, c.detail) for c in changes]
    assert {c.label for c in changes if c.action == "retain"} == {"Schema umami-schema", "Extension umami-pgcrypto"}
    with aurora.superuser_conn() as conn:  # the data survives, now owned by the admin
        assert conn.execute("SELECT count(*), pg_get_userbyid(max(relowner::int)::oid) FROM pg_class "
                            "WHERE relname = 'website_event'").fetchone() == (1, "postgres")


def test_destroy_with_cascade_drops_the_schema_and_its_data(aurora, tmp_path):
    cascade = {**UNPROTECTED, "umami:dropSchemaCascade": "true"}
    rehearsed = rehearse_into(aurora, tmp_path, cascade)
    with aurora.connect_as(rehearsed.umami) as conn:
        run_umami_like_migrations(conn)
    changes, ok = destroy("dev", dsn=aurora.admin_dsn(), state_root=tmp_path, overrides=cascade)
    assert ok, [(c.label, c.detail) for c in changes]
    with aurora.superuser_conn() as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'umami'").fetchone() == (0,)


def test_throwaway_cluster_rehearsal_end_to_end(tmp_path, capsys):
    result = rehearse("dev", state_root=tmp_path)
    try:
        assert result.ok and result.db.local is not None
        outputs = json.loads(result.outputs_path.read_text())
        assert outputs["dbHost"] == "127.0.0.1" and outputs["rehearsal"] is True
        assert (tmp_path / "dev" / "state.json").stat().st_mode & 0o077 == 0
        password = result.run.one("postgresql:index/role:Role").inputs["password"]
        for name in ("outputs.json", "manifest.json"):
            assert password not in (tmp_path / "dev" / name).read_text()
        again = rehearse("dev", state_root=tmp_path)
        assert {c.action for c in again.changes} == {"same"}
    finally:
        result.db.local.stop()


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "ops.rehearse", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_cli_rehearses_and_confirms_isolation(aurora, tmp_path):
    out = tmp_path / "outputs.json"
    result = run_cli("--stack", "dev", "--dsn", aurora.admin_dsn(), "--write-outputs", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.rstrip().splitlines()[-1]
    assert last.startswith("isolation confirmed: umami_user has no SUPERUSER")
    assert "residual channels no grant can prevent: LISTEN/NOTIFY, advisory locks, long transactions, " \
           "catalog disclosure (RES-001..RES-004)" in last
    assert last.endswith("temporary tables, CONNECT to other databases (ISO-027, ISO-028)")
    assert "CREATE ROLE \"umami_user\" WITH ENCRYPTED PASSWORD '***' VALID UNTIL 'infinity' CONNECTION LIMIT" in result.stdout
    assert aurora.admin.password not in result.stdout + result.stderr
    assert json.loads(out.read_text())["dbSchema"] == "umami"


@pytest.mark.parametrize("args, message", [
    (["--set", "umami:connectionLimit=0"], "error: umami:connectionLimit=0 is out of range; use 1-500"),
    (["--set", "schemaName=public"], "error: umami:schemaName=public is a shared schema; use a dedicated schema such as umami"),
    (["--set", "oops"], "error: --set 'oops' is not KEY=VALUE (e.g. --set umami:schemaName=analytics)"),
])
def test_cli_bad_input_is_one_line_exit_2(aurora, args, message):
    result = run_cli("--stack", "dev", "--dsn", aurora.admin_dsn(), *args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [message]


def test_cli_unreachable_database_is_exit_2(tmp_path):
    result = run_cli("--stack", "dev", "--dsn", "postgresql://postgres:hunter2@127.0.0.1:1/appdb?sslmode=disable")
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: cannot connect to postgres@127.0.0.1:1/appdb: connection failed:")
    assert "hunter2" not in result.stderr


def test_cli_wrong_admin_password_is_exit_2_and_changes_nothing(aurora):
    dsn = aurora.cluster.conninfo(aurora.admin.user, "not-the-password", aurora.dbname)
    result = run_cli("--stack", "dev", "--dsn", dsn)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "password authentication failed" in line and "not-the-password" not in line
    with aurora.superuser_conn() as conn:
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'umami_user'").fetchone()[0] == 0
