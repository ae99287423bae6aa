"""The deploy task's database steps against the TLS-only cluster, with Umami's pinned driver (driver/):

- its connection: the URL the deploy container builds (the stored DATABASE_URL plus
  `options=-c statement_timeout=0`) runs without the role's 30 s statement_timeout, the stored URL
  keeps it, and Prisma's migration engine (over node-postgres) finishes a migration that outlasts
  the role's timeout only on the deploy URL;
- the admin rotation (driver/rotate-admin.mjs, run as the container runs it: `node --input-type=module
  -e "$UMAMI_ROTATE_ADMIN_SCRIPT"`): Umami's default admin hash is replaced by the stack's (whose
  password then checks with bcrypt), a second run changes nothing, a password the team set is never
  overwritten, and failures are one line without secrets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import bcrypt
import pytest
from psycopg import sql

from components.service_parts.container import (ADMIN_HASH_VARIABLE, DEFAULT_ADMIN_HASH_VARIABLE,
                                                MIGRATION_URL_PARAMETER, ROTATION_SCRIPT_VARIABLE,
                                                rotation_script)
from components.shared import bcrypt_hash
from facts import UMAMI_ADMIN_USERNAME, UMAMI_DEFAULT_ADMIN_PASSWORD_HASH
from ops.engine.umami_env import write_umami_env
from tests.conftest import ROOT
from tests.umami_like import run_umami_like_migrations

DRIVER = ROOT / "driver"
SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
REPLACED = "admin password replaced"
LEFT = "admin password already changed: left as is"
NO_ADMIN = "no admin user"


@pytest.fixture(scope="module", autouse=True)
def driver_installed():
    if not shutil.which("node"):
        pytest.fail("node is not installed: the deploy step's tests need node 20+ (install nodejs)")
    missing = [p for p in ("pg", "@prisma/adapter-pg") if not (DRIVER / "node_modules" / p / "package.json").exists()]
    if missing:
        pytest.fail(f"driver/node_modules lacks {', '.join(missing)}: run `make install` (npm ci --prefix driver)")


def deploy_url(url: str) -> str:
    """What the deploy container's command makes of DATABASE_URL (container.deploy_command; run under
    /bin/sh in tests/unit/test_deploy_step.py)."""
    return f"{url}{'&' if '?' in url else '?'}{MIGRATION_URL_PARAMETER}"


def container_env(rehearsed, folder: Path) -> dict[str, str]:
    """The stored container environment with the CA rewritten to a local copy (ops.engine.umami_env)."""
    return write_umami_env(rehearsed.result.run, folder / "umami.env")


def node(args: list[str], env: dict[str, str], cwd: Path = DRIVER) -> subprocess.CompletedProcess:
    return subprocess.run(args, env={"PATH": os.environ["PATH"], **env}, cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def stored_admin_login(rehearsed) -> dict[str, str]:
    """The admin login document the program stored in Secrets Manager (real random values in a rehearsal)."""
    version = next(v for v in rehearsed.result.run.by_type(SECRET_VERSION) if v.name == "umami-admin-login-value")
    return json.loads(version.inputs["secretString"])


def rotation_env(rehearsed, folder: Path, password_hash: str) -> dict[str, str]:
    env = container_env(rehearsed, folder)
    return {"DATABASE_URL": deploy_url(env["DATABASE_URL"]), "NODE_EXTRA_CA_CERTS": env["NODE_EXTRA_CA_CERTS"],
            ADMIN_HASH_VARIABLE: password_hash, DEFAULT_ADMIN_HASH_VARIABLE: UMAMI_DEFAULT_ADMIN_PASSWORD_HASH,
            ROTATION_SCRIPT_VARIABLE: rotation_script()}


def rotate(env: dict[str, str], cwd: Path = DRIVER) -> subprocess.CompletedProcess:
    """The rotation exactly as the deploy container runs it: the script's text from its environment."""
    return node(["/bin/sh", "-c", f'exec node --input-type=module -e "${ROTATION_SCRIPT_VARIABLE}"'], env, cwd)


