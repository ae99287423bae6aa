"""`prisma migrate resolve` for one failed migration, done as the umami role in one transaction.

What Prisma does, read from github.com/prisma/prisma-engines (paths under schema-engine/):

- `--rolled-back NAME`: commands/src/commands/mark_migration_rolled_back.rs
  `mark_migration_rolled_back` takes the advisory lock, refuses a name without rows (P3011) or
  whose rows all finished (P3012), and sets `rolled_back_at = now` on each of its rows with
  `finished_at` and `rolled_back_at` NULL (connectors/sql-schema-connector/src/sql_migration_persistence.rs
  `mark_migration_rolled_back_by_id`). Nothing else changes; the next `migrate deploy` applies
  the migration again as a new row.
- `--applied NAME`: commands/src/commands/mark_migration_applied.rs `mark_migration_applied`
  takes the lock, refuses a name with a finished row (P3008), marks its failed rows rolled back
  the same way, then INSERTs a new row (`mark_migration_applied_impl`): a new UUID v4 `id`,
  `checksum` = the SHA-256 hex of the migration's script (connectors/schema-connector/src/checksum.rs
  `render_checksum`, via connectors/schema-connector/src/migration_persistence.rs
  `mark_migration_applied`), `logs = ''`,
  `started_at = finished_at = now`, `migration_name`; `applied_steps_count` keeps its default 0
  and `rolled_back_at` stays NULL. The failed row is never updated to finished.

The script itself is in Umami's image, not here; the failed row already holds its checksum
(`record_migration_started` computes it the same way before applying), so the new row reuses it.

Unlike Prisma, this refuses anything but a failed migration, and does not wait for the lock: when
a `migrate deploy` holds it now, resolving would race it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

import psycopg
from psycopg import sql

from ops.core.db import one_line
from ops.core.errors import OpsError
from ops.core.reporting import text
from ops.migrate import history
from ops.migrate.history import Migration, State

TRY_LOCK_SQL = "SELECT pg_try_advisory_xact_lock(%(key)s)"
# One template per change, run by `resolve` and shown by `ops.migrate status` as the fix by hand.
MARK_ROLLED_BACK_SQL = "UPDATE {table} SET rolled_back_at = now() WHERE id IN ({ids})"
MARK_APPLIED_SQL = ("INSERT INTO {table} (id, checksum, logs, started_at, finished_at, migration_name) "
                    "VALUES ({id}, {checksum}, '', now(), now(), {name})")


class Outcome(str, Enum):
    """The two answers `prisma migrate resolve` takes."""

    APPLIED = "applied"
    ROLLED_BACK = "rolled-back"


@dataclass(frozen=True)
class Resolution:
    """What one resolve changed."""

    table: str
    name: str
    outcome: Outcome
    rolled_back: tuple[Migration, ...]  # the failed rows, now marked rolled back
    at: datetime
    inserted_id: str | None = None  # --applied: the new finished row
    checksum: str | None = None


def _refusal(name: str, found: list[Migration], table: str, outcome: Outcome) -> str | None:
    """Why resolving `name` is refused (the rows' whole story is in `ops.migrate status`), or None."""
    name = text(name)
    if not found:
        return f"{name}: no such migration in {table}"
    states = ", ".join(sorted({m.state.value for m in found}))
    if outcome == Outcome.APPLIED and any(m.finished_at is not None for m in found):
        return f"{name} is already recorded as applied ({states})"
    if not any(m.state == State.FAILED for m in found):
        return f"{name} is not failed ({states}); only a failed migration can be resolved"
    return None


def resolve(conn: psycopg.Connection, schema: str, name: str, outcome: Outcome) -> Resolution:
    """Mark migration `name` rolled back or applied, as Prisma does; refuse (OpsError, nothing changed)
    unless it is failed. `conn` must be writable and logged in as the umami role (the table's owner)."""
    try:
        with conn.transaction():  # a refusal raises inside it: everything is rolled back
            return _resolve(conn, schema, name, outcome)
    except OpsError as exc:
        raise OpsError(f"{exc}; nothing changed") from None
    except psycopg.Error as exc:
        raise OpsError(f"cannot resolve {text(name)} in {history.qualified(schema)}: {one_line(exc)}; "
                       "nothing changed") from None


def _resolve(conn: psycopg.Connection, schema: str, name: str, outcome: Outcome) -> Resolution:
    table = history.qualified(schema)
    if not history.check_shape(conn, schema):
        raise OpsError(f"{table} does not exist: Umami has not migrated this database yet")
    if not conn.execute(TRY_LOCK_SQL, {"key": history.PRISMA_LOCK_ID}).fetchone()[0]:
        raise OpsError(f"Prisma's migration lock {history.PRISMA_LOCK_ID} is held by another session "
                       "(a migrate deploy is running now); try again when it ends")
    found = history.rows(conn, schema, name, for_update=True)
    refusal = _refusal(name, found, table, outcome)
    if refusal:
        raise OpsError(refusal)
    failed = [m for m in found if m.state == State.FAILED]
    new_id = str(uuid.uuid4())
    mark_rolled_back, *mark_applied = statements(schema, outcome, failed, sql.Literal(new_id))
    (at,) = conn.execute(sql.Composed([mark_rolled_back, sql.SQL(" RETURNING rolled_back_at")])).fetchone()
    if outcome == Outcome.ROLLED_BACK:
        return Resolution(table, name, outcome, tuple(failed), at)
    conn.execute(mark_applied[0])
    return Resolution(table, name, outcome, tuple(failed), at, inserted_id=new_id, checksum=failed[-1].checksum)


def statements(schema: str, outcome: Outcome, failed: list[Migration], new_id: sql.Composable) -> list[sql.Composed]:
    """The changes for the failed rows of one migration: mark them rolled back and, for --applied,
    insert the finished row (checksum: the latest attempt's, i.e. of the same script)."""
    table = history.table_identifier(schema)
    ids = sql.SQL(", ").join(sql.Literal(m.id) for m in failed)
    changes = [sql.SQL(MARK_ROLLED_BACK_SQL).format(table=table, ids=ids)]
    if outcome == Outcome.APPLIED:
        changes.append(sql.SQL(MARK_APPLIED_SQL).format(table=table, id=new_id, checksum=sql.Literal(failed[-1].checksum),
                                                        name=sql.Literal(failed[-1].name)))
    return changes


def fix_by_hand(schema: str, outcome: Outcome, failed: list[Migration]) -> tuple[str, ...]:
    """The same changes as SQL statements a DBA could run as the umami role (without the lock and checks)."""
    return tuple(f"{statement.as_string()};"
                 for statement in statements(schema, outcome, failed, sql.SQL("gen_random_uuid()::text")))
