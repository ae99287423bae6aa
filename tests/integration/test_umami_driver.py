"""Umami's real PostgreSQL driver stack against the rehearsal: node-postgres through Prisma's
adapter (driver/connect.mjs, pool.mjs) and Prisma's own migration engine (driver/migrate.mjs).

The packages are those of driver/package-lock.json, installed by `make install`; nothing here is
skipped: a missing install fails with the command that fixes it.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from psycopg import sql

from components.secrets import database_url
from ops.engine import pgcluster
from ops.engine.umami_env import write_umami_env
from tests.conftest import ROOT, rehearse_into, started_cluster
from tests.umami_like import MIGRATIONS, PRISMA_MIGRATIONS_DDL

DRIVER = ROOT / "driver"
PACKAGES = ("pg", "@prisma/adapter-pg", "@prisma/driver-adapter-utils", "@prisma/schema-engine-wasm")
PRISMA_LOCK_ID = 72707369  # prisma-engines: the advisory lock `migrate deploy` holds while applying
NOT_SIGNED = "unable to verify the first certificate"  # Node's words for a CA that did not sign the server's
NO_TLS = "The server does not support SSL connections"


@pytest.fixture(scope="module", autouse=True)
def driver_installed():
    if not shutil.which("node"):
        pytest.fail("node is not installed: Umami's driver tests need node 20+ (install nodejs)")
    missing = [p for p in PACKAGES if not (DRIVER / "node_modules" / p / "package.json").exists()]
    if missing:
        pytest.fail(f"driver/node_modules lacks {', '.join(missing)}: run `make install` (npm ci --prefix driver)")


def node_env(variables: dict[str, str]) -> dict[str, str]:
    """Only PATH from the test's environment: no stray NODE_EXTRA_CA_CERTS or PG* variables."""
    return {"PATH": os.environ["PATH"], **variables}


def run_node(script: str, variables: dict[str, str], *args: str, timeout: float = 60) -> tuple[int, dict, str]:
    """Run a driver script; its last stdout line is its JSON result."""
    proc = subprocess.run(["node", str(DRIVER / script), *args], env=node_env(variables), capture_output=True,
                          text=True, timeout=timeout, cwd=DRIVER)
    lines = proc.stdout.strip().splitlines()
    assert lines, f"{script} printed nothing (exit {proc.returncode}): {proc.stderr.strip()}"
    return proc.returncode, json.loads(lines[-1]), proc.stderr.strip()


def read_json_line(proc: subprocess.Popen, timeout: float = 30) -> dict:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the driver script printed nothing in time"
    line = proc.stdout.readline()
    assert line, f"the driver script ended early: {proc.stderr.read()}"
    return json.loads(line)


def container_env(rehearsed, folder: Path) -> dict[str, str]:
    """The Umami container's environment as the stack stores it (ops.engine.umami_env). The stored URL's
    sslrootcert/sslcert and NODE_EXTRA_CA_CERTS name the container's /tmp/umami-db-ca.pem; this
    rewrites them to a local copy of the CA written into `folder` (what --umami-env does)."""
    return write_umami_env(rehearsed.result.run, folder / "umami.env")


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory) -> Path:
    """A CA that signed nothing the clusters present."""
    path = tmp_path_factory.mktemp("other-ca") / "ca.pem"
    path.write_bytes(pgcluster.issue_certificates(("localhost",))[0])
    return path


# -- the stored URL, as Umami's container uses it ------------------------------------------

def test_stored_url_and_container_env_connect_with_verified_tls(rehearsed, tmp_path):
    env = container_env(rehearsed, tmp_path)
    assert parse_qs(urlsplit(env["DATABASE_URL"]).query)["sslmode"] == ["verify-full"]
    assert env["NODE_EXTRA_CA_CERTS"] == str(tmp_path / "umami-db-ca.pem")

    code, out, err = run_node("connect.mjs", env)

    assert code == 0, err
    # Unqualified names resolve to the umami schema; the session is encrypted.
    assert out["primary"] == {"schema": "umami", "user": rehearsed.umami.user, "ssl": True, "clientDn": None}


