"""Umami's schema as the umami role sees it: tables, Prisma's migrations, pgcrypto, ownership.

Runs as umami (the admin cannot read `_prisma_migrations`, which umami owns). Everything
but the migration rows comes from the catalogs, which any role reads, so the tables,
pgcrypto and ownership are answered even when umami cannot read its own tables (after a
destroy without cascade and a redeploy, the admin owns them). The rows of
`_prisma_migrations` are read only when SCH-002 asks, and only through the columns Prisma
defines, after checking they are there with Prisma's types. Before Umami's first start
there is nothing to check yet: that is reported as information, not as a failure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property

import psycopg
from psycopg import sql

from ops.verify.checks.base import Finding, FixAs, Severity, declare

# Umami 2.x (PostgreSQL): 11 tables; 3.1 adds link, pixel, share, board and session replay (17).
UMAMI_2_TABLES = frozenset({
    "user", "session", "website", "website_event", "event_data", "team", "team_user", "report",
    "session_data", "segment", "revenue",
})
UMAMI_3_1_TABLES = UMAMI_2_TABLES | {"link", "pixel", "share", "board", "session_replay", "session_replay_saved"}
MIGRATIONS_TABLE = "_prisma_migrations"

# Prisma's bookkeeping table as its migration engine creates it (column -> format_type).
PRISMA_COLUMNS = {
    "id": "character varying", "checksum": "character varying", "finished_at": "timestamp with time zone",
    "migration_name": "character varying", "logs": "text", "rolled_back_at": "timestamp with time zone",
    "started_at": "timestamp with time zone", "applied_steps_count": "integer",
}
# The columns MIGRATIONS_SQL reads: without any of them, the migrations cannot be judged.
READ_COLUMNS = ("migration_name", "finished_at", "rolled_back_at", "started_at")

# What "fully granted" means: everything the stack's default privileges give the umami role.
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
SEQUENCE_PRIVILEGES = ("USAGE", "SELECT", "UPDATE")

STATE_SQL = """
SELECT session_user AS login,
       (SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_class c
         WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p')) AS tables,
       (SELECT en.nspname FROM pg_extension e JOIN pg_namespace en ON en.oid = e.extnamespace
         WHERE e.extname = 'pgcrypto') AS pgcrypto_schema,
       (SELECT count(*) > 0 FROM pg_available_extensions WHERE name = 'pgcrypto') AS pgcrypto_available,
       (SELECT pg_get_userbyid(c.relowner) FROM pg_class c
         WHERE c.relnamespace = n.oid AND c.relname = %(migrations)s AND c.relkind IN ('r', 'p')) AS migrations_owner,
       (SELECT json_agg(json_build_array(a.attname, format_type(a.atttypid, NULL), a.attnotnull AND NOT a.atthasdef)
                        ORDER BY a.attnum)
          FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
         WHERE c.relnamespace = n.oid AND c.relname = %(migrations)s AND c.relkind IN ('r', 'p')
           AND a.attnum > 0 AND NOT a.attisdropped) AS migration_columns
FROM (SELECT 1) one LEFT JOIN pg_namespace n ON n.nspname = %(schema)s  -- one row, even without the schema
"""

# Tables and sequences in the schema that the login (umami) does not own, with the privileges it
# lacks on each and whether the schema's owner (the admin) can act as the old and the new owner.
# A sequence a column owns (serial, identity) is left out: it follows its table's owner.
NOT_OWNED_SQL = """
SELECT c.relname, c.relkind::text AS kind, o.rolname AS owner, o.rolsuper AS owner_is_superuser,
       ARRAY(SELECT p FROM unnest(CASE WHEN c.relkind = 'S' THEN %(sequence_privileges)s::text[]
                                       ELSE %(table_privileges)s::text[] END) WITH ORDINALITY AS x(p, i)
             WHERE NOT CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(u.oid, c.oid, p)
                            ELSE has_table_privilege(u.oid, c.oid, p) END
             ORDER BY i) AS missing,
       a.rolname AS admin,
       pg_has_role(a.oid, c.relowner, 'MEMBER') AS admin_acts_as_owner,
       pg_has_role(a.oid, u.oid, 'MEMBER') AS admin_acts_as_umami
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_roles o ON o.oid = c.relowner
JOIN pg_roles a ON a.oid = n.nspowner
JOIN pg_roles u ON u.rolname = session_user
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p', 'S') AND c.relowner <> u.oid
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                    AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
ORDER BY c.relname
"""

MIGRATIONS_SQL = """
SELECT coalesce(migration_name, '(no name)'), finished_at IS NOT NULL AS finished,
       rolled_back_at IS NOT NULL AS rolled_back
FROM {} ORDER BY started_at
"""


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type, e.g. 'timestamp with time zone'
    required: bool  # NOT NULL without a default: an INSERT that leaves it out fails


@dataclass(frozen=True)
class NotOwned:
    """A table or sequence in the schema that the umami role does not own."""

    name: str
    kind: str  # 'r' table, 'p' partitioned table, 'S' sequence
    owner: str
    owner_is_superuser: bool
    missing: tuple[str, ...]  # privileges the umami role lacks on it
    admin: str  # the schema's owner, who runs the repair
    admin_acts_as_owner: bool
    admin_acts_as_umami: bool

    @property
    def noun(self) -> str:
        return "sequence" if self.kind == "S" else "table"


class MigrationRows:
    """`_prisma_migrations`' (name, finished, rolled back) in start order, read on first use: only the
    umami role can read the table, and a refusal then fails SCH-002 alone."""

    def __init__(self, conn: psycopg.Connection, schema: str):
        self.conn, self.schema = conn, schema

    @cached_property
    def rows(self) -> list[tuple[str, bool, bool]]:
        with self.conn.transaction(force_rollback=True):
            return self.conn.execute(sql.SQL(MIGRATIONS_SQL).format(
                sql.Identifier(self.schema, MIGRATIONS_TABLE))).fetchall()

    def __iter__(self) -> Iterator[tuple[str, bool, bool]]:
        return iter(self.rows)


PRISMA_SHAPE = tuple(Column(name, type_, False) for name, type_ in PRISMA_COLUMNS.items())


@dataclass(frozen=True)
class SchemaState:
    """What the schema family judges; the defaults describe umami's own `_prisma_migrations`, as Prisma makes it."""

    schema: str
    version: str | None
    tables: frozenset[str]
    pgcrypto_schema: str | None
    pgcrypto_available: bool
    migrations: Iterable[tuple[str, bool, bool]] | None  # None: no _prisma_migrations table yet
    role: str = ""  # the umami login
    migrations_owner: str | None = None
    migration_columns: tuple[Column, ...] = PRISMA_SHAPE
    not_owned: tuple[NotOwned, ...] = ()

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
        row = conn.execute(STATE_SQL, {"schema": schema, "migrations": MIGRATIONS_TABLE}).fetchone()
        not_owned = conn.execute(NOT_OWNED_SQL, {
            "schema": schema, "table_privileges": list(TABLE_PRIVILEGES),
            "sequence_privileges": list(SEQUENCE_PRIVILEGES)}).fetchall()
    login, tables, pgcrypto_schema, pgcrypto_available, migrations_owner, columns = row
    return SchemaState(
        schema=schema, version=version, tables=frozenset(tables or []) - {MIGRATIONS_TABLE},
        pgcrypto_schema=pgcrypto_schema, pgcrypto_available=bool(pgcrypto_available),
        migrations=MigrationRows(conn, schema) if migrations_owner is not None else None,
        role=login, migrations_owner=migrations_owner,
        migration_columns=tuple(Column(*c) for c in columns or []),
        not_owned=tuple(NotOwned(name, kind, owner, superuser, tuple(missing), admin, as_owner, as_umami)
                        for name, kind, owner, superuser, missing, admin, as_owner, as_umami in not_owned))


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


def _statement(composed: sql.Composable) -> str:
    return composed.as_string(None) + ";"


def migrations_table_shape(state: SchemaState) -> list[Finding]:
    """What differs from Prisma's own `_prisma_migrations`: missing or retyped columns (Prisma cannot
    read its history) and columns it does not know (an INSERT of the next migration fails when one is
    required). A column of its own is dropped by the table's owner; a missing one has no safe SQL
    repair (its data may live on under another name)."""
    subject = f"table {state.schema}.{MIGRATIONS_TABLE}"
    found = {c.name: c for c in state.migration_columns}
    findings = []
    for name, expected in PRISMA_COLUMNS.items():
        column = found.get(name)
        if column is None:
            findings.append(Finding(Severity.HIGH, subject, f"column {name} ({expected}) is missing (renamed or "
                                                             f"dropped): Prisma cannot read its migrations"))
        elif column.type != expected:
            findings.append(Finding(Severity.HIGH, subject, f"column {name} is {column.type}, Prisma's is {expected}: "
                                                             f"Prisma cannot read its migrations"))
    intact = not findings
    fix_as = FixAs.ROLE if state.migrations_owner == state.role else FixAs.ADMIN
    for column in state.migration_columns:
        if column.name in PRISMA_COLUMNS:
            continue
        effect = ("NOT NULL without a default: Prisma's INSERT of the next migration fails" if column.required
                  else "the table was changed after Prisma created it")
        drop = sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(
            sql.Identifier(state.schema, MIGRATIONS_TABLE), sql.Identifier(column.name))
        findings.append(Finding(Severity.HIGH if column.required else Severity.MEDIUM, subject,
                                f"column {column.name} ({column.type}) is not one of Prisma's: {effect}",
                                fix=(_statement(drop),) if intact else (), fix_as=fix_as))
    return findings


def migrations_clean(state: SchemaState) -> list[Finding]:
    if not state.migrated:
        return []
    findings = migrations_table_shape(state)
    readable = {c.name: c.type for c in state.migration_columns}
    if any(readable.get(name) != PRISMA_COLUMNS[name] for name in READ_COLUMNS):
        return findings  # the history cannot be judged through columns that are not Prisma's
    for name, finished, rolled_back in state.migrations:
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


def _ownership_repair(state: SchemaState, obj: NotOwned) -> tuple[str, ...]:
    """The admin hands `obj` to the umami role. PostgreSQL 15 lets only a member of both the old and
    the new owner change an owner, so the admin borrows the memberships it lacks (its CREATEROLE may
    grant them, as the provider does for its own statements) and gives them back. Nothing the admin
    can run repairs an object a superuser owns."""
    borrowed = [role for role, held in ((obj.owner, obj.admin_acts_as_owner), (state.role, obj.admin_acts_as_umami))
                if not held]
    if obj.owner_is_superuser and obj.owner in borrowed:
        return ()
    admin = sql.Identifier(obj.admin)
    alter = sql.SQL("ALTER {} {} OWNER TO {}").format(
        sql.SQL(obj.noun.upper()), sql.Identifier(state.schema, obj.name), sql.Identifier(state.role))
    return tuple(_statement(s) for s in (
        [sql.SQL("GRANT {} TO {}").format(sql.Identifier(r), admin) for r in borrowed] + [alter]
        + [sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(r), admin) for r in borrowed]))


def owned_or_granted(state: SchemaState) -> list[Finding]:
    findings = []
    for obj in state.not_owned:
        if not obj.missing:
            continue  # fully granted: objects a DBA creates under the stack's default privileges
        everything = TABLE_PRIVILEGES if obj.noun == "table" else SEQUENCE_PRIVILEGES
        held = (f"with no privilege for {state.role}: Umami gets permission denied on it"
                if len(obj.missing) == len(everything) else f"and {state.role} lacks {', '.join(obj.missing)} on it")
        findings.append(Finding(
            Severity.HIGH, f"{obj.noun} {state.schema}.{obj.name}", f"owned by {obj.owner}, {held}",
            fix=_ownership_repair(state, obj), fix_as=FixAs.ADMIN))
    return findings


CHECKS = declare("schema", {  # titles, severities, remediations: checks.toml
    "SCH-001": tables_present, "SCH-002": migrations_clean, "SCH-003": pgcrypto_ready, "SCH-004": owned_or_granted,
})
