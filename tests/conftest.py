"""Shared fixtures: a real PostgreSQL 15 cluster shaped like Aurora.

One cluster is started per test session; `aurora` resets it to a clean
Aurora-like state (admin `postgres` without superuser, an application schema
with data and its role) before each test that asks for it.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ops.engine import pgcluster  # noqa: E402
from ops.engine.pgcluster import Credentials, LocalCluster  # noqa: E402


@dataclass
class AuroraLike:
    """A clean Aurora-like database: where it is and who can log in."""

    cluster: LocalCluster
    superuser: Credentials
    admin: Credentials
    app: Credentials
    dbname: str = pgcluster.APP_DATABASE

    @property
    def port(self) -> int:
        return self.cluster.port

    def admin_dsn(self) -> str:
        return self.cluster.conninfo(self.admin.user, self.admin.password, self.dbname)

    def connect_as(self, creds: Credentials, **kw) -> psycopg.Connection:
        return self.cluster.connect(creds.user, creds.password, self.dbname, **kw)

    def superuser_conn(self, dbname: str | None = None) -> psycopg.Connection:
        return self.cluster.connect(self.superuser.user, self.superuser.password,
                                    dbname or self.dbname, autocommit=True)


def started_cluster(**options):
    """Init and start a LocalCluster (options: tls, server_names); yields it, then removes it."""
    # Outside pytest's tmp tree: pytest prunes old tmp dirs, even those of a running session.
    base = Path(tempfile.mkdtemp(prefix="umami-pg-")) / "cluster"
    cluster = LocalCluster(base, **options)
    password = pgcluster.new_password()
    cluster.init(password)
    cluster.start()
    cluster.superuser_password = password
    try:
        yield cluster
    finally:
        cluster.destroy()
        shutil.rmtree(base.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster():
    """TLS only, like RDS: its CA is `pg_cluster.ca_file`; conninfo() verifies the server."""
    yield from started_cluster()


@pytest.fixture(scope="session")
def plain_cluster():
    """A cluster without TLS, for what clients do when the server cannot encrypt."""
    yield from started_cluster(tls=False)


def reset_cluster(cluster: LocalCluster) -> None:
    """Drop every database and role a test may have created."""
    with cluster.connect(pgcluster.SUPERUSER, cluster.superuser_password, autocommit=True) as conn:
        for (name,) in conn.execute(
            "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres'"
        ).fetchall():
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        roles = [r for (r,) in conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname !~ '^pg_' AND rolname <> %s", (pgcluster.SUPERUSER,)
        ).fetchall()]
        for role in roles:
            conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
        for role in roles:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def aurora_like(cluster: LocalCluster, **options) -> AuroraLike:
    reset_cluster(cluster)
    admin, app = pgcluster.bootstrap_aurora_like(cluster, cluster.superuser_password, **options)
    return AuroraLike(
        cluster=cluster,
        superuser=Credentials(pgcluster.SUPERUSER, cluster.superuser_password),
        admin=admin,
        app=app,
    )


@pytest.fixture
def aurora(pg_cluster) -> AuroraLike:
    return aurora_like(pg_cluster)


@pytest.fixture
def aurora_foreign_owner(pg_cluster) -> AuroraLike:
    """Like `aurora`, but `appdb` is owned by role app_owner; the admin is not a member of it."""
    return aurora_like(pg_cluster, db_owner=pgcluster.DB_OWNER)


@dataclass
class Rehearsed:
    """A clean database after `python -m ops.rehearse --stack dev --dsn <admin>`."""

    aurora: AuroraLike
    result: object  # ops.rehearse.Rehearsal
    outputs: dict
    outputs_file: Path
    umami: Credentials
    pgpass: Path


def rehearse_into(aurora: AuroraLike, state_root: Path, overrides: dict[str, str] | None = None,
                  **options) -> Rehearsed:
    """Rehearse the dev stack into `aurora` with optional config overrides (options: refresh, ...)."""
    from ops.rehearse.commands import rehearse

    result = rehearse("dev", dsn=aurora.admin_dsn(), state_root=state_root, overrides=overrides, **options)
    assert result.ok, [f"{c.label}: {c.detail}" for c in result.changes if c.action == "failed"]
    role = result.run.one("postgresql:index/role:Role").inputs
    return Rehearsed(
        aurora=aurora, result=result, outputs=result.outputs, outputs_file=result.outputs_path,
        umami=Credentials(role["name"], result.role_password), pgpass=result.base / "pgpass",
    )


@pytest.fixture
def rehearsed(aurora, tmp_path) -> Rehearsed:
    return rehearse_into(aurora, tmp_path / "rehearsal")