def test_the_replica_url_connects_with_the_same_rules(aurora, tmp_path):
    # The reader is the same cluster under its other certificate name (DNS:localhost).
    rehearsed = rehearse_into(aurora, tmp_path / "rehearsal", {"umami:dbReaderHost": "localhost"})
    env = container_env(rehearsed, tmp_path)
    assert urlsplit(env["DATABASE_REPLICA_URL"]).hostname == "localhost"

    code, out, err = run_node("connect.mjs", env)

    assert code == 0, err
    assert out["replica"] == out["primary"] == {"schema": "umami", "user": rehearsed.umami.user, "ssl": True,
                                                "clientDn": None}


def test_a_ca_that_did_not_sign_the_server_certificate_is_refused(rehearsed, tmp_path, other_ca):
    env = container_env(rehearsed, tmp_path)
    shutil.copyfile(other_ca, tmp_path / "umami-db-ca.pem")  # what sslrootcert and NODE_EXTRA_CA_CERTS name

    code, out, err = run_node("connect.mjs", env)

    assert code == 1
    assert out["error"]["message"] == NOT_SIGNED
    assert "certificate" in err
    assert rehearsed.umami.password not in err + json.dumps(out)


# -- what each umami:dbSslMode does in Umami's runtime driver (README table) ----------------

@pytest.fixture(scope="module")
def misnamed_cluster():
    """TLS with a certificate for another name than the 127.0.0.1 the clients dial."""
    yield from started_cluster(server_names=("db.invalid",))


def login_role(cluster, **tls) -> tuple[str, str]:
    """umami_user with schema umami on a module-owned cluster (its superuser connects with `tls`)."""
    password = pgcluster.new_password()
    with cluster.connect(pgcluster.SUPERUSER, cluster.superuser_password, autocommit=True, **tls) as conn:
        conn.execute("DROP SCHEMA IF EXISTS umami")
        conn.execute("DROP ROLE IF EXISTS umami_user")
        conn.execute(sql.SQL("CREATE ROLE umami_user LOGIN PASSWORD {}").format(sql.Literal(password)))
        conn.execute("CREATE SCHEMA umami AUTHORIZATION umami_user")
    return "umami_user", password


# server, sslmode, CA given, expected: True/False = connected with/without TLS, str = refused with it
SSL_MODE_CASES = [
    ("tls", "disable", None, "no encryption"),          # pg_hba: hostnossl ... reject, as RDS with force_ssl
    ("tls", "require", "cluster", True),
    ("tls", "require", "other", True),                  # encrypted, nothing checked
    ("tls", "verify-ca", "cluster", True),
    ("tls", "verify-ca", "other", NOT_SIGNED),
    ("tls", "verify-full", "cluster", True),
    ("tls", "verify-full", "other", NOT_SIGNED),
    ("misnamed", "require", "cluster", True),
    ("misnamed", "verify-ca", "cluster", True),         # the CA is checked, the host name is not
    ("misnamed", "verify-full", "cluster", "does not match certificate's altnames"),
    ("plain", "disable", None, False),
    ("plain", "require", "cluster", NO_TLS),            # node-postgres never falls back to plain text
    ("plain", "verify-ca", "cluster", NO_TLS),
    ("plain", "verify-full", "cluster", NO_TLS),
]


@pytest.mark.parametrize("server, mode, ca, expected", SSL_MODE_CASES,
                         ids=[f"{s}-{m}-{c or 'no'}-ca" for s, m, c, _ in SSL_MODE_CASES])
