"""Prisma's migration history, `<schema>._prisma_migrations`, as the umami role reads it.

Prisma's schema engine creates the table in the schema of Umami's DATABASE_URL, as the
umami role, which therefore owns it: the admin cannot read it, so everything here runs
as the role. What a row means follows the engine (prisma-engines,
schema-engine/commands/src/commands/apply_migrations.rs):

- applied: `finished_at` set and `rolled_back_at` NULL; `migrate deploy` skips it;
- failed: `finished_at` and `rolled_back_at` both NULL; `migrate deploy` refuses to apply
  anything while one exists (`detect_failed_migrations`, error P3009);
- rolled back: `rolled_back_at` set; the engine ignores the row and applies the
  migration again on its next run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

import psycopg
from psycopg import sql

from ops.core.db import one_line
from ops.core.errors import OpsError

TABLE = "_prisma_migrations"
# The advisory lock the engine holds while it applies or resolves (prisma-engines, schema-engine/connectors/
# sql-schema-connector/src/flavour/postgres.rs `acquire_lock`: SELECT pg_advisory_lock(72707369)).
PRISMA_LOCK_ID = 72707369

# Each column the engine reads and writes, with its base type as the engine creates it
# (same file, `create_migrations_table`). A table without them is not Prisma's.
COLUMNS = {
    "id": "character varying",
    "checksum": "character varying",
    "finished_at": "timestamp with time zone",
    "migration_name": "character varying",
    "logs": "text",
    "rolled_back_at": "timestamp with time zone",
    "started_at": "timestamp with time zone",
    "applied_steps_count": "integer",
}

SHAPE_SQL = """
SELECT c.relkind::text, a.attname::text, format_type(a.atttypid, NULL)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = %(schema)s AND c.relname = %(table)s
"""

ROWS_SQL = """
SELECT id, migration_name, checksum, started_at, finished_at, rolled_back_at, applied_steps_count, logs
FROM {table} {where} ORDER BY started_at, migration_name
"""

# A bigint advisory key is shown in pg_locks as classid (high 32 bits), objid (low 32 bits), objsubid 1.
LOCK_HOLDERS_SQL = """
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND classid = 0 AND objid = %(key)s
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


class State(str, Enum):
    APPLIED = "applied"
    FAILED = "failed"
    ROLLED_BACK = "rolled back"


@dataclass(frozen=True)
class Migration:
    """One row of the table: one attempt at one migration."""

    id: str
    name: str
    checksum: str
    started_at: datetime
    finished_at: datetime | None
    rolled_back_at: datetime | None
    applied_steps: int
    logs: str | None

    @property
    def state(self) -> State:
        if self.rolled_back_at is not None:
            return State.ROLLED_BACK
        return State.APPLIED if self.finished_at is not None else State.FAILED


@dataclass(frozen=True)
class History:
    """The table's rows in the engine's order (started_at), and who holds Prisma's lock now."""

    schema: str
    exists: bool
    migrations: tuple[Migration, ...] = ()
    lock_holders: int = 0

    @property
    def table(self) -> str:
        return qualified(self.schema)

    @property
    def failed(self) -> list[Migration]:
        return [m for m in self.migrations if m.state == State.FAILED]

    def failed_by_name(self) -> dict[str, list[Migration]]:
        """Each failed migration's failed rows (one, unless the table was edited by hand), oldest first."""
        grouped: dict[str, list[Migration]] = {}
        for m in self.failed:
            grouped.setdefault(m.name, []).append(m)
        return grouped

    def applied_again(self, migration: Migration) -> bool:
        """Whether a rolled-back migration has since been applied (else the next deploy step applies it)."""
        return any(m.name == migration.name and m.state == State.APPLIED for m in self.migrations)

    def count(self, state: State) -> int:
        return sum(1 for m in self.migrations if m.state == state)


def qualified(schema: str) -> str:
    return f"{schema}.{TABLE}"


def table_identifier(schema: str) -> sql.Identifier:
    return sql.Identifier(schema, TABLE)


def check_shape(conn: psycopg.Connection, schema: str) -> bool:
    """True when the table exists with every column the engine uses, False when it does not exist;
    a table of another shape is a one-line OpsError (nothing may read or change it as Prisma's)."""
    rows = conn.execute(SHAPE_SQL, {"schema": schema, "table": TABLE}).fetchall()
    if not rows:
        return False
    name = qualified(schema)
    if rows[0][0] not in ("r", "p"):
        raise OpsError(f"{name} is not a table (relkind {rows[0][0]}): not Prisma's migration table")
    found = {column: kind for _, column, kind in rows if column}
    wrong = [f"{column} ({found[column]}, expected {kind})" if column in found else f"{column} (missing)"
             for column, kind in COLUMNS.items() if found.get(column) != kind]
    if wrong:
        raise OpsError(f"{name} is not Prisma's migration table: {', '.join(wrong)}")
    return True


def _migration(row: tuple) -> Migration:
    return Migration(id=row[0], name=row[1], checksum=row[2], started_at=row[3], finished_at=row[4],
                     rolled_back_at=row[5], applied_steps=row[6], logs=row[7])


def rows(conn: psycopg.Connection, schema: str, name: str | None = None, *, for_update: bool = False) -> list[Migration]:
    """Every row (or those of migration `name`), oldest attempt first; `for_update` locks them."""
    where = sql.SQL("WHERE migration_name = {}").format(sql.Literal(name)) if name is not None else sql.SQL("")
    query = sql.SQL(ROWS_SQL).format(table=table_identifier(schema), where=where)
    if for_update:
        query = sql.Composed([query, sql.SQL(" FOR UPDATE")])
    return [_migration(row) for row in conn.execute(query).fetchall()]


def lock_holders(conn: psycopg.Connection) -> int:
    """Sessions holding Prisma's advisory lock in this database (pg_locks is readable by every role)."""
    return conn.execute(LOCK_HOLDERS_SQL, {"key": PRISMA_LOCK_ID}).fetchone()[0]


def load(conn: psycopg.Connection, schema: str) -> History:
    """The history in one read-only transaction; database errors become one line."""
    try:
        with conn.transaction(force_rollback=True):
            if not check_shape(conn, schema):
                return History(schema=schema, exists=False, lock_holders=lock_holders(conn))
            return History(schema=schema, exists=True, migrations=tuple(rows(conn, schema)),
                           lock_holders=lock_holders(conn))
    except psycopg.Error as exc:
        raise OpsError(f"cannot read {qualified(schema)}: {one_line(exc)}") from None
