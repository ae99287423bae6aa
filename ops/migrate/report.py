"""What `ops.migrate` prints: the history with its failed migrations (status) and what a resolve
changed, as text or JSON. Every value read from the database is escaped with `reporting.text`,
so a migration name or a line of Prisma's logs can never add or forge a line."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

from ops.core import reporting
from ops.core.reporting import aligned, text
from ops.migrate.history import History, Migration, State
from ops.migrate.resolve import Outcome, Resolution, fix_by_hand
from ops.verify.checks.base import FixAs

FORMATS = ("text", "json")
STATUS_FORMAT = "umami-ops-migrate-status"
RESOLVE_FORMAT = "umami-ops-migrate-resolve"
JSON_VERSION = 1

# Prisma's own words (user-facing-errors, schema_engine FoundFailedMigrations), then what they mean for Umami.
P3009 = "migrate found failed migrations in the target database, new migrations will not be applied"
P3009_EFFECT = ("The deploy step runs `prisma migrate deploy` (the image's check-db) once per image inside "
                "`pulumi up` and fails the `up` while a migration is failed, so the service stays on its "
                "current version; nothing changes until the failed migration is resolved")
# Prisma's native engine sends a script as one simple query, which PostgreSQL runs as one transaction
# (prisma-engines, schema-engine/connectors/sql-schema-connector/src/flavour/postgres/native/mod.rs
# `apply_migration_script`): a failure usually leaves nothing behind, unless the script commits on its
# own. (The WebAssembly engine the tests drive runs it statement by statement.) Check before choosing.
WAYS_OUT = {
    Outcome.ROLLED_BACK: "none of its changes remain (drop what a partial run left): fix the cause, resolve it "
                         "as rolled back and run `pulumi up` again; the next deploy step applies it again",
    Outcome.APPLIED: "all of its changes are in place (you completed it by hand): resolve it as applied; "
                     "the next deploy step skips it",
}


@dataclass(frozen=True)
class Where:
    """Where the command looked and as whom, and the flags that point another command there."""

    database: str  # e.g. "appdb at 127.0.0.1:5432"
    role: str  # the umami role
    login: str  # e.g. "umami_user (rehearsal passfile)"
    source_args: tuple[str, ...]  # e.g. ("--outputs", "out.json") or ("--stack", "dev", "--db-host", ...)

    def command(self, outcome: Outcome, name: str) -> str:
        return shlex.join(["python", "-m", "ops.migrate", "resolve", f"--{outcome.value}", name, *self.source_args])


def _time(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _log_lines(logs: str | None) -> list[str]:
    """Prisma's logs split at line feeds only: any other control character stays in its line, escaped."""
    return re.split(r"\r?\n", logs.strip("\n")) if logs and logs.strip("\n") else []


def status_exit_code(hist: History) -> int:
    """0 clean, 1 when a failed migration blocks Umami's start."""
    return 1 if hist.failed else 0


def _state_label(hist: History, m: Migration) -> str:
    if m.state == State.FAILED:
        return "FAILED"
    if m.state == State.ROLLED_BACK and not hist.applied_again(m):
        return "rolled back (applied again at the next deploy step)"
    return m.state.value


def _summary(hist: History) -> str:
    counts = ", ".join(f"{hist.count(state)} {state.value}" for state in State)
    return f"{len(hist.migrations)} migration(s): {counts}"


def _lock_note(hist: History) -> list[str]:
    if not hist.lock_holders:
        return []
    return [f"note: Prisma's migration lock is held by {hist.lock_holders} session(s) now: a migrate deploy is "
            "running, and a migration it is applying shows as failed until it finishes"]


# -- status -------------------------------------------------------------------------

def render_status_text(hist: History, where: Where) -> str:
    lines = [f"ops.migrate status: {text(hist.table)} in {text(where.database)} as {text(where.login)}"]
    lines += _lock_note(hist)
    if not hist.exists:
        lines.append(f"no {text(hist.table)}: Umami has not migrated this database yet (nothing failed)")
        return "\n".join(lines) + "\n"
    rows = [("MIGRATION", "STATE", "STARTED", "FINISHED", "ROLLED BACK", "STEPS")]
    rows += [(text(m.name), _state_label(hist, m), _time(m.started_at) or "-", _time(m.finished_at) or "-",
              _time(m.rolled_back_at) or "-", str(m.applied_steps)) for m in hist.migrations]
    lines += [""] + aligned(rows, "lllllr")
    for m in hist.failed:
        lines += ["", f"failed: {text(m.name)} started {_time(m.started_at)}, {m.applied_steps} step(s) applied; "
                      f"Prisma's logs:"]
        lines += [f"    {text(line)}".rstrip() for line in _log_lines(m.logs)] or ["    (none)"]
    if hist.failed:
        lines += ["", f"P3009: {P3009}.", f"  {P3009_EFFECT}. Two ways out, for each failed migration:"]
        for number, (outcome, when) in enumerate(WAYS_OUT.items(), 1):
            lines.append(f"  {number}. {when}:")
            for name, rows in hist.failed_by_name().items():
                lines += [f"       {text(where.command(outcome, name))}",
                          f"       (by hand, as {text(where.role)}, in one transaction: "
                          f"{text(' '.join(fix_by_hand(hist.schema, outcome, rows)))})"]
    lines += ["", f"summary: {_summary(hist)}"]
    return "\n".join(lines) + "\n"


