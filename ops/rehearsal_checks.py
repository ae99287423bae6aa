"""The rehearsal's closing proof, with real logins as the umami role.

1. The role can work in its schema: with only the role's own search_path it
   creates a table with a UUID default, inserts and reads a row (rolled back).
2. It cannot reach the application: reading any application table, creating a
   table in `public`, `SET ROLE` to an application role all fail with 42501, and
   information_schema lists no application table.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from ops.db import Target
from ops.errors import OpsError

INSUFFICIENT_PRIVILEGE = "42501"


@dataclass
class ProbeResult:
    name: str
    passed: bool
    evidence: str


def _login(target: Target) -> psycopg.Connection:
    try:
        return psycopg.connect(target.conninfo(options="-c statement_timeout=5000 -c lock_timeout=2000"))
    except psycopg.OperationalError as exc:
        raise OpsError(f"cannot log in as {target.describe()}: {str(exc).strip().splitlines()[-1]}") from None


def expect_denied(conn: psycopg.Connection, name: str, statement: sql.Composable) -> ProbeResult:
    """Run `statement` in a transaction that is always rolled back; expect 42501."""
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(statement)
    except psycopg.Error as exc:
        passed = exc.sqlstate == INSUFFICIENT_PRIVILEGE
        return ProbeResult(name, passed, f"SQLSTATE {exc.sqlstate}")
    return ProbeResult(name, False, "succeeded")


def probe_work_in_schema(conn: psycopg.Connection, schema: str) -> ProbeResult:
    try:
        with conn.transaction(force_rollback=True):
            path = conn.execute("SHOW search_path").fetchone()[0]
            conn.execute("CREATE TABLE rehearsal_probe (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), note text)")
            conn.execute("INSERT INTO rehearsal_probe (note) VALUES ('ok')")
            where = conn.execute("SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                 "WHERE c.relname = 'rehearsal_probe'").fetchone()[0]
            count = conn.execute("SELECT count(*) FROM rehearsal_probe").fetchone()[0]
    except psycopg.Error as exc:
        return ProbeResult("work in own schema", False, f"SQLSTATE {exc.sqlstate}: {str(exc).splitlines()[0]}")
    passed = where == schema and count == 1
    return ProbeResult("work in own schema", passed, f"search_path={path}; table created in {where}; {count} row")


def application_tables(admin: Target, schema: str) -> list[tuple[str, str]]:
    with psycopg.connect(admin.conninfo()) as conn:
        return conn.execute("""
            SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname <> %s
              AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
            ORDER BY 1, 2""", (schema,)).fetchall()


def run_probes(umami: Target, admin: Target, schema: str, app_roles: list[str]) -> list[ProbeResult]:
    tables = application_tables(admin, schema)
    results = []
    with _login(umami) as conn:
        results.append(probe_work_in_schema(conn, schema))
        for nsp, rel in tables:
            results.append(expect_denied(conn, f"read {nsp}.{rel}",
                                         sql.SQL("SELECT * FROM {}.{} LIMIT 1").format(sql.Identifier(nsp), sql.Identifier(rel))))
        results.append(expect_denied(conn, "create table in public",
                                     sql.SQL("CREATE TABLE public.umami_probe (id int)")))
        for role in app_roles:
            results.append(expect_denied(conn, f"SET ROLE {role}", sql.SQL("SET ROLE {}").format(sql.Identifier(role))))
        with conn.transaction(force_rollback=True):
            visible = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN "
                "(%s, 'pg_catalog', 'information_schema')", (schema,)).fetchone()[0]
        results.append(ProbeResult("information_schema hides application tables", visible == 0,
                                   f"{visible} application tables visible"))
    return results


def check_rehearsal(result) -> int:
    """Print the probes' results for a finished rehearsal; 0 when isolation holds."""
    outputs = result.outputs
    role = result.run.one("postgresql:index/role:Role").inputs
    umami = Target(host=result.db.admin.host, port=result.db.admin.port, dbname=result.db.admin.dbname,
                   user=role["name"], password=role["password"], sslmode=result.db.admin.sslmode)
    probes = run_probes(umami, result.db.admin, outputs["dbSchema"], list(outputs.get("applicationRoles") or []))
    print(f"checks as {umami.describe()} (real login, search_path from the role):")
    for probe in probes:
        print(f"  {'PASS' if probe.passed else 'FAIL'}  {probe.name}: {probe.evidence}")
    failed = [p for p in probes if not p.passed]
    print("isolation confirmed" if not failed else f"isolation NOT confirmed: {len(failed)} check(s) failed")
    return 0 if not failed else 1
