"""Benchmark: the cross-tenant isolation matrix against two ways of asking PostgreSQL pair by pair.

    python -m bench.tenants [--tenants 1000] [--tables 20] [--loop-sample 20000] [--cross-join-budget 300]

Starts a throwaway Aurora-like PostgreSQL 15 (ops.engine.pgcluster.LocalCluster) and builds, in one
transaction: the umami role and schema and `--tenants` tenants (role and schema `tenant_<name>`, as the
privilege model renders them), each with `--tables` tables (a quarter created by the admin, so default
privileges give them non-NULL ACLs; the rest by the tenant, which owns them), beside the application
schema and role, then plants one leak of each kind between some tenant pairs. Then, in the same run on
the same database and connection, it times:

- ours: every check of the `tenants` family of ops.verify, from a fresh catalog (queries counted);
- (a) the naive loop: one has_schema_privilege/has_table_privilege query per principal and object. At
  full size that is millions of round trips, so it runs on a deterministic sample of pairs (the planted
  leaks included) and is extrapolated linearly to every pair;
- (b) the pg_permissions way: ONE query cross-joining the principals with the objects and calling
  has_*_privilege once per privilege. It runs first for a sample of principals; when that extrapolates
  to less than `--cross-join-budget` seconds it runs for every principal, otherwise the sample stands,
  extrapolated linearly.

All three must agree on every pair they share and on every planted leak (the matrix also reports each
one as a finding naming its pair). Prints one table and exits 1 when a target is missed: the matrix
<= 2 s in <= 10 queries, >= 100x the loop, >= 10x the cross-join.
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from facts import DEFAULT_ROLE, DEFAULT_SCHEMA, tenant_role, tenant_schema
from ops.core.cli import progress, run_command_line
from ops.core.db import Target, connect
from ops.engine import pgcluster
from ops.verify.checks import tenants as matrix_family
from ops.verify.checks.catalog import Catalog
from privilege_model import model_for

TARGET_SECONDS, TARGET_QUERIES, TARGET_LOOP_RATIO, TARGET_CROSS_JOIN_RATIO = 2.0, 10, 100.0, 10.0
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
SCHEMA_PRIVILEGES = ("USAGE", "CREATE")
CROSS_JOIN_SAMPLE = 8  # principals timed first, besides those of the planted leaks
LOCKS_SETTING = "\nmax_locks_per_transaction = 2048\n"  # every table and index is locked until the commit


@dataclass(frozen=True)
class Sizes:
    tenants: int
    tables: int  # per tenant

    @property
    def names(self) -> list[str]:
        return [f"t{i:04d}" for i in range(self.tenants)]


def _id(*names: str) -> sql.Identifier:
    return sql.Identifier(*names)


@dataclass(frozen=True)
class Leak:
    """One planted leak: its statements, who then reaches what, and the check and pair that report it."""

    kind: str
    statements: tuple[sql.Composable, ...]
    gainer: str  # the role that gains access
    victim: str  # the tenant role whose schema it reaches
    target: tuple[str, str | None]  # (schema, table; None for the schema itself), as has_*_privilege asks
    check: str

    def reported_by(self, check: str, finding) -> bool:
        """Whether `finding` of `check` names this leak's pair (a PUBLIC grant: every other principal)."""
        if check != self.check or not finding.subject.endswith(f"→ {self.victim}"):
            return False
        return "via PUBLIC" in finding.evidence if self.kind == "PUBLIC" else finding.subject.startswith(f"{self.gainer} →")