def _migration_dict(hist: History, m: Migration) -> dict[str, Any]:
    return {"name": m.name, "state": m.state.value, "id": m.id, "checksum": m.checksum,
            "startedAt": _time(m.started_at), "finishedAt": _time(m.finished_at),
            "rolledBackAt": _time(m.rolled_back_at), "appliedSteps": m.applied_steps,
            "appliedAgain": hist.applied_again(m) if m.state == State.ROLLED_BACK else None, "logs": m.logs}


def status_dict(hist: History, where: Where) -> dict[str, Any]:
    blocked = None
    if hist.failed:
        blocked = {"code": "P3009", "message": P3009, "effect": P3009_EFFECT,
                   "waysOut": [{"resolveAs": outcome.value, "when": when, "fixes": [
                       {"migration": name, "command": where.command(outcome, name),
                        "sql": list(fix_by_hand(hist.schema, outcome, rows)), "sqlAs": FixAs.ROLE.value,
                        "sqlRole": where.role}
                       for name, rows in hist.failed_by_name().items()]}
                               for outcome, when in WAYS_OUT.items()]}
    return reporting.envelope(STATUS_FORMAT, JSON_VERSION, {
        "table": hist.table, "database": where.database, "ranAs": where.login, "exists": hist.exists,
        "exitCode": status_exit_code(hist), "prismaLockHolders": hist.lock_holders,
        "summary": {state.value: hist.count(state) for state in State},
        "migrations": [_migration_dict(hist, m) for m in hist.migrations],
        "failed": [m.name for m in hist.failed], "blocked": blocked,
    })


def render_status(hist: History, where: Where, fmt: str) -> str:
    return reporting.dumps(status_dict(hist, where)) if fmt == "json" else render_status_text(hist, where)


# -- resolve ------------------------------------------------------------------------

def _next_start(r: Resolution) -> str:
    verb = "skips" if r.outcome == Outcome.APPLIED else "applies"
    return f"the next deploy step's migrate deploy {verb} {r.name}" + ("" if r.outcome == Outcome.APPLIED else " again")


def render_resolve_text(r: Resolution, where: Where) -> str:
    marked = "applied" if r.outcome == Outcome.APPLIED else "rolled back"
    lines = [f"ops.migrate resolve: {text(r.name)} marked {marked} in {text(r.table)} in {text(where.database)} "
             f"as {text(where.login)}"]
    lines += [f"  failed row {text(m.id)}: rolled_back_at = {_time(r.at)}" for m in r.rolled_back]
    if r.inserted_id:
        lines.append(f"  new row {text(r.inserted_id)}: started_at = finished_at = {_time(r.at)}, "
                     f"checksum {text(r.checksum)} (the failed attempt's script)")
    lines.append(f"next: {text(_next_start(r))}")
    return "\n".join(lines) + "\n"


def resolve_dict(r: Resolution, where: Where) -> dict[str, Any]:
    return reporting.envelope(RESOLVE_FORMAT, JSON_VERSION, {
        "table": r.table, "database": where.database, "ranAs": where.login, "migration": r.name,
        "resolvedAs": r.outcome.value, "at": _time(r.at), "rolledBackIds": [m.id for m in r.rolled_back],
        "insertedId": r.inserted_id, "checksum": r.checksum, "next": _next_start(r),
    })


def render_resolve(r: Resolution, where: Where, fmt: str) -> str:
    return reporting.dumps(resolve_dict(r, where)) if fmt == "json" else render_resolve_text(r, where)


def source_args(stack: str | None, outputs: str | None, host: str | None, port: int | None) -> tuple[str, ...]:
    """The flags that name the same database again (for the commands status suggests)."""
    args: Sequence[str] = ["--stack", stack] if stack else ["--outputs", str(outputs)]
    if host:
        args = [*args, "--db-host", host]
    if port:
        args = [*args, "--db-port", str(port)]
    return tuple(args)
