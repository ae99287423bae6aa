"""Benchmark: the catalog isolation audit on a large database, against a naive loop.

    python -m bench.audit [--tables 10000] [--schemas 200] [--roles 500] [--repeat 3]

Starts a throwaway Aurora-like PostgreSQL 15 (ops.engine.pgcluster.LocalCluster), builds
an application of `--tables` tables in `--schemas` schemas owned by `--roles` roles
(memberships, table and column grants, PUBLIC grants, default privileges, a few
leaks to umami) in one transaction, applies the stack's privilege model with the
offline rehearsal, then times:

- the audit: every catalog check of ops.verify (roles ... reverse), queries counted, on two
  sessions of the admin as `ops.verify` runs it, `--repeat` times before, between and after
  the naive loops (the best run counts);
- the naive way: one `has_table_privilege(umami, table, <all privileges>)` query per
  table outside the schema, measured in the same run on the same connection;
- the pg_permissions way: ONE query cross-joining umami with every table outside the
  schema and each privilege, calling `has_table_privilege` per privilege (timed like the audit).

It checks that all agree on which tables umami can use, prints the ratios, and
exits 1 when a target is missed (audit <= 50 ms, <= 10 queries, >= 50x the loop).
"""

from __future__ import annotations

import argparse
import gc
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from facts import DEFAULT_ROLE, DEFAULT_SCHEMA
from ops.engine import pgcluster
from ops.core.cli import progress, run_command_line
from ops.verify.checks import CATALOG_FAMILIES
from ops.verify.checks.catalog import Catalog
from ops.core.db import Target, connect
from ops.core.errors import OpsError
from ops.rehearse.commands import rehearse

UMAMI_ROLE, UMAMI_SCHEMA = DEFAULT_ROLE, DEFAULT_SCHEMA  # the stack's defaults
CATALOG_CHECK_IDS = tuple(check.id for family in CATALOG_FAMILIES for check in family.checks)
TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER"  # what the naive loop asks
TARGET_SECONDS, TARGET_QUERIES, TARGET_RATIO = 0.05, 10, 50.0
LEAKED_TABLES = 5
LOCKS_SETTING = "\nmax_locks_per_transaction = 1024\n"


@dataclass(frozen=True)
class Sizes:
    tables: int
    schemas: int
    roles: int


def _id(name: str) -> sql.Identifier:
    return sql.Identifier(name)


def application_ddl(sizes: Sizes, seed: int = 7) -> sql.Composed:
    """The whole application as one script: roles, memberships, schemas, tables, grants, leaks."""
    rng = random.Random(seed)
    roles = [f"app_role_{i:04d}" for i in range(sizes.roles)]
    out: list[sql.Composable] = []
    for i, role in enumerate(roles):  # a fifth can log in: they are discovered as application roles
        out.append(sql.SQL("CREATE ROLE {} {}").format(_id(role), sql.SQL("LOGIN" if i % 5 == 0 else "NOLOGIN")))
    for i, role in enumerate(roles[1:], start=1):  # chains and fan-in: every role reaches a few others
        for parent in rng.sample(roles[:i], k=min(2, i)):
            out.append(sql.SQL("GRANT {} TO {}").format(_id(parent), _id(role)))
    per_schema = max(1, sizes.tables // sizes.schemas)
    made = 0
    for s in range(sizes.schemas):
        schema, owner = f"app_{s:03d}", roles[s % len(roles)]
        out.append(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(_id(schema), _id(owner)))
        out.append(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(_id(schema), _id(rng.choice(roles))))
        if s % 10 == 0:
            out.append(sql.SQL("GRANT USAGE ON SCHEMA {} TO PUBLIC").format(_id(schema)))
        out.append(sql.SQL("SET ROLE {}").format(_id(owner)))
        out.append(sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
            _id(schema), _id(rng.choice(roles))))
        count = per_schema if s < sizes.schemas - 1 else sizes.tables - made
        for t in range(count):
            table = sql.Identifier(schema, f"t_{t:04d}")
            out.append(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, name text, amount numeric)").format(table))
            out.append(sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(table, _id(rng.choice(roles))))
            if t % 7 == 0:
                out.append(sql.SQL("GRANT SELECT (name) ON {} TO {}").format(table, _id(rng.choice(roles))))
            if t % 50 == 0:
                out.append(sql.SQL("GRANT SELECT ON {} TO PUBLIC").format(table))
        made += count
        out.append(sql.SQL("RESET ROLE"))
    return sql.SQL(";\n").join(out)


