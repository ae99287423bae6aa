"""Live probes as the umami role, with a real login: what isolation means, tried for real.

Every probe runs inside a transaction that is always rolled back, under the
connection's statement_timeout and lock_timeout, and expects PostgreSQL's
permission error (SQLSTATE 42501) or an empty result. Writes are attempted only
inside those transactions, so nothing is ever committed.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from ops.verify.checks.base import Finding, Severity, declare
from ops.core.db import redact

INSUFFICIENT_PRIVILEGE = "42501"
PROBE_TABLE = "umami_ops_probe"

# Application tables: outside the schema and the system, not part of an extension (e.g. the
# pg_stat_statements view, which its extension grants to PUBLIC). Readable ones first.
SAMPLE_SQL = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname <> %(schema)s
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND d.deptype = 'e')
ORDER BY has_table_privilege(c.oid, 'SELECT') DESC, random()
LIMIT %(limit)s
"""

LISTED_SQL = """
SELECT t.table_schema, t.table_name FROM information_schema.tables t
WHERE t.table_schema <> ALL(%(hidden)s) AND t.table_schema !~ '^pg_temp_'
  -- Matched by name through the catalogs: to_regclass() would fail on a schema without USAGE.
  AND NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
                  WHERE n.nspname = t.table_schema AND c.relname = t.table_name)
ORDER BY 1, 2 LIMIT 20
"""


@dataclass
class ProbeSession:
    """An open login as umami and what the probes need to know."""

    conn: psycopg.Connection
    schema: str
    app_roles: list[str]
    sample_size: int


@dataclass(frozen=True)
class Attempt:
    label: str
    sqlstate: str | None  # None: it succeeded
    detail: str


def attempt(conn: psycopg.Connection, label: str, statement: sql.Composable, *, write: bool = False) -> Attempt:
    """Run `statement` in a transaction that is always rolled back.

    The session is read-only by default; a write probe lifts that for its own
    transaction only, so PostgreSQL answers with the permission check, not 25006.
    """
    try:
        with conn.transaction(force_rollback=True):
            if write:
                conn.execute("SET TRANSACTION READ WRITE")
            cur = conn.execute(statement)
            rows = cur.fetchmany(1) if cur.description else []
    except psycopg.Error as exc:
        message = redact(str(exc)).strip().splitlines()
        return Attempt(label, exc.sqlstate, message[0] if message else "")
    return Attempt(label, None, "returned a row" if rows else "succeeded")


def _judge(attempts: list[Attempt], severity: Severity) -> list[Finding]:
    findings = []
    for a in attempts:
        if a.sqlstate == INSUFFICIENT_PRIVILEGE:
            continue
        if a.sqlstate is None:
            findings.append(Finding(severity, a.label, f"{a.detail}: expected permission denied (42501)"))
        else:  # a timeout, a lock, a missing object: the probe could not decide
            findings.append(Finding(Severity.INFO, a.label, f"inconclusive: SQLSTATE {a.sqlstate} {a.detail}"))
    return findings


def read_application_tables(session: ProbeSession) -> list[Finding]:
    conn = session.conn
    with conn.transaction(force_rollback=True):
        sample = conn.execute(SAMPLE_SQL, {"schema": session.schema, "limit": session.sample_size}).fetchall()
    attempts = [attempt(conn, f"SELECT from {nsp}.{rel}",
                        sql.SQL("SELECT 1 FROM {} LIMIT 1").format(sql.Identifier(nsp, rel)))
                for nsp, rel in sample]
    return _judge(attempts, Severity.CRITICAL)


def create_in_public(session: ProbeSession) -> list[Finding]:
    statement = sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier("public", PROBE_TABLE))
    return _judge([attempt(session.conn, "CREATE TABLE in schema public", statement, write=True)], Severity.HIGH)


def set_role_to_application(session: ProbeSession) -> list[Finding]:
    attempts = [attempt(session.conn, f"SET ROLE {role}", sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
                for role in session.app_roles[:session.sample_size]]
    return _judge(attempts, Severity.CRITICAL)


def information_schema_listing(session: ProbeSession) -> list[Finding]:
    conn = session.conn
    with conn.transaction(force_rollback=True):
        hidden = [session.schema, "pg_catalog", "information_schema"]
        listed = conn.execute(LISTED_SQL, {"hidden": hidden}).fetchall()
    return [Finding(Severity.HIGH, f"{nsp}.{rel}", "listed in information_schema.tables for the umami role")
            for nsp, rel in listed]


CHECKS = declare("probes", {  # titles, severities, remediations: checks.toml
    "PRB-001": read_application_tables, "PRB-002": create_in_public, "PRB-003": set_role_to_application,
    "PRB-004": information_schema_listing,
})