def planted_leaks(sizes: Sizes, admin: str) -> list[Leak]:
    """One leak of each kind, each between its own pair of tenants (tenants 1..16)."""
    role = [tenant_role(name) for name in sizes.names]

    def table(tenant: int, number: int) -> tuple[str, str]:
        return tenant_schema(sizes.names[tenant]), f"t_{number % sizes.tables:02d}"

    def grant(what: str, target: tuple[str, str], grantee: str) -> sql.Composed:
        to = sql.SQL("PUBLIC") if grantee == "PUBLIC" else _id(grantee)
        return sql.SQL(f"GRANT {what} ON {{}} TO {{}}").format(_id(*target), to)

    late = (tenant_schema(sizes.names[10]), "t_late")
    return [
        Leak("table grant", (grant("SELECT", table(2, 3), role[1]),), role[1], role[2], table(2, 3), "TEN-002"),
        Leak("column grant", (grant("SELECT (amount)", table(4, 4), role[3]),), role[3], role[4], table(4, 4),
             "TEN-002"),
        Leak("schema USAGE", (sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(_id(tenant_schema(sizes.names[6])),
                                                                               _id(role[5])),),
             role[5], role[6], (tenant_schema(sizes.names[6]), None), "TEN-001"),
        Leak("membership", (sql.SQL("GRANT {} TO {}").format(_id(role[8]), _id(role[7])),), role[7], role[8],
             table(8, 5), "TEN-006"),
        Leak("default privileges", (
            sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
                _id(admin), _id(late[0]), _id(role[9])),
            sql.SQL("SET ROLE {}").format(_id(admin)),
            sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, amount bigint)").format(_id(*late)),
            sql.SQL("RESET ROLE")), role[9], role[10], late, "TEN-005"),
        Leak("PUBLIC", (grant("SELECT", table(12, 6), "PUBLIC"),), role[11], role[12], table(12, 6), "TEN-002"),
        Leak("ownership", (sql.SQL("ALTER TABLE {} OWNER TO {}").format(_id(*table(14, 7)), _id(role[13])),),
             role[13], role[14], table(14, 7), "TEN-007"),
        Leak("application role", (grant("SELECT", table(16, 8), pgcluster.APP_ROLE),), pgcluster.APP_ROLE, role[16],
             table(16, 8), "TEN-002"),
    ]


