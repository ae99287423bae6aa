"""The rehearsal as the provider, and safe on a real database (issue 10).

Every refused or non-applying path takes a fingerprint (tests/fingerprint.py) before and
after and asserts it unchanged.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ops.rehearse.commands import destroy, rehearse
from tests.conftest import ROOT, rehearse_into
from tests.fingerprint import fingerprint

UNPROTECTED = {"umami:protectStatefulResources": "false"}


def cli(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "ops.rehearse", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def base_args(aurora, tmp_path, *extra):
    return ("--stack", "dev", "--dsn", aurora.admin_dsn(), "--state-root", str(tmp_path), *extra)


# -- never adopt ---------------------------------------------------------------------

@pytest.mark.parametrize("role, expected", [
    ("app_user", "app_user"),  # config validation or the rehearsal: an application role
    ("reporting", "error: umami:roleName=reporting: role reporting already exists and is not in this stack's "
                  "state: the rehearsal never "
                  "adopts it (a real `up` would fail on CREATE ROLE); to adopt it deliberately: "
                  "pulumi import postgresql:index/role:Role umami-role reporting"),
])
def test_an_existing_role_is_refused_before_any_change(aurora, tmp_path, role, expected):
    with aurora.superuser_conn() as conn:
        conn.execute("CREATE ROLE reporting LOGIN PASSWORD 'reporting-secret'")
    before = fingerprint(aurora)
    result = cli(*base_args(aurora, tmp_path, "--set", f"umami:roleName={role}"))
    assert result.returncode == 2 and expected in one_error_line(result)
    assert fingerprint(aurora) == before


def test_the_admin_actually_logged_in_is_refused_as_the_role(aurora, tmp_path):
    """The admin comes from the DSN (or the master secret) at run time, not from config."""
    with aurora.superuser_conn() as conn:
        conn.execute("CREATE ROLE dbadmin LOGIN PASSWORD 'dbadmin-secret' CREATEROLE CREATEDB IN ROLE rds_superuser")
    before = fingerprint(aurora)
    dsn = aurora.cluster.conninfo("dbadmin", "dbadmin-secret", aurora.dbname)
    result = cli("--stack", "dev", "--dsn", dsn, "--state-root", str(tmp_path), "--set", "umami:roleName=dbadmin")
    assert result.returncode == 2
    # Config validation (the secret's user) or, failing that, the rehearsal's run-time check refuses it.
    assert one_error_line(result).startswith("error: umami:roleName=dbadmin is the admin")
    assert fingerprint(aurora) == before


def test_an_existing_non_empty_schema_is_refused_before_any_change(aurora, tmp_path):
    with aurora.superuser_conn() as conn:
        conn.execute("CREATE SCHEMA reports AUTHORIZATION app_user")
        conn.execute("CREATE TABLE reports.daily (day date, hits int)")
        conn.execute("INSERT INTO reports.daily SELECT current_date - g, g FROM generate_series(1, 12) g")
    before = fingerprint(aurora)
    result = cli(*base_args(aurora, tmp_path, "--set", "umami:schemaName=reports"))
    assert result.returncode == 2
    assert one_error_line(result).endswith(
        "to adopt it deliberately: pulumi import postgresql:index/schema:Schema umami-schema appdb.reports")
    assert fingerprint(aurora) == before


# -- state, preview, refresh ------------------------------------------------------------

def test_preview_prints_the_plan_and_changes_nothing(aurora, tmp_path):
    before = fingerprint(aurora)
    result = cli(*base_args(aurora, tmp_path, "--preview"))
    assert result.returncode == 0, result.stderr
    assert "  create  Role umami-role" in result.stdout and "(preview: nothing changed)" in result.stdout
    assert fingerprint(aurora) == before
    state = json.loads((tmp_path / "dev" / "state.json").read_text())
    assert state.get("resources", {}) == {}


def test_state_records_inputs_and_outputs_and_a_removed_resource_is_deleted(aurora, tmp_path):
    first = rehearse_into(aurora, tmp_path)
    state_file = first.result.base / "state.json"
    assert state_file.stat().st_mode & 0o077 == 0
    state = json.loads(state_file.read_text())
    role = next(e for e in state["resources"].values() if e["type"] == "postgresql:index/role:Role")
    assert role["outputs"]["validUntil"] == "infinity" and role["outputs"]["searchPaths"] == ["umami"]
    assert aurora.admin.password not in state_file.read_text()  # the admin password is never pinned
    # A resource in state that the program no longer declares is deleted (after everything else).
    grant_urn = next(u for u, e in state["resources"].items() if e["type"].endswith("grant:Grant"))
    state["resources"][grant_urn.replace("umami-schema-usage", "old-grant")] = {
        **state["resources"][grant_urn], "name": "old-grant", "urn": grant_urn.replace("umami-schema-usage", "old-grant")}
    state["order"].append(grant_urn.replace("umami-schema-usage", "old-grant"))
    state_file.write_text(json.dumps(state))
    again = rehearse("dev", dsn=aurora.admin_dsn(), state_root=tmp_path)
    assert [(c.label, c.action) for c in again.changes if c.action != "same"] == [("Grant old-grant", "delete")]


# -- the provider's SQL ------------------------------------------------------------------

def test_schema_creation_when_the_database_belongs_to_another_role(aurora_foreign_owner, tmp_path):
    """resourcePostgreSQLSchemaCreate grants the admin the database owner's role for the statement.
    pgcrypto's create has no such dance: without CREATE on the database a real `up` fails there, so
    the preflight refuses before any change."""
    aurora = aurora_foreign_owner
    before = fingerprint(aurora)
    refused = cli(*base_args(aurora, tmp_path))
    assert refused.returncode == 2 and one_error_line(refused).startswith(
        "error: the admin postgres cannot create extension pgcrypto in appdb: no CREATE on the database")
    assert fingerprint(aurora) == before
    with aurora.superuser_conn() as conn:
        conn.execute("GRANT CREATE ON DATABASE appdb TO postgres")
    rehearsed = rehearse_into(aurora, tmp_path)
    schema = next(c for c in rehearsed.result.changes if c.label == "Schema umami-schema")
    assert schema.statements == ['GRANT "app_owner" TO "postgres"',
                                 'CREATE SCHEMA IF NOT EXISTS "umami" AUTHORIZATION "postgres"',
                                 'REVOKE "app_owner" FROM "postgres"']
    with aurora.superuser_conn() as conn:
        assert conn.execute("SELECT pg_has_role('postgres', 'app_owner', 'MEMBER')").fetchone() == (False,)
        assert conn.execute("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'umami'"
                            ).fetchone() == ("postgres",)
    with aurora.connect_as(rehearsed.umami) as conn:
        assert conn.execute("SHOW search_path").fetchone() == ("umami",)


def test_role_delete_is_the_providers_sequence(aurora, tmp_path):
    rehearse_into(aurora, tmp_path, UNPROTECTED)
    result = destroy("dev", dsn=aurora.admin_dsn(), state_root=tmp_path, overrides=UNPROTECTED)
    role = next(c for c in result.changes if c.label == "Role umami-role")
    assert role.statements == [
        "SET statement_timeout = 0",
        "SELECT pg_advisory_xact_lock(oid::bigint) FROM pg_roles WHERE rolname = %s  -- 'umami_user'",
        "SELECT pg_advisory_xact_lock(member::bigint) FROM pg_auth_members JOIN pg_roles ON roleid = pg_roles.oid "
        "WHERE rolname = %s  -- 'umami_user'",
        'GRANT "umami_user" TO "postgres"',
        'REASSIGN OWNED BY "umami_user" TO "postgres"',
        'DROP OWNED BY "umami_user"',
        'REVOKE "umami_user" FROM "postgres"',
        'DROP ROLE "umami_user"',
    ]


def test_a_role_rename_fails_as_a_real_up_does_and_refresh_completes_it(aurora, tmp_path):
    """The Role is renamed in place (setRoleName); the Grant, replaced delete-first, then revokes from the old
    name, which no longer exists: a real `pulumi up` fails there too. `up --refresh` drops the stale Grant and
    DefaultPrivileges from state (their Read finds no such role) and creates them for the new name."""
    rehearse_into(aurora, tmp_path)
    renamed = {"umami:roleName": "umami_reader"}
    result = rehearse("dev", dsn=aurora.admin_dsn(), state_root=tmp_path, overrides=renamed)
    assert not result.ok
    actions = {c.label: c.action for c in result.changes}
    assert actions["Role umami-role"] == "update" and actions["Grant umami-schema-usage"] == "failed"
    role = next(c for c in result.changes if c.label == "Role umami-role")
    assert 'ALTER ROLE "umami_user" RENAME TO "umami_reader"' in role.statements
    assert "ALTER ROLE \"umami_reader\" PASSWORD '***'" in role.statements  # setRolePassword on a rename
    grant = next(c for c in result.changes if c.label == "Grant umami-schema-usage")
    assert 'role "umami_user" does not exist' in grant.detail
    fixed = rehearse_into(aurora, tmp_path, renamed, refresh=True)
    assert {c.label for c in fixed.result.drift} >= {"Grant umami-schema-usage"}
    with aurora.connect_as(fixed.umami) as conn:
        assert conn.execute("SELECT current_user, current_setting('search_path')").fetchone() == ("umami_reader", "umami")


def test_a_schema_rename_is_alter_schema_rename_then_the_grant_fails_like_the_provider(aurora, tmp_path):
    rehearse_into(aurora, tmp_path)
    result = rehearse("dev", dsn=aurora.admin_dsn(), state_root=tmp_path, overrides={"umami:schemaName": "analytics"})
    schema = next(c for c in result.changes if c.label == "Schema umami-schema")
    assert schema.action == "update" and schema.statements == ['ALTER SCHEMA "umami" RENAME TO "analytics"']
    grant = next(c for c in result.changes if c.label == "Grant umami-schema-usage")
    assert grant.action == "failed" and "could not find schema 'umami' while looking for owner" in grant.detail
    assert not result.ok


# -- pgcrypto and destroy ------------------------------------------------------------------

def test_pgcrypto_in_public_is_never_changed_across_runs_and_destroy(aurora, tmp_path):
    with aurora.superuser_conn() as conn:
        conn.execute("CREATE EXTENSION pgcrypto SCHEMA public")
    before = fingerprint(aurora, exclude_schema="umami", exclude_role="umami_user")
    first = rehearse_into(aurora, tmp_path, UNPROTECTED)
    second = rehearse_into(aurora, tmp_path, UNPROTECTED, refresh=True)
    pgcrypto = next(c for c in second.result.changes if c.label == "Extension umami-pgcrypto")
    assert pgcrypto.action == "same" and pgcrypto.statements == []
    assert [c.label for c in second.result.changes if c.action != "same"] == []
    result = destroy("dev", dsn=aurora.admin_dsn(), state_root=tmp_path, overrides=UNPROTECTED)
    assert result.ok
    assert [c.action for c in result.changes if c.label == "Extension umami-pgcrypto"] == ["retain"]
    assert fingerprint(aurora, exclude_schema="umami", exclude_role="umami_user") == before
    with aurora.superuser_conn() as conn:
        assert conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pgcrypto'"
                            ).fetchone() == ("public",)
        # The schema is retained (empty: pgcrypto lives in public), as without dropSchemaCascade.
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relnamespace = 'umami'::regnamespace"
                            ).fetchone() == (0,)
    del first


def test_default_destroy_keeps_the_schema_and_the_retained_pgcrypto_and_exits_0(aurora, tmp_path):
    rehearse_into(aurora, tmp_path, UNPROTECTED)
    before = fingerprint(aurora, exclude_schema="umami", exclude_role="umami_user")
    result = cli(*base_args(aurora, tmp_path, "--destroy", "--set", "umami:protectStatefulResources=false"))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "destroy complete" in lines
    kept = [line for line in lines if line.startswith("kept: ")]
    assert kept == [
        "kept: Extension umami-pgcrypto (retainOnDelete: extension pgcrypto in schema umami stays)",
        "kept: Schema umami-schema (retainOnDelete: schema umami stays)",
    ]
    with aurora.superuser_conn() as conn:
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'umami_user'").fetchone() == (0,)
        assert conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension").fetchall() == [("pg_catalog",), ("umami",)]
    assert fingerprint(aurora, exclude_schema="umami", exclude_role="umami_user") == before
    again = cli(*base_args(aurora, tmp_path, "--destroy", "--set", "umami:protectStatefulResources=false"))
    assert again.returncode == 0 and "destroy complete: nothing was in state" in again.stdout


def hold_role(aurora):
    """Another session with an open transaction that changed the umami role (holds its row)."""
    conn = aurora.superuser_conn()
    conn.autocommit = False
    conn.execute("ALTER ROLE umami_user CONNECTION LIMIT 7")
    return conn


def test_a_destroy_stopped_midway_says_what_it_did_and_a_rerun_completes_it(aurora, tmp_path):
    rehearse_into(aurora, tmp_path, UNPROTECTED)
    holder = hold_role(aurora)
    try:
        result = cli(*base_args(aurora, tmp_path, "--destroy", "--lock-timeout", "500",
                                "--set", "umami:protectStatefulResources=false"))
    finally:
        holder.rollback()
        holder.close()
    assert result.returncode == 2
    line = one_error_line(result)
    assert line.startswith("error: destroy stopped at Role umami-role: canceling statement due to lock timeout")
    # Reverse dependency order, ties by type then name (ops.rehearse.plan.dependency_order).
    assert "already done: deleted DefaultPrivileges umami-default-tables, deleted DefaultPrivileges " \
           "umami-default-sequences, deleted Grant umami-schema-usage; rerun the destroy to complete it" in line
    rerun = cli(*base_args(aurora, tmp_path, "--destroy", "--set", "umami:protectStatefulResources=false"))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert [line for line in rerun.stdout.splitlines() if line.startswith("  delete")] == ["  delete  Role umami-role"]
    with aurora.superuser_conn() as conn:
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'umami_user'").fetchone() == (0,)


def test_cascade_is_refused_while_objects_outside_depend_on_the_schema(aurora, tmp_path):
    cascade = {**UNPROTECTED, "umami:dropSchemaCascade": "true"}
    rehearsed = rehearse_into(aurora, tmp_path, cascade)
    with aurora.connect_as(rehearsed.umami) as conn:
        conn.execute("CREATE TABLE umami.website (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text)")
        conn.execute("GRANT SELECT ON umami.website TO app_user")
    with aurora.superuser_conn() as conn:
        conn.execute("GRANT USAGE ON SCHEMA umami TO app_user")
    with aurora.connect_as(aurora.app) as conn:
        conn.execute("CREATE VIEW app.sites AS SELECT name FROM umami.website")
    before = fingerprint(aurora, exclude_schema="umami", exclude_role="umami_user")
    with pytest.raises(Exception, match=r"refused: DROP SCHEMA umami CASCADE would also drop, outside the schema: "
                                        r"view app\.sites"):
        destroy("dev", dsn=aurora.admin_dsn(), state_root=tmp_path, overrides=cascade)
    assert fingerprint(aurora, exclude_schema="umami", exclude_role="umami_user") == before
    with aurora.superuser_conn() as conn:
        assert conn.execute("SELECT count(*) FROM app.sites").fetchone() == (0,)


# -- never hang, never half-apply ------------------------------------------------------------

def test_a_held_lock_is_exit_2_within_the_timeout_with_nothing_applied(aurora, tmp_path):
    rehearse_into(aurora, tmp_path)
    holder = hold_role(aurora)
    try:
        started = time.monotonic()
        result = cli(*base_args(aurora, tmp_path, "--lock-timeout", "500", "--set", "umami:connectionLimit=45"))
        elapsed = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()
    assert result.returncode == 2 and elapsed < 30
    line = one_error_line(result)
    assert line.startswith("error: Role umami-role: canceling statement due to lock timeout (SQLSTATE 55P03); "
                           "rolled back; committed before it: nothing")
    with aurora.superuser_conn() as conn:
        assert conn.execute("SELECT rolconnlimit FROM pg_roles WHERE rolname = 'umami_user'").fetchone() == (44,)


def wait_for_blocked_rehearsal(aurora, process, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with aurora.superuser_conn() as conn:
            if conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'umami-rehearsal' "
                            "AND wait_event_type = 'Lock'").fetchone()[0]:
                return
        assert process.poll() is None, process.communicate()
        time.sleep(0.2)
    raise AssertionError("the rehearsal never blocked")


def test_sigint_rolls_back_the_step_and_a_concurrent_run_is_refused(aurora, tmp_path):
    rehearse_into(aurora, tmp_path)
    before = fingerprint(aurora, exclude_role="umami_user")
    holder = hold_role(aurora)
    process = subprocess.Popen([sys.executable, "-m", "ops.rehearse",
                                *base_args(aurora, tmp_path, "--lock-timeout", "60000", "--set", "umami:connectionLimit=45")],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_blocked_rehearsal(aurora, process)
        second = cli(*base_args(aurora, tmp_path, "--preview"))
        assert second.returncode == 2
        assert "another rehearsal of stack dev is running" in one_error_line(second)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        holder.rollback()
        holder.close()
    assert process.returncode == 130, out + err
    assert err.strip().splitlines() == ["error: interrupted during Role umami-role: that step was rolled back; "
                                        "committed before it: nothing"]
    with aurora.superuser_conn() as conn:
        assert conn.execute("SELECT rolconnlimit FROM pg_roles WHERE rolname = 'umami_user'").fetchone() == (44,)
    assert fingerprint(aurora, exclude_role="umami_user") == before


def test_an_admin_without_createrole_is_refused_before_any_change(aurora, tmp_path):
    with aurora.superuser_conn() as conn:
        conn.execute("ALTER ROLE postgres NOCREATEROLE")
    before = fingerprint(aurora)
    result = cli(*base_args(aurora, tmp_path))
    assert result.returncode == 2
    assert one_error_line(result) == ("error: the admin postgres lacks CREATEROLE: it cannot create Role umami-role; "
                                      "use Aurora's master user (CREATEROLE, rds_superuser)")
    assert fingerprint(aurora) == before


# -- input edges ---------------------------------------------------------------------

def test_a_malformed_stack_file_is_one_line(aurora, tmp_path):
    stack = ROOT / "Pulumi.broken-test.yaml"
    stack.write_text("config:\n  umami:roleName: [unclosed\n")
    try:
        result = cli("--stack", "broken-test", "--dsn", aurora.admin_dsn(), "--state-root", str(tmp_path))
    finally:
        stack.unlink()
    assert result.returncode == 2
    assert one_error_line(result).startswith("error: Pulumi.broken-test.yaml is not valid YAML at line 3")


@pytest.mark.parametrize("stack, message", [
    ("../x", "error: --stack '../x' is not a stack name"),
    ("prod", "error: no stack file Pulumi.prod.yaml in"),
])
def test_a_bad_stack_is_refused_before_anything_starts(tmp_path, stack, message):
    result = cli("--stack", stack, "--state-root", str(tmp_path), timeout=30)
    assert result.returncode == 2 and one_error_line(result).startswith(message)
    assert not (tmp_path / "x").exists() and list(tmp_path.iterdir()) == []


def test_dsn_password_from_pgpassword_or_the_passfile(aurora, tmp_path):
    bare = aurora.cluster.conninfo(aurora.admin.user, "", aurora.dbname).replace("password=''", "")
    assert "password" not in bare
    result = cli("--stack", "dev", "--dsn", bare, "--state-root", str(tmp_path), "--preview",
                 env={"PGPASSWORD": aurora.admin.password})
    assert result.returncode == 0, result.stderr
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{aurora.port}:*:{aurora.admin.user}:{aurora.admin.password}\n")
    passfile.chmod(0o600)
    result = cli("--stack", "dev", "--dsn", bare, "--state-root", str(tmp_path), "--preview",
                 env={"PGPASSWORD": "", "PGPASSFILE": str(passfile)})
    assert result.returncode == 0, result.stderr
    assert aurora.admin.password not in result.stdout + result.stderr


def test_the_rehearsal_survives_an_admin_password_rotation(aurora, tmp_path):
    rehearse_into(aurora, tmp_path)
    with aurora.superuser_conn() as conn:
        conn.execute("ALTER ROLE postgres PASSWORD 'rotated-by-secrets-manager-1'")
    aurora.admin.password = "rotated-by-secrets-manager-1"
    again = rehearse_into(aurora, tmp_path)
    assert {c.action for c in again.result.changes} == {"same"}