def test_each_ssl_mode_in_umamis_driver(server, mode, ca, expected, request, other_ca):
    if server == "tls":
        aurora = request.getfixturevalue("aurora")
        cluster, (user, password), dbname = aurora.cluster, (aurora.app.user, aurora.app.password), aurora.dbname
        ca_file = aurora.cluster.ca_file
    else:
        cluster = request.getfixturevalue(f"{server}_cluster")
        tls = {"sslmode": "verify-ca"} if server == "misnamed" else {}
        user, password = login_role(cluster, **tls)
        dbname = "postgres"
        ca_file = cluster.ca_file or request.getfixturevalue("pg_cluster").ca_file
    ca_path = str(other_ca if ca == "other" else ca_file)
    # The URL exactly as the stack stores it for `mode`, and the container's CA variable.
    url = database_url(user, password, "127.0.0.1", cluster.port, dbname, "umami", mode, ca_path)
    variables = {"DATABASE_URL": url} | ({"NODE_EXTRA_CA_CERTS": ca_path} if mode != "disable" else {})

    code, out, err = run_node("connect.mjs", variables)

    if isinstance(expected, bool):
        assert code == 0, err
        assert out["primary"]["ssl"] is expected
    else:
        assert code == 1
        assert expected in out["error"]["message"]


@pytest.mark.parametrize("requests_client_certificates", [False, True], ids=["server-asks-none", "server-asks"])
def test_sslcert_naming_the_ca_does_not_stop_node_postgres(aurora, requests_client_certificates):
    """The stored verify-full URL carries sslcert=<CA> for Prisma's engine (a CA to trust there);
    node-postgres reads it as a client certificate without a key. It still connects, and sends no
    certificate, whether or not the server asks for one (PostgreSQL asks when ssl_ca_file is set)."""
    ca = str(aurora.cluster.ca_file)
    url = database_url(aurora.app.user, aurora.app.password, "127.0.0.1", aurora.port, aurora.dbname,
                       "umami", "verify-full", ca)
    assert parse_qs(urlsplit(url).query)["sslcert"] == [ca]
    with aurora.superuser_conn() as su:
        try:
            if requests_client_certificates:
                su.execute(sql.SQL("ALTER SYSTEM SET ssl_ca_file = {}").format(sql.Literal(ca)))
                su.execute("SELECT pg_reload_conf()")
                time.sleep(0.3)  # the postmaster reloads asynchronously
            with aurora.connect_as(aurora.app) as conn:  # a new backend sees the reloaded setting
                assert conn.execute("SHOW ssl_ca_file").fetchone()[0] == (ca if requests_client_certificates else "")

            code, out, err = run_node("connect.mjs", {"DATABASE_URL": url, "NODE_EXTRA_CA_CERTS": ca})
        finally:
            su.execute("ALTER SYSTEM RESET ssl_ca_file")
            su.execute("SELECT pg_reload_conf()")
    assert code == 0, err
    assert out["primary"]["ssl"] is True
    assert out["primary"]["clientDn"] is None


# -- Prisma's migration engine -------------------------------------------------------------

def write_prisma_migrations(folder: Path) -> list[str]:
    """tests/umami_like.py's migrations as a Prisma migrations folder (the engine keeps its own
    bookkeeping, so the hand-written `_prisma_migrations` statements are left out)."""
    statements = [s for s in MIGRATIONS if s != PRISMA_MIGRATIONS_DDL and "_prisma_migrations" not in s]
    split = next(i for i, s in enumerate(statements) if "website_event" in s)
    migrations = {"20240101000000_init": statements[:split], "20240102000000_events": statements[split:]}
    folder.mkdir()
    (folder / "migration_lock.toml").write_text('provider = "postgresql"\n')
    for name, body in migrations.items():
        (folder / name).mkdir()
        (folder / name / "migration.sql").write_text(";\n".join(body) + ";\n")
    return list(migrations)


def waiting_for_prisma_lock(conn: psycopg.Connection, user: str, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.objid = %s AND NOT l.granted AND a.usename = %s",
            (PRISMA_LOCK_ID, user)).fetchone()
        if row[0]:
            return True
        time.sleep(0.05)
    return False