def admin_hashes(rehearsed) -> list[str]:
    with rehearsed.aurora.superuser_conn() as conn:
        return [h for (h,) in conn.execute(
            'SELECT password FROM umami."user" WHERE username = %s', (UMAMI_ADMIN_USERNAME,)).fetchall()]


@pytest.fixture
def umami_tables(rehearsed):
    """Umami-like tables created by the umami role, with Umami's default admin row."""
    with rehearsed.aurora.connect_as(rehearsed.umami) as conn:
        run_umami_like_migrations(conn)
    assert admin_hashes(rehearsed) == [UMAMI_DEFAULT_ADMIN_PASSWORD_HASH]
    return rehearsed


# -- the deploy step's connection: no statement_timeout for the migration -------------------

def statement_timeout(url: str, env: dict[str, str]) -> str:
    result = node(["node", "statement-timeout.mjs"], {**env, "DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["statementTimeout"]


def test_the_deploy_url_lifts_the_roles_statement_timeout_and_the_service_url_keeps_it(rehearsed, tmp_path):
    env = container_env(rehearsed, tmp_path)
    assert statement_timeout(env["DATABASE_URL"], env) == "30s"  # ALTER ROLE ... SET statement_timeout
    assert statement_timeout(deploy_url(env["DATABASE_URL"]), env) == "0"


def test_prisma_migrates_past_the_roles_timeout_only_on_the_deploy_url(rehearsed, tmp_path):
    # The role's timeout, shortened so the proof is quick; the migration sleeps longer than it.
    with rehearsed.aurora.superuser_conn() as conn:
        conn.execute(sql.SQL("ALTER ROLE {} SET statement_timeout = 1000").format(sql.Identifier(rehearsed.umami.user)))
    migrations = tmp_path / "migrations"
    (migrations / "20240101000000_slow").mkdir(parents=True)
    (migrations / "migration_lock.toml").write_text('provider = "postgresql"\n')
    (migrations / "20240101000000_slow" / "migration.sql").write_text(
        "SELECT pg_sleep(1.5);\nCREATE TABLE slow_migration_done (id integer);\n")
    env = container_env(rehearsed, tmp_path)

    cut = node(["node", "migrate.mjs", str(migrations)], env)
    assert cut.returncode == 1
    assert json.loads(cut.stdout.splitlines()[-1])["ok"] is False
    assert "statement timeout" in cut.stdout + cut.stderr

    with rehearsed.aurora.superuser_conn() as conn:  # what an operator does after P3009 (README, Rollback)
        conn.execute("DELETE FROM umami._prisma_migrations")
    done = node(["node", "migrate.mjs", str(migrations)], {**env, "DATABASE_URL": deploy_url(env["DATABASE_URL"])})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"ok": True, "applied": ["20240101000000_slow"]}
    with rehearsed.aurora.superuser_conn() as conn:
        assert conn.execute("SELECT to_regclass('umami.slow_migration_done')").fetchone()[0] is not None


# -- the admin rotation ------------------------------------------------------------------------

def test_the_default_admin_password_is_replaced_by_the_stacks(umami_tables, tmp_path):
    login = stored_admin_login(umami_tables)
    assert login["username"] == UMAMI_ADMIN_USERNAME and bcrypt_hash.is_hash(login["passwordHash"])
    env = rotation_env(umami_tables, tmp_path, login["passwordHash"])

    result = rotate(env)

    assert (result.returncode, result.stdout, result.stderr) == (0, f"{REPLACED}\n", "")
    [stored] = admin_hashes(umami_tables)
    assert stored == login["passwordHash"]
    assert bcrypt.checkpw(login["password"].encode(), stored.encode())
    assert not bcrypt.checkpw(b"umami", stored.encode())


def test_a_second_run_changes_nothing(umami_tables, tmp_path):
    login = stored_admin_login(umami_tables)
    env = rotation_env(umami_tables, tmp_path, login["passwordHash"])
    assert rotate(env).stdout == f"{REPLACED}\n"
    with umami_tables.aurora.superuser_conn() as conn:
        before = conn.execute('SELECT xmin::text FROM umami."user" WHERE username = %s', (UMAMI_ADMIN_USERNAME,)).fetchone()

    result = rotate(env)

    assert (result.returncode, result.stdout) == (0, f"{LEFT}\n")
    with umami_tables.aurora.superuser_conn() as conn:
        after = conn.execute('SELECT xmin::text FROM umami."user" WHERE username = %s', (UMAMI_ADMIN_USERNAME,)).fetchone()
    assert after == before  # the row was not even rewritten
    assert admin_hashes(umami_tables) == [login["passwordHash"]]


def test_a_password_the_team_set_is_never_overwritten(umami_tables, tmp_path):
    team_hash = bcrypt.hashpw(b"chosen by the team", bcrypt.gensalt(10)).decode()
    with umami_tables.aurora.connect_as(umami_tables.umami) as conn:
        conn.execute('UPDATE "user" SET password = %s WHERE username = %s', (team_hash, UMAMI_ADMIN_USERNAME))
    env = rotation_env(umami_tables, tmp_path, stored_admin_login(umami_tables)["passwordHash"])

    result = rotate(env)

    assert (result.returncode, result.stdout) == (0, f"{LEFT}\n")
    assert admin_hashes(umami_tables) == [team_hash]


def test_without_an_admin_user_nothing_is_changed(umami_tables, tmp_path):
    with umami_tables.aurora.connect_as(umami_tables.umami) as conn:
        conn.execute('UPDATE website SET user_id = NULL')
        conn.execute('DELETE FROM "user"')
    result = rotate(rotation_env(umami_tables, tmp_path, stored_admin_login(umami_tables)["passwordHash"]))
    assert (result.returncode, result.stdout) == (0, f"{NO_ADMIN}\n")
    assert admin_hashes(umami_tables) == []


def test_pg_is_found_through_prismas_adapter_when_it_is_not_beside_the_app(umami_tables, tmp_path):
    # Like /app in Umami's image: @prisma/adapter-pg installed there, `pg` only among its own dependencies.
    app = tmp_path / "app"
    (app / "node_modules" / "@prisma").mkdir(parents=True)
    (app / "node_modules" / "@prisma" / "adapter-pg").symlink_to(DRIVER / "node_modules" / "@prisma" / "adapter-pg")
    assert node(["node", "--input-type=module", "-e", "await import('pg')"], {}, cwd=app).returncode != 0

    result = rotate(rotation_env(umami_tables, tmp_path, stored_admin_login(umami_tables)["passwordHash"]), cwd=app)

    assert (result.returncode, result.stdout, result.stderr) == (0, f"{REPLACED}\n", "")


@pytest.mark.parametrize("value", ["", "not-a-hash", "umami", UMAMI_DEFAULT_ADMIN_PASSWORD_HASH[:-1]])
def test_a_replacement_that_is_no_bcrypt_hash_is_refused_before_connecting(umami_tables, tmp_path, value):
    env = rotation_env(umami_tables, tmp_path, value)
    result = rotate(env)
    assert result.returncode == 1 and result.stdout == ""
    reason = "is not set" if not value else "is not a bcrypt hash"
    assert result.stderr == f"admin password rotation failed: {ADMIN_HASH_VARIABLE} {reason}\n"
    assert admin_hashes(umami_tables) == [UMAMI_DEFAULT_ADMIN_PASSWORD_HASH]


def test_a_failed_login_is_one_line_without_the_password(umami_tables, tmp_path):
    env = rotation_env(umami_tables, tmp_path, stored_admin_login(umami_tables)["passwordHash"])
    wrong = "Wrong-Pass-1234"
    parts = urlsplit(env["DATABASE_URL"])
    env["DATABASE_URL"] = parts._replace(netloc=f"{parts.username}:{wrong}@{parts.hostname}:{parts.port}").geturl()

    result = rotate(env)

    assert result.returncode == 1 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert "password authentication failed" in result.stderr
    assert wrong not in result.stderr and umami_tables.umami.password not in result.stderr
    assert admin_hashes(umami_tables) == [UMAMI_DEFAULT_ADMIN_PASSWORD_HASH]
