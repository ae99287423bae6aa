"""Umami's schema as the umami role sees it: tables, Prisma's migrations, pgcrypto.

Runs as umami (the admin cannot read `_prisma_migrations`, which umami owns).
Before Umami's first start there is nothing to check yet: that is reported as
information, not as a failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg
from psycopg import sql

from ops.verify.checks.base import Finding, Severity, declare

# Umami 2.x (PostgreSQL): 11 tables; 3.1 adds link, pixel, share, board and session replay (17).
UMAMI_2_TABLES = frozenset({
    "user", "session", "website", "website_event", "event_data", "team", "team_user", "report",
    "session_data", "segment", "revenue",
})
UMAMI_3_1_TABLES = UMAMI_2_TABLES | {"link", "pixel", "share", "board", "session_replay", "session_replay_saved"}
MIGRATIONS_TABLE = "_prisma_migrations"

STATE_SQL = """
SELECT (SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_class c
         WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p')) AS tables,
       (SELECT en.nspname FROM pg_extension e JOIN pg_namespace en ON en.oid = e.extnamespace
         WHERE e.extname = 'pgcrypto') AS pgcrypto_schema,
       (SELECT count(*) > 0 FROM pg_available_extensions WHERE name = 'pgcrypto') AS pgcrypto_available
FROM pg_namespace n WHERE n.nspname = %(schema)s
"""

MIGRATIONS_SQL = """
SELECT migration_name, finished_at IS NOT NULL AS finished, rolled_back_at IS NOT NULL AS rolled_back
FROM {} ORDER BY started_at
"""


@dataclass(frozen=True)
class SchemaState:
    schema: str
    version: str | None
    tables: frozenset[str]
    pgcrypto_schema: str | None
    pgcrypto_available: bool
    migrations: list[tuple[str, bool, bool]] | None  # None: no _prisma_migrations table yet

    @property
    def migrated(self) -> bool:
        return self.migrations is not None


def expected_tables(version: str | None) -> frozenset[str] | None:
    """The tables of a known Umami version ('3.1.0', 'v2.19.0'), None when unknown."""
    match = re.match(r"v?(\d+)\.(\d+)", version or "")
    if not match:
        return None
    major, minor = int(match[1]), int(match[2])
    if major == 2:
        return UMAMI_2_TABLES
    if major == 3 and minor == 1:
        return UMAMI_3_1_TABLES
    return None


def load_state(conn: psycopg.Connection, schema: str, version: str | None) -> SchemaState:
    with conn.transaction(force_rollback=True):
        row = conn.execute(STATE_SQL, {"schema": schema}).fetchone()
        tables = frozenset(row[0] or []) if row else frozenset()
        migrations = None
        if MIGRATIONS_TABLE in tables:
            migrations = conn.execute(sql.SQL(MIGRATIONS_SQL).format(
                sql.Identifier(schema, MIGRATIONS_TABLE))).fetchall()
    return SchemaState(schema=schema, version=version, tables=tables - {MIGRATIONS_TABLE},
                       pgcrypto_schema=row[1] if row else None, pgcrypto_available=bool(row and row[2]),
                       migrations=migrations)


def tables_present(state: SchemaState) -> list[Finding]:
    expected = expected_tables(state.version)
    if not state.migrated:
        return [Finding(Severity.INFO, f"schema {state.schema}",
                        f"no {MIGRATIONS_TABLE} yet: Umami has not started against this database")]
    if expected is None:
        return [Finding(Severity.INFO, f"schema {state.schema}",
                        f"Umami version {state.version or 'unknown'}: no table list to compare; "
                        f"{len(state.tables)} tables present")]
    missing = sorted(expected - state.tables)
    if missing:
        return [Finding(Severity.MEDIUM, f"schema {state.schema}",
                        f"Umami {state.version}: {len(missing)} of {len(expected)} tables missing: {', '.join(missing)}")]
    return []


def migrations_clean(state: SchemaState) -> list[Finding]:
    findings = []
    for name, finished, rolled_back in state.migrations or []:
        if rolled_back:
            findings.append(Finding(Severity.LOW, name, "rolled back (marked resolved; check it was re-applied)"))
        elif not finished:
            findings.append(Finding(Severity.HIGH, name, "failed or still running: Prisma refuses to start (P3009) "
                                                         "until it is resolved"))
    return findings


def pgcrypto_ready(state: SchemaState) -> list[Finding]:
    if state.pgcrypto_schema:
        return []
    if state.pgcrypto_available:
        return [Finding(Severity.MEDIUM, "pgcrypto", "not installed: Umami's first migration will fail "
                                                     "(the umami role cannot CREATE EXTENSION)")]
    return [Finding(Severity.MEDIUM, "pgcrypto", "not available on this server")]


CHECKS = declare("schema", {  # titles, severities, remediations: checks.toml
    "SCH-001": tables_present, "SCH-002": migrations_clean, "SCH-003": pgcrypto_ready,
})