def database_ddl(sizes: Sizes, admin: str, dbname: str) -> sql.Composed:
    """Umami, the tenants and their tables as one script (the application comes from the bootstrap)."""
    out: list[sql.Composable] = []
    admin_created = max(1, sizes.tables // 4)
    for name, role in [(DEFAULT_SCHEMA, DEFAULT_ROLE)] + [(tenant_schema(n), tenant_role(n)) for n in sizes.names]:
        model = model_for(database=dbname, schema=name, role=role, admin_role=admin, connection_limit=5,
                          statement_timeout_ms=30_000, idle_in_transaction_timeout_ms=60_000)
        out.append(sql.SQL("CREATE ROLE {} LOGIN").format(_id(role)))
        out.append(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(_id(name), _id(admin)))
        out += [sql.SQL(statement) for statement in model.statements()]
        if role == DEFAULT_ROLE:
            continue
        for t in range(sizes.tables):
            creator = admin if t < admin_created else role
            out.append(sql.SQL("SET ROLE {}").format(_id(creator)))
            out.append(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, amount bigint)").format(_id(name, f"t_{t:02d}")))
            out.append(sql.SQL("RESET ROLE"))
    return sql.SQL(";\n").join(out)


def build(superuser: psycopg.Connection, admin: str, sizes: Sizes) -> float:
    """The whole database in one transaction, then the planted leaks; returns the seconds it took."""
    started = time.perf_counter()
    with superuser.transaction():
        superuser.execute(database_ddl(sizes, admin, superuser.info.dbname))
        for leak in planted_leaks(sizes, admin):
            for statement in leak.statements:
                superuser.execute(statement)
    superuser.execute("ANALYZE")
    return time.perf_counter() - started


# -- the three ways --------------------------------------------------------------------------

@dataclass(frozen=True)
class Objects:
    """Every principal and every object of the isolated schemas, as the peers ask about them."""

    principals: tuple[tuple[int, str], ...]  # (oid, name)
    schemas: tuple[tuple[int, str, int], ...]  # (oid, name, owner)
    relations: tuple[tuple[int, str, str, int], ...]  # (oid, schema, name, owner)

    @property
    def pairs(self) -> int:
        return len(self.principals) * (len(self.schemas) + len(self.relations))


OBJECTS_SQL = """
SELECT 'schema' AS kind, n.oid, n.nspname AS schema, n.nspname AS name, n.nspowner AS owner
FROM pg_namespace n WHERE n.nspname = ANY(%(schemas)s::name[])
UNION ALL
SELECT 'relation', c.oid, n.nspname, c.relname, c.relowner
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%(schemas)s::name[]) AND c.relkind IN ('r', 'v', 'm', 'p', 'f', 'S')
"""


def list_objects(conn: psycopg.Connection, matrix: matrix_family.Matrix) -> Objects:
    schemas = [x.area.name for x in matrix.isolated]
    rows = conn.execute(OBJECTS_SQL, {"schemas": schemas}).fetchall()
    return Objects(tuple((x.oid, x.name) for x in matrix.principals),
                   tuple((oid, name, owner) for kind, oid, _, name, owner in rows if kind == "schema"),
                   tuple((oid, schema, name, owner) for kind, oid, schema, name, owner in rows if kind == "relation"))


@dataclass
class Ours:
    seconds: float
    queries: int
    matrix: matrix_family.Matrix
    findings: list  # (check id, finding)


def matrix_once(conn: psycopg.Connection, admin: str, sizes: Sizes) -> Ours:
    """Every check of the tenants family, from a fresh catalog, as ops.verify runs them."""
    started = time.perf_counter()
    catalog = Catalog(conn, schema=DEFAULT_SCHEMA, umami_role=DEFAULT_ROLE, admin_role=admin,
                      app_roles=(pgcluster.APP_ROLE,))
    matrix = matrix_family.load_matrix(catalog, tenants=sizes.names, registry=None, service_role=None)
    findings = [(check.id, f) for check in matrix_family.CHECKS for f in check.evaluate(matrix)]
    return Ours(time.perf_counter() - started, catalog.queries, matrix, findings)


def matrix_verdicts(ours: Ours, objects: Objects, roles: set[int] | None = None) -> set[tuple[int, int]]:
    """(principal, object) pairs the matrix says the principal holds a privilege on (has_*_privilege's view)."""
    m = ours.matrix
    by_oid = {x.oid: x for x in m.principals}
    owned: dict[int, list[int]] = {}
    for oid, _, _, owner in objects.relations:
        owned.setdefault(owner, []).append(oid)
    for oid, _, owner in objects.schemas:
        owned.setdefault(owner, []).append(oid)
    granted: dict[int, set[int]] = {}
    for oid, grantees in m.relation_grantees.items():
        for grantee in grantees:
            granted.setdefault(grantee, set()).add(oid)
    for area_oid, rows in m.schema_entries.items():
        for row in rows:
            granted.setdefault(row.grantee, set()).add(area_oid)
    reached = set()
    for role, _ in objects.principals:
        if roles is not None and role not in roles:
            continue
        for grantee in m.inherited_grantees(by_oid[role]):
            reached |= {(role, oid) for oid in owned.get(grantee, ())}
            reached |= {(role, oid) for oid in granted.get(grantee, ())}
    return reached


@dataclass
class Peer:
    seconds: float  # measured
    queries: int
    probes: int  # has_*_privilege calls made
    full_probes: int  # what the full answer needs
    reached: set[tuple[int, int]]
    pairs: set[tuple[int, int]]  # the pairs it answered
    method: str
    full_seconds: float | None = None  # what the whole answer takes, when not linear in the probes

    @property
    def extrapolated(self) -> float:
        """The time the whole answer takes: measured, or extrapolated linearly from the part measured."""
        if self.full_seconds is not None:
            return self.full_seconds
        return self.seconds * self.full_probes / self.probes


# Column grants count as reaching the table (the matrix reports them): has_any_column_privilege covers the
# privileges a column can carry, table-level grants included; has_table_privilege the rest.
COLUMN_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "REFERENCES")
TABLE_ONLY_PRIVILEGES = tuple(p for p in TABLE_PRIVILEGES if p not in COLUMN_PRIVILEGES)
TABLE_PROBE = (f"SELECT has_any_column_privilege(%(role)s::oid, %(oid)s::oid, '{', '.join(COLUMN_PRIVILEGES)}') "
               f"OR has_table_privilege(%(role)s::oid, %(oid)s::oid, '{', '.join(TABLE_ONLY_PRIVILEGES)}')")
SCHEMA_PROBE = f"SELECT has_schema_privilege(%(role)s::oid, %(oid)s::oid, '{', '.join(SCHEMA_PRIVILEGES)}')"


def naive_loop(conn: psycopg.Connection, objects: Objects, planted: set[tuple[int, int]], sample: int,
               seed: int = 15) -> Peer:
    """One query per (principal, object) pair of a deterministic sample, planted pairs first."""
    schema_oids = {oid for oid, _, _ in objects.schemas}
    targets = [oid for oid, _, _ in objects.schemas] + [oid for oid, _, _, _ in objects.relations]
    rng = random.Random(seed)
    chosen = list(planted)
    wanted = min(sample, objects.pairs)
    seen = set(chosen)
    while len(chosen) < wanted:
        pair = (rng.choice(objects.principals)[0], rng.choice(targets))
        if pair not in seen:
            seen.add(pair)
            chosen.append(pair)
    reached = set()
    started = time.perf_counter()
    for role, oid in chosen:
        probe = SCHEMA_PROBE if oid in schema_oids else TABLE_PROBE
        if conn.execute(probe, {"role": role, "oid": oid}).fetchone()[0]:
            reached.add((role, oid))
    seconds = time.perf_counter() - started
    method = (f"{len(chosen):,} of {objects.pairs:,} pairs (deterministic sample, planted leaks included), "
              "one query each; time extrapolated linearly")
    return Peer(seconds, len(chosen), len(chosen), objects.pairs, reached, set(chosen), method)