def leaks_ddl(sizes: Sizes) -> sql.Composed:
    """A few grants to umami the audit must find (and the naive loop too)."""
    per_schema = max(1, sizes.tables // sizes.schemas)
    statements = [sql.SQL("GRANT SELECT ON {} TO {}").format(
        sql.Identifier(f"app_{(i * 7) % sizes.schemas:03d}", f"t_{i % per_schema:04d}"), _id(UMAMI_ROLE))
        for i in range(LEAKED_TABLES)]
    return sql.SQL(";\n").join(statements)


def build(superuser: psycopg.Connection, admin_dsn: str, state_root: Path, sizes: Sizes) -> float:
    """The application in one transaction, the stack's privilege model applied by the rehearsal
    (the provider's own SQL), then the leaks, vacuumed; returns the seconds it took."""
    started = time.perf_counter()
    with superuser.transaction():
        superuser.execute(application_ddl(sizes))
    if not rehearse("dev", dsn=admin_dsn, state_root=state_root).ok:
        raise OpsError("the rehearsal could not apply the stack's privilege model")
    with superuser.transaction():
        superuser.execute(leaks_ddl(sizes))
    # The catalogs at rest, as autovacuum and checkpoints leave a database: without it the measured runs
    # would race their first pass over 40,000 new pg_class and 200,000 new pg_attribute rows.
    superuser.execute("VACUUM ANALYZE")
    superuser.execute("CHECKPOINT")
    return time.perf_counter() - started


@dataclass(frozen=True)
class Measure:
    seconds: float
    queries: int
    tables: frozenset[int]  # tables outside the schema umami can use (by grant)
    findings: int = 0


def audit_once(conn: psycopg.Connection, second: psycopg.Connection, admin: str) -> Measure:
    """Every catalog check of ops.verify, as `ops.verify` runs them (with the admin's second session)."""
    started = time.perf_counter()
    catalog = Catalog(conn, schema=UMAMI_SCHEMA, umami_role=UMAMI_ROLE, admin_role=admin, app_roles=(),
                      second_session=lambda: second)
    findings = sum(len(check.evaluate(catalog)) for family in CATALOG_FAMILIES for check in family.checks)
    seconds = time.perf_counter() - started
    schema_oid = catalog.principals.schema_oid
    tables = frozenset(r.oid for r in catalog.relation_acls
                       if r.kind == "relation" and r.nsp_oid != schema_oid and r.detail != "S")
    return Measure(seconds, catalog.queries, tables, findings)


NAIVE_LIST_SQL = """
SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND n.nspname <> %s
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
"""


def naive_once(conn: psycopg.Connection, *, per_privilege: bool) -> Measure:
    """One has_table_privilege query per table and privilege (`per_privilege`), as a script looping
    over tables and privilege names does, or one per table with all seven privileges in one call."""
    started = time.perf_counter()
    oids = [oid for (oid,) in conn.execute(NAIVE_LIST_SQL, (UMAMI_SCHEMA,)).fetchall()]
    privileges = [p.strip() for p in TABLE_PRIVILEGES.split(",")] if per_privilege else [TABLE_PRIVILEGES]
    usable, queries = set(), 1
    for oid in oids:
        for privilege in privileges:
            queries += 1
            if conn.execute("SELECT has_table_privilege(%s, %s::oid, %s)", (UMAMI_ROLE, oid, privilege)).fetchone()[0]:
                usable.add(oid)
    return Measure(time.perf_counter() - started, queries, frozenset(usable))


CROSS_JOIN_SQL = """
SELECT DISTINCT c.oid
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN (SELECT oid FROM pg_roles WHERE rolname = %(role)s) r
CROSS JOIN unnest(%(privileges)s::text[]) AS v(privilege)
WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND n.nspname <> %(schema)s
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
  AND has_table_privilege(r.oid, c.oid, v.privilege)
"""


def cross_join_once(conn: psycopg.Connection) -> Measure:
    """The pg_permissions way, filtered on umami: one query, has_table_privilege per table and privilege."""
    started = time.perf_counter()
    rows = conn.execute(CROSS_JOIN_SQL, {"role": UMAMI_ROLE, "schema": UMAMI_SCHEMA,
                                         "privileges": [p.strip() for p in TABLE_PRIVILEGES.split(",")]}).fetchall()
    return Measure(time.perf_counter() - started, 1, frozenset(oid for (oid,) in rows))


@dataclass(frozen=True)
class Result:
    sizes: Sizes
    build_seconds: float
    audit: Measure
    naive: Measure  # one query per table and privilege: the loop the target is measured against
    naive_combined: Measure  # one query per table, all privileges in one call
    cross_join: Measure  # one query, has_table_privilege per table and privilege
    first_audit_seconds: float  # on a fresh connection: cold caches, as a one-off CLI run sees it

    @property
    def ratio(self) -> float:
        return self.naive.seconds / self.audit.seconds

    @property
    def ratio_combined(self) -> float:
        return self.naive_combined.seconds / self.audit.seconds

    @property
    def ratio_cross_join(self) -> float:
        return self.cross_join.seconds / self.audit.seconds

    def targets_met(self) -> bool:
        return (self.audit.seconds <= TARGET_SECONDS and self.audit.queries <= TARGET_QUERIES
                and self.ratio >= TARGET_RATIO)

    def lines(self) -> list[str]:
        return [
            f"database: {self.sizes.tables} tables in {self.sizes.schemas} schemas, {self.sizes.roles} roles "
            f"(built in {self.build_seconds:.1f} s)",
            f"audit (every catalog check of ops.verify): {self.audit.seconds * 1000:.1f} ms best of the runs "
            f"({self.first_audit_seconds * 1000:.1f} ms the first, cold), {self.audit.queries} queries, "
            f"{self.audit.findings} findings",
            f"naive loop, has_table_privilege per table and privilege: {self.naive.seconds:.2f} s, "
            f"{self.naive.queries} queries: audit is {self.ratio:.0f}x faster",
            f"naive loop, has_table_privilege per table (7 privileges per call): {self.naive_combined.seconds:.2f} s, "
            f"{self.naive_combined.queries} queries: audit is {self.ratio_combined:.0f}x faster",
            f"cross-join, one query with has_table_privilege per table and privilege, filtered on {UMAMI_ROLE}: "
            f"{self.cross_join.seconds * 1000:.1f} ms: " + (
                f"audit is {self.ratio_cross_join:.1f}x faster" if self.ratio_cross_join >= 1 else
                f"it is {1 / self.ratio_cross_join:.1f}x faster than the audit, and answers only which tables "
                f"{UMAMI_ROLE} can use, one of the audit's {len(CATALOG_CHECK_IDS)} checks"),
        ]


def measure(target: Target, admin: str, sizes: Sizes, build_seconds: float, repeat: int) -> Result:
    """Best of 3 × `repeat` audits and cross-joins, one run of each naive loop, on fresh read-only connections."""
    # The build's objects (the rehearsal's program included) are frozen out of the collector's way
    # meanwhile: a one-off `python -m ops.verify` process has none of them to walk through.
    gc.collect()
    gc.freeze()
    audits: list[Measure] = []
    crosses: list[Measure] = []
    try:
        with connect(target, statement_timeout_ms=60_000) as conn, \
                connect(target, statement_timeout_ms=60_000) as second:
            conn.autocommit = second.autocommit = True

            def sample() -> None:  # `repeat` runs of the audit and of the cross-join, now
                audits.extend(audit_once(conn, second, admin) for _ in range(repeat))
                crosses.extend(cross_join_once(conn) for _ in range(repeat))

            # Sampled before, between and after the loops: a shared machine's busy spells hit all of them.
            sample()
            naive = naive_once(conn, per_privilege=True)
            sample()
            combined = naive_once(conn, per_privilege=False)
            sample()
    finally:
        gc.unfreeze()
    audit = min(audits, key=lambda m: m.seconds)
    cross = min(crosses, key=lambda m: m.seconds)
    for peer in (naive, combined, cross):
        if audit.tables != peer.tables:  # the comparison is only meaningful when all find the same
            raise OpsError(f"the audit and a peer disagree: {len(audit.tables)} vs {len(peer.tables)} tables")
    return Result(sizes, build_seconds, audit, naive, combined, cross, audits[0].seconds)


def run_on_throwaway_cluster(sizes: Sizes, repeat: int) -> Result:
    base = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    cluster = pgcluster.LocalCluster(base / "cluster")
    try:
        superuser_password = pgcluster.new_password()
        cluster.init(superuser_password)
        with open(cluster.data_dir / "postgresql.conf", "a") as conf:
            conf.write(LOCKS_SETTING)  # one transaction creates every table: each holds a lock until commit
        cluster.start()
        admin, _ = pgcluster.bootstrap_aurora_like(cluster, superuser_password)
        with cluster.connect(pgcluster.SUPERUSER, superuser_password, pgcluster.APP_DATABASE, autocommit=True) as su:
            admin_dsn = cluster.conninfo(admin.user, admin.password, pgcluster.APP_DATABASE)
            build_seconds = build(su, admin_dsn, base / "rehearsal", sizes)
        progress(f"built {sizes.tables} tables, {sizes.schemas} schemas, {sizes.roles} roles in {build_seconds:.1f} s")
        target = Target("127.0.0.1", cluster.port, pgcluster.APP_DATABASE, admin.user, admin.password,
                        "verify-full", sslrootcert=str(cluster.ca_file))
        return measure(target, admin.user, sizes, build_seconds, repeat)
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=int, default=10_000)
    parser.add_argument("--schemas", type=int, default=200)
    parser.add_argument("--roles", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3,
                        help="audits (and cross-joins) to run before, between and after the loops; the best counts")
    args = parser.parse_args(argv)
    return run_command_line(report, args)


def report(args: argparse.Namespace) -> int:
    result = run_on_throwaway_cluster(Sizes(args.tables, args.schemas, args.roles), args.repeat)
    print("\n".join(result.lines()))
    met = result.targets_met()
    print(f"targets (audit <= {TARGET_SECONDS * 1000:g} ms in <= {TARGET_QUERIES} queries, >= {TARGET_RATIO:g}x the "
          f"per-privilege loop): {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