def test_prisma_engine_applies_the_migrations_as_umami_with_the_stored_url(rehearsed, tmp_path):
    env = container_env(rehearsed, tmp_path)
    names = write_prisma_migrations(tmp_path / "migrations")
    aurora = rehearsed.aurora
    with aurora.superuser_conn() as holder, aurora.superuser_conn() as watcher:
        # Another deployer holds Prisma's lock: the engine waits for it, then applies.
        holder.execute("SELECT pg_advisory_lock(%s)", (PRISMA_LOCK_ID,))
        proc = subprocess.Popen(["node", str(DRIVER / "migrate.mjs"), str(tmp_path / "migrations")],
                                env=node_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert waiting_for_prisma_lock(watcher, rehearsed.umami.user)
            holder.execute("SELECT pg_advisory_unlock(%s)", (PRISMA_LOCK_ID,))
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert json.loads(stdout) == {"ok": True, "applied": names}

    with aurora.superuser_conn() as conn:
        rows = conn.execute('SELECT migration_name, finished_at IS NOT NULL, rolled_back_at IS NULL '
                            'FROM umami."_prisma_migrations" ORDER BY migration_name').fetchall()
        assert rows == [(name, True, True) for name in names]
        tables = conn.execute("SELECT table_schema, table_name FROM information_schema.tables "
                              "WHERE table_name IN ('_prisma_migrations', 'user', 'website', 'website_event') "
                              "ORDER BY 2").fetchall()
        assert tables == [("umami", t) for t in ("_prisma_migrations", "user", "website", "website_event")]
        owners = conn.execute("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'umami'").fetchall()
        assert owners == [(rehearsed.umami.user,)]

    code, out, err = run_node("migrate.mjs", env, str(tmp_path / "migrations"))
    assert code == 0, err
    assert out == {"ok": True, "applied": []}


# -- the connection budget -------------------------------------------------------------------

def start_pool(env: dict[str, str], hold: float) -> subprocess.Popen:
    return subprocess.Popen(["node", str(DRIVER / "pool.mjs"), "--hold", str(hold)], env=node_env(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=DRIVER)


def test_two_umami_pools_and_an_ops_login_fit_the_default_budget(rehearsed, tmp_path):
    env = container_env(rehearsed, tmp_path)
    aurora = rehearsed.aurora
    with aurora.superuser_conn() as conn:
        limit = conn.execute("SELECT rolconnlimit FROM pg_roles WHERE rolname = %s",
                             (rehearsed.umami.user,)).fetchone()[0]
    assert limit == rehearsed.outputs["dbConnectionLimit"] == 44  # 10 x 1 x 4 tasks + 1 + 3

    pools = [start_pool(env, hold=3) for _ in range(2)]  # a rolling deployment: old and new task
    try:
        filled = [read_json_line(p) for p in pools]
        with aurora.connect_as(rehearsed.umami) as conn:  # what ops.verify logs in as, meanwhile
            assert conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = current_user"
                                ).fetchone()[0] == 21
        done = [read_json_line(p) for p in pools]
    finally:
        for p in pools:
            p.kill()
    assert [(f["poolMax"], f["connected"], f["errors"]) for f in filled] == [(10, 10, [])] * 2
    assert all(d["ok"] for d in done)

    # The old stack's limit, one pool's worth: a second process is refused.
    with aurora.superuser_conn() as conn:
        conn.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT 10").format(sql.Identifier(rehearsed.umami.user)))
    first = start_pool(env, hold=3)
    try:
        assert read_json_line(first)["connected"] == 10
        code, out, err = run_node("pool.mjs", env, "--hold", "0")
    finally:
        first.kill()
    assert code == 1
    assert out["connected"] == 0
    assert {e["code"] for e in out["errors"]} == {"53300"}
    assert "too many connections" in err