CROSS_JOIN_SQL = f"""
SELECT p.role, o.oid
FROM unnest(%(roles)s::oid[]) AS p(role)
CROSS JOIN (SELECT c.oid FROM pg_class c
            WHERE c.relnamespace = ANY(%(schemas)s::oid[]) AND c.relkind IN ('r', 'v', 'm', 'p', 'f', 'S')) o
CROSS JOIN unnest(ARRAY{list(TABLE_PRIVILEGES)}) AS v(privilege)
WHERE CASE WHEN v.privilege = ANY(ARRAY{list(COLUMN_PRIVILEGES)}) THEN has_any_column_privilege(p.role, o.oid, v.privilege)
           ELSE has_table_privilege(p.role, o.oid, v.privilege) END
UNION
SELECT p.role, n.oid
FROM unnest(%(roles)s::oid[]) AS p(role)
CROSS JOIN unnest(%(schemas)s::oid[]) AS n(oid)
CROSS JOIN unnest(ARRAY{list(SCHEMA_PRIVILEGES)}) AS v(privilege)
WHERE has_schema_privilege(p.role, n.oid, v.privilege)
"""


def _cross_join_once(conn: psycopg.Connection, objects: Objects, roles: list[int],
                     budget: float | None = None) -> tuple[float, set | None]:
    """Seconds and answer of one cross-join; with `budget`, None for an answer stopped at that many seconds."""
    params = {"roles": roles, "schemas": [oid for oid, _, _ in objects.schemas]}
    started = time.perf_counter()
    try:
        with conn.transaction():
            if budget is not None:
                conn.execute("SELECT set_config('statement_timeout', %s, true)", (f"{int(budget * 1000)}ms",))
            rows = conn.execute(CROSS_JOIN_SQL, params).fetchall()
    except psycopg.errors.QueryCanceled:
        return time.perf_counter() - started, None
    return time.perf_counter() - started, {(role, oid) for role, oid in rows}


def cross_join(conn: psycopg.Connection, objects: Objects, planted_roles: set[int], budget: float) -> Peer:
    """The pg_permissions way, filtered on the principals: a sample of them first, then every principal
    when the sample projects within the budget (stopped at the budget: the sample stands)."""
    calls_per_principal = len(objects.relations) * len(TABLE_PRIVILEGES) + len(objects.schemas) * len(SCHEMA_PRIVILEGES)
    everyone = [oid for oid, _ in objects.principals]
    rest = [oid for oid in everyone if oid not in planted_roles]
    sample = sorted(planted_roles) + random.Random(15).sample(rest, min(len(rest), CROSS_JOIN_SAMPLE))
    seconds, reached = _cross_join_once(conn, objects, sample)
    projected = seconds * len(everyone) / len(sample)
    targets = len(objects.schemas) + len(objects.relations)
    lower_bound = None
    if len(sample) < len(everyone) and projected <= budget:
        progress(f"cross-join: {len(sample)} principals in {seconds:.1f} s; every principal projected at "
                 f"{projected:.0f} s: running it whole (stopped at {budget:.0f} s)")
        whole_seconds, whole = _cross_join_once(conn, objects, everyone, budget)
        if whole is not None:
            seconds, reached, sample = whole_seconds, whole, everyone
        else:
            lower_bound = whole_seconds
    if len(sample) == len(everyone):
        method = f"one query, every principal × {targets:,} objects × each privilege, run whole"
        full_seconds = seconds
    else:
        # Linear is a floor: the planner loops over the objects outside and switches role on every call.
        full_seconds = max(projected, lower_bound or 0.0)
        why = (f"the whole was stopped after {lower_bound:.0f} s unfinished" if lower_bound is not None
               else f"the whole projects to {projected:.0f} s > {budget:.0f} s")
        method = (f"one query for {len(sample)} of {len(everyone):,} principals (planted ones included) × "
                  f"{targets:,} objects × each privilege; {why}, so the time shown is at least "
                  f"{'what the stopped run took' if lower_bound is not None else 'the linear extrapolation'}")
    pairs = {(role, oid) for role in sample for oid in
             [o for o, _, _ in objects.schemas] + [o for o, _, _, _ in objects.relations]}
    return Peer(seconds, 1, calls_per_principal * len(sample), calls_per_principal * len(everyone), reached, pairs,
                method, full_seconds)


