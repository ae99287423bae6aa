"""What the retention plan would delete (`forecast`) and deleting it (`purge`), over psycopg.

The plan's statements use PostgreSQL's own `$1`/`$2` parameters, as node-postgres sends them; here
each is PREPAREd as written, so the text the server plans is the job's, byte for byte, and EXECUTEd
with its arguments as literals quoted by psycopg (EXECUTE, a utility statement, takes no bind
parameters). The loop mirrors the job's: each batch is one DELETE in its own transaction,
until a batch deletes fewer rows than the batch size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Sequence

import psycopg

from ops.core.errors import OpsError
from ops.retention.plan import Plan, Step


class Statements:
    """The plan's statements, each PREPAREd once on this connection under a name of its own."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn
        self.cursor = psycopg.ClientCursor(conn)
        self.names: dict[str, str] = {}

    def execute(self, text: str, params: Sequence[Any]) -> psycopg.ClientCursor:
        name = self.names.get(text)
        if name is None:
            name = self.names[text] = f"umami_retention_{len(self.names) + 1}"
            self.conn.execute(f"PREPARE {name} AS {text}")  # no parameters: the text is sent as it is
        arguments = ", ".join(["%s"] * len(params))
        return self.cursor.execute(f"EXECUTE {name}({arguments})", list(params))


@dataclass
class TableForecast:
    table: str
    rows: int
    oldest: datetime | None
    newest: datetime | None
    table_rows: int
    heap_bytes: int
    total_bytes: int
    frees_bytes: int


@dataclass
class TablePurge:
    table: str
    deleted: int
    batches: int


@dataclass
class Run:
    """One dry run or deletion: the cut-off and what each table would lose (or lost)."""

    schema: str
    days: int
    cutoff: datetime | None
    dry_run: bool
    batch: int
    forecasts: list[TableForecast] = field(default_factory=list)
    purges: list[TablePurge] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def off(self) -> bool:
        return self.days == 0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.forecasts) if self.dry_run else sum(t.deleted for t in self.purges)


def start(conn: psycopg.Connection, plan: Plan, schema: str, days: int) -> tuple[Statements, datetime]:
    """The plan's session settings, every table present, and the cut-off (computed once, by the server)."""
    statements = Statements(conn)
    for setting in plan.session:
        conn.execute(plan.fill(setting, schema))
    missing = [row[0] for row in statements.execute(plan.statement("missing", schema), [schema, plan.tables])]
    if missing:
        names = ", ".join(f"{schema}.{name}" for name in missing)
        raise OpsError(f"{names} missing: the retention plan is for Umami 3.1's tables (are its migrations applied?)")
    (cutoff,) = statements.execute(plan.statement("cutoff", schema), [days]).fetchone()
    return statements, cutoff


def forecast(conn: psycopg.Connection, plan: Plan, schema: str, days: int) -> Run:
    """Per table: the rows the job would delete now, their oldest and newest, and the storage they hold."""
    began = time.monotonic()
    run = Run(schema=schema, days=days, cutoff=None, dry_run=True, batch=plan.batch)
    if run.off:
        return run
    statements, run.cutoff = start(conn, plan, plan.check_schema(schema), days)
    for step in plan.steps:
        row = statements.execute(plan.statement("count", schema, step), [run.cutoff]).fetchone()
        rows, oldest, newest, table_rows, heap, total, frees = row
        run.forecasts.append(TableForecast(step.table, rows, oldest, newest, table_rows, heap, total, frees))
    run.seconds = time.monotonic() - began
    return run


def purge_table(statements: Statements, plan: Plan, schema: str, step: Step, cutoff: datetime,
                batch: int) -> TablePurge:
    text = plan.statement("delete", schema, step)
    deleted = batches = 0
    while True:
        count = statements.execute(text, [cutoff, batch]).rowcount
        if count > 0:
            deleted, batches = deleted + count, batches + 1
        if count < batch:
            return TablePurge(step.table, deleted, batches)


def purge(conn: psycopg.Connection, plan: Plan, schema: str, days: int, batch: int,
          report: Callable[[TablePurge], None] = lambda _: None) -> Run:
    """Delete what `forecast` counts, table by table in the plan's order, `batch` rows per transaction.

    `conn` must be in autocommit mode: every DELETE then commits on its own.
    """
    if not conn.autocommit:
        raise ValueError("purge needs an autocommit connection: each batch is its own transaction")
    began = time.monotonic()
    run = Run(schema=schema, days=days, cutoff=None, dry_run=False, batch=batch)
    if run.off:
        return run
    statements, run.cutoff = start(conn, plan, plan.check_schema(schema), days)
    for step in plan.steps:
        done = purge_table(statements, plan, schema, step, run.cutoff, batch)
        run.purges.append(done)
        report(done)
    run.seconds = time.monotonic() - began
    return run