# -- the result ---------------------------------------------------------------------------

@dataclass
class Result:
    sizes: Sizes
    build_seconds: float
    peak_rss_mb: float
    matrix_peak_mb: float
    objects: Objects
    ours: Ours
    first_seconds: float
    loop: Peer
    cross: Peer
    leaks: list[Leak]
    disagreements: list[str]

    @property
    def loop_ratio(self) -> float:
        return self.loop.extrapolated / self.ours.seconds

    @property
    def cross_ratio(self) -> float:
        return self.cross.extrapolated / self.ours.seconds

    def targets_met(self) -> bool:
        return (self.ours.seconds <= TARGET_SECONDS and self.ours.queries <= TARGET_QUERIES
                and self.loop_ratio >= TARGET_LOOP_RATIO and self.cross_ratio >= TARGET_CROSS_JOIN_RATIO
                and not self.disagreements)

    def lines(self) -> list[str]:
        o, s = self.objects, self.sizes
        head = [f"database: {s.tenants:,} tenants × {s.tables} tables ({s.tenants * s.tables:,} tables), "
                f"{len(o.principals):,} principals (umami, the tenants, the application role), "
                f"{len(o.schemas):,} isolated schemas, {len(o.relations):,} relations there; "
                f"{len(self.leaks)} planted leaks",
                f"built in {self.build_seconds:.1f} s in one transaction; peak memory: {self.peak_rss_mb:.0f} MB "
                f"(this process), the matrix {self.matrix_peak_mb:.1f} MB (tracemalloc)"]
        rows = [("way", "time", "queries", "has_*_privilege calls", "vs ours", "how"),
                ("ours: the matrix (TEN-001..013)", f"{self.ours.seconds:.3f} s", f"{self.ours.queries}", "0", "1x",
                 f"best of the runs ({self.first_seconds:.3f} s the first); {len(self.ours.findings)} findings"),
                ("(a) naive loop", f"{self.loop.extrapolated:,.1f} s", f"{self.loop.full_probes:,}",
                 f"{self.loop.full_probes:,}", f"{self.loop_ratio:,.0f}x",
                 f"measured {self.loop.seconds:.2f} s on {self.loop.method}"),
                ("(b) cross-join", f"{'>= ' if self.cross.probes < self.cross.full_probes else ''}"
                                   f"{self.cross.extrapolated:,.1f} s", "1", f"{self.cross.full_probes:,}",
                 f"{self.cross_ratio:,.0f}x", f"measured {self.cross.seconds:.2f} s: {self.cross.method}")]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        table = ["  " + "  ".join(cell.ljust(widths[i]) if i < len(widths) else cell for i, cell in enumerate(row))
                 for row in rows]
        agreement = ("agreement: all three agree on every shared pair "
                     f"({len(self.loop.pairs):,} with the loop, {len(self.cross.pairs):,} with the cross-join) and on "
                     f"each planted leak ({', '.join(leak.kind for leak in self.leaks)})"
                     if not self.disagreements else f"DISAGREEMENT: {'; '.join(self.disagreements[:5])}")
        return head + table + [agreement]


def compare(leaks: list[Leak], planted: list[tuple[int, int]], ours: Ours, objects: Objects, loop: Peer,
            cross: Peer) -> list[str]:
    """Where the three disagree, and planted leaks any of them (or the matrix's findings) missed."""
    problems = []
    mine_loop = {pair for pair in matrix_verdicts(ours, objects, {r for r, _ in loop.pairs}) if pair in loop.pairs}
    problems += [f"matrix and loop differ on {pair}" for pair in sorted(mine_loop ^ loop.reached)]
    mine_cross = matrix_verdicts(ours, objects, {r for r, _ in cross.pairs})
    problems += [f"matrix and cross-join differ on {pair}" for pair in sorted(mine_cross ^ cross.reached)]
    for leak, pair in zip(leaks, planted):
        if not (pair in mine_loop and pair in loop.reached and (pair not in cross.pairs or pair in cross.reached)):
            problems.append(f"planted {leak.kind} not reached by all three")
        if not any(leak.reported_by(check, finding) for check, finding in ours.findings):
            problems.append(f"planted {leak.kind}: no {leak.check} finding for {leak.gainer} → {leak.victim}")
    return problems


def planted_pairs(leaks: list[Leak], objects: Objects) -> list[tuple[int, int]]:
    roles = {name: oid for oid, name in objects.principals}
    where = {(schema, None): oid for oid, schema, _ in objects.schemas}
    where |= {(schema, name): oid for oid, schema, name, _ in objects.relations}
    return [(roles[leak.gainer], where[leak.target]) for leak in leaks]


def measure(target: Target, admin: str, sizes: Sizes, build_seconds: float, *, repeat: int, loop_sample: int,
            cross_join_budget: float) -> Result:
    """The matrix (best of `repeat`, one traced for memory), the loop and the cross-join on one connection."""
    with connect(target, statement_timeout_ms=int(max(cross_join_budget, 60) * 4 * 1000)) as conn:
        conn.autocommit = True
        runs = [matrix_once(conn, admin, sizes) for _ in range(repeat)]
        tracemalloc.start()
        matrix_once(conn, admin, sizes)
        matrix_peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        ours = min(runs, key=lambda r: r.seconds)
        objects = list_objects(conn, ours.matrix)
        leaks = planted_leaks(sizes, admin)
        planted = planted_pairs(leaks, objects)
        progress(f"matrix: {ours.seconds:.3f} s, {ours.queries} queries; now the naive loop")
        loop = naive_loop(conn, objects, set(planted), loop_sample)
        progress(f"naive loop: {loop.probes:,} probes in {loop.seconds:.1f} s; now the cross-join")
        cross = cross_join(conn, objects, {role for role, _ in planted}, cross_join_budget)
    problems = compare(leaks, planted, ours, objects, loop, cross)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return Result(sizes, build_seconds, peak_rss, matrix_peak, objects, ours, runs[0].seconds, loop, cross, leaks,
                  problems)


def run_on_throwaway_cluster(sizes: Sizes, *, repeat: int, loop_sample: int, cross_join_budget: float) -> Result:
    base = Path(tempfile.mkdtemp(prefix="bench-tenants-"))
    cluster = pgcluster.LocalCluster(base / "cluster")
    try:
        superuser_password = pgcluster.new_password()
        cluster.init(superuser_password)
        with open(cluster.data_dir / "postgresql.conf", "a") as conf:
            conf.write(LOCKS_SETTING)
        cluster.start()
        admin, _ = pgcluster.bootstrap_aurora_like(cluster, superuser_password)
        with cluster.connect(pgcluster.SUPERUSER, superuser_password, pgcluster.APP_DATABASE, autocommit=True) as su:
            build_seconds = build(su, admin.user, sizes)
        progress(f"built {sizes.tenants} tenants × {sizes.tables} tables in {build_seconds:.1f} s")
        target = Target("127.0.0.1", cluster.port, pgcluster.APP_DATABASE, admin.user, admin.password,
                        "verify-full", sslrootcert=str(cluster.ca_file))
        return measure(target, admin.user, sizes, build_seconds, repeat=repeat, loop_sample=loop_sample,
                       cross_join_budget=cross_join_budget)
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tenants", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=_positive, default=1000)
    parser.add_argument("--tables", type=_positive, default=20, help="tables per tenant")
    parser.add_argument("--loop-sample", type=_positive, default=20_000, help="pairs the naive loop probes")
    parser.add_argument("--cross-join-budget", type=float, default=300.0,
                        help="seconds the whole cross-join may take to be run whole")
    parser.add_argument("--repeat", type=_positive, default=3, help="matrix runs; the best one counts")
    args = parser.parse_args(argv)
    if args.tenants < 17:
        parser.error("--tenants must be at least 17: the planted leaks use tenants 1..16")
    return run_command_line(report, args)


def report(args: argparse.Namespace) -> int:
    result = run_on_throwaway_cluster(Sizes(args.tenants, args.tables), repeat=args.repeat,
                                      loop_sample=args.loop_sample, cross_join_budget=args.cross_join_budget)
    print("\n".join(result.lines()))
    met = result.targets_met()
    print(f"targets (matrix <= {TARGET_SECONDS:g} s in <= {TARGET_QUERIES} queries, >= {TARGET_LOOP_RATIO:g}x the "
          f"loop, >= {TARGET_CROSS_JOIN_RATIO:g}x the cross-join, all three agreeing): {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
