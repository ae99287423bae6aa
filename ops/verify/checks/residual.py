"""What no grant can prevent: channels open to every role that can connect, umami's included.

PostgreSQL has no privilege for LISTEN/NOTIFY, for advisory lock keys, for the length of a
transaction or for reading function bodies and view definitions from the catalogs, so no REVOKE
closes them. These checks say what is exposed right now and the mitigation where one exists.
Temporary tables and CONNECT to other databases are PUBLIC's defaults, which a REVOKE can remove:
ISO-027 and ISO-028 (family `privileges`) report them, not this family.

Two queries of their own, outside the catalog audit's five: the sessions (pg_locks,
pg_stat_activity, the role's settings) and the bodies (pg_proc, pg_class). pg_stat_activity hides
other roles' statements and transaction times from an auditor without pg_read_all_stats (Aurora's
admin has it through rds_superuser): no severity depends on what only such an auditor sees, and
the evidence says when the auditor sees less.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import Mapping

import psycopg
from psycopg.rows import namedtuple_row

from ops.verify.checks.base import Finding, FixAs, NotApplicable, Severity, declare
from ops.verify.checks.catalog import SYSTEM_SCHEMA_FILTER

# The short name of each residual channel, for the rehearsal's closing line.
CHANNELS = {"RES-001": "LISTEN/NOTIFY", "RES-002": "advisory locks", "RES-003": "long transactions",
            "RES-004": "catalog disclosure"}
# What PUBLIC has on every database unless revoked; the privileges family judges these.
PUBLIC_DEFAULTS = {"ISO-027": "temporary tables", "ISO-028": "CONNECT to other databases"}
# Older than this, an open transaction of the role is a finding. The role's statement_timeout and
# idle_in_transaction_session_timeout bound a statement and a pause, never a whole transaction.
LONG_TRANSACTION = timedelta(minutes=5)
TIMEOUT_SETTINGS = ("statement_timeout", "idle_in_transaction_session_timeout")
NAMED_SCHEMAS = 5  # schemas named in the disclosure evidence; the rest are counted

SESSIONS_SQL = """
WITH me AS (SELECT r.oid FROM pg_roles r WHERE r.rolname = %(role)s),
     db AS (SELECT d.oid, d.datname FROM pg_database d WHERE d.datname = current_database())
SELECT (SELECT datname FROM db) AS database,
       (SELECT oid FROM me) IS NOT NULL AS role_exists,
       pg_has_role('pg_read_all_stats', 'USAGE') AS sees_all_sessions,
       (SELECT json_agg(json_build_array(l.pid, a.usename, l.classid::int8, l.objid::int8, l.objsubid, l.mode)
                        ORDER BY l.pid, l.classid, l.objid, l.objsubid)
          FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM db)
           AND a.usesysid IS DISTINCT FROM (SELECT oid FROM me) AND l.pid <> pg_backend_pid()) AS advisory_locks,
       (SELECT json_agg(json_build_array(a.pid, a.datname, extract(epoch FROM now() - a.xact_start), a.state,
                                         greatest(age(a.backend_xid), age(a.backend_xmin)))
                        ORDER BY a.xact_start)
          FROM pg_stat_activity a
         WHERE a.usesysid = (SELECT oid FROM me) AND a.xact_start IS NOT NULL
           AND a.pid <> pg_backend_pid()) AS open_transactions,
       -- Sessions of the role whose details this auditor may not see (pg_read_all_stats).
       (SELECT count(*) FROM pg_stat_activity a
         WHERE a.usesysid = (SELECT oid FROM me) AND a.backend_type IS NULL) AS hidden_role_sessions,
       (SELECT json_agg(json_build_array(a.pid, a.usename, a.query) ORDER BY a.pid)
          FROM pg_stat_activity a
         WHERE a.datname = current_database() AND a.usesysid IS DISTINCT FROM (SELECT oid FROM me)
           AND a.query ~* '^\\s*listen\\s') AS listeners,
       (SELECT json_agg(setting) FROM pg_db_role_setting s, unnest(s.setconfig) setting
         WHERE s.setrole = (SELECT oid FROM me) AND s.setdatabase IN (0, (SELECT oid FROM db))) AS role_settings
"""

# Per schema outside umami's: functions with a body (not C or internal, whose prosrc is a symbol)
# and views, extensions' members left out; plus the bodies that send notifications.
BODIES_SQL = f"""
WITH bodies AS (
    SELECT n.nspname AS schema, 'function' AS kind,
           format('%%I.%%I(%%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)) AS name,
           p.prosrc AS source
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
    WHERE l.lanname NOT IN ('internal', 'c') AND {SYSTEM_SCHEMA_FILTER} AND n.nspname <> %(schema)s
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                                                  AND d.deptype = 'e')
    UNION ALL
    SELECT n.nspname, 'view', format('%%I.%%I', n.nspname, c.relname), NULL
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('v', 'm') AND {SYSTEM_SCHEMA_FILTER} AND n.nspname <> %(schema)s
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                                  AND d.deptype = 'e')
)
SELECT schema, count(*) FILTER (WHERE kind = 'function') AS functions, count(*) FILTER (WHERE kind = 'view') AS views,
       json_agg(json_build_array(name, source) ORDER BY name)
           FILTER (WHERE source ~* '(pg_notify|\\mnotify\\M)') AS notifying
FROM bodies GROUP BY schema ORDER BY schema
"""

# A channel named in a body: pg_notify('<literal>', ...) or a NOTIFY statement.
_PG_NOTIFY = re.compile(r"pg_notify\s*\(\s*(?:'((?:[^']|'')*)')?", re.IGNORECASE)
_NOTIFY = re.compile(r"(?:^|;|\b(?:then|else|loop|begin))\s*notify\s+(\"(?:[^\"]|\"\")*\"|[a-z_][\w$]*)",
                     re.IGNORECASE | re.MULTILINE)
COMPUTED_CHANNEL = "(computed)"


@dataclass(frozen=True)
class AdvisoryLock:
    pid: int
    role: str
    call: str  # how to take the same key, e.g. pg_advisory_lock(72707369)


@dataclass(frozen=True)
class OpenTransaction:
    pid: int
    database: str
    age: timedelta
    state: str | None
    xid_age: int | None  # transactions VACUUM cannot clean behind it


@dataclass(frozen=True)
class Listener:
    pid: int
    role: str
    statement: str


@dataclass(frozen=True)
class SchemaBodies:
    schema: str
    functions: int
    views: int


@dataclass(frozen=True)
class ResidualData:
    """What the family's two queries saw, and the threshold for a long transaction."""

    database: str
    schema: str
    role: str
    sees_all_sessions: bool
    advisory_locks: tuple[AdvisoryLock, ...]
    open_transactions: tuple[OpenTransaction, ...]
    hidden_role_sessions: int
    listeners: tuple[Listener, ...]
    role_timeouts: Mapping[str, str]
    senders: Mapping[str, tuple[str, ...]]  # channel -> functions whose body notifies on it
    bodies: tuple[SchemaBodies, ...]
    long_transaction_after: timedelta = LONG_TRANSACTION


def load(conn: psycopg.Connection, schema: str, role: str,
         long_transaction_after: timedelta = LONG_TRANSACTION) -> ResidualData:
    """Run the family's two queries (read-only, rolled back) on the auditor's connection."""
    with conn.transaction(force_rollback=True), conn.cursor(row_factory=namedtuple_row) as cur:
        s = cur.execute(SESSIONS_SQL, {"role": role}).fetchone()
        if not s.role_exists:
            raise NotApplicable(f"role {role} does not exist")
        schemas = cur.execute(BODIES_SQL, {"schema": schema}).fetchall()
    senders: dict[str, list[str]] = defaultdict(list)
    for row in schemas:
        for function, source in row.notifying or ():
            for channel in notify_channels(source):
                senders[channel].append(function)
    return ResidualData(
        database=s.database, schema=schema, role=role, sees_all_sessions=s.sees_all_sessions,
        advisory_locks=tuple(AdvisoryLock(pid, holder, advisory_call(classid, objid, subid, mode))
                             for pid, holder, classid, objid, subid, mode in s.advisory_locks or ()),
        open_transactions=tuple(OpenTransaction(pid, database, timedelta(seconds=float(age)), state, xid_age)
                                for pid, database, age, state, xid_age in s.open_transactions or ()),
        hidden_role_sessions=s.hidden_role_sessions,
        listeners=tuple(Listener(pid, who, statement) for pid, who, statement in s.listeners or ()),
        role_timeouts=dict(setting.split("=", 1) for setting in s.role_settings or ()
                           if setting.split("=", 1)[0] in TIMEOUT_SETTINGS),
        senders={channel: tuple(sorted(set(fns))) for channel, fns in sorted(senders.items())},
        bodies=tuple(SchemaBodies(r.schema, r.functions, r.views) for r in schemas),
        long_transaction_after=long_transaction_after,
    )


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def advisory_call(classid: int, objid: int, objsubid: int, mode: str) -> str:
    """The call that takes the key pg_locks shows: one bigint (objsubid 1) or two integers (2)."""
    function = "pg_advisory_lock_shared" if mode == "ShareLock" else "pg_advisory_lock"
    if objsubid == 1:
        return f"{function}({_signed(classid << 32 | objid, 64)})"
    return f"{function}({_signed(classid, 32)}, {_signed(objid, 32)})"


def notify_channels(source: str) -> list[str]:
    """Channels a function body notifies on; a channel that is not a literal is COMPUTED_CHANNEL."""
    channels = [m.group(1).replace("''", "'") if m.group(1) is not None else COMPUTED_CHANNEL
                for m in _PG_NOTIFY.finditer(source)]
    for m in _NOTIFY.finditer(source):
        name = m.group(1)
        channels.append(name[1:-1].replace('""', '"') if name.startswith('"') else name.lower())
    return channels


def _sessions_seen(data: ResidualData) -> str:
    if data.sees_all_sessions:
        return "this auditor sees every session's statement (pg_read_all_stats)"
    return ("this auditor lacks pg_read_all_stats, so other roles' statements are hidden: "
            "audit as the admin to see their sessions")


# -- the checks --------------------------------------------------------------------------

def listen_notify(data: ResidualData) -> list[Finding]:
    findings = [Finding(Severity.LOW, f"channel {channel}",
                        f"notified by {', '.join(functions)} (a function body): {data.role} can LISTEN and read "
                        "every payload, and NOTIFY forged ones on it")
                for channel, functions in data.senders.items()]
    findings += [Finding(Severity.INFO, f"pid {s.pid} ({s.role})",
                         f"listening, its last statement: {s.statement.strip()}: {data.role} can NOTIFY on that "
                         "channel and LISTEN to what is sent there")
                 for s in data.listeners]
    findings.append(Finding(Severity.INFO, f"database {data.database}",
                            f"any role that can connect, {data.role} included, can LISTEN and NOTIFY on any channel; "
                            "listeners are per session (pg_listening_channels), so they show only as a session's "
                            f"last statement in pg_stat_activity; {_sessions_seen(data)}"))
    return findings


def advisory_locks(data: ResidualData) -> list[Finding]:
    held: dict[tuple[int, str], list[str]] = defaultdict(list)
    for lock in data.advisory_locks:
        held[(lock.pid, lock.role)].append(lock.call)
    if not held:
        return [Finding(Severity.INFO, f"database {data.database}",
                        f"no other role's session holds an advisory lock right now; {data.role} can take any key")]
    return [Finding(Severity.LOW, f"pid {pid} ({holder})",
                    f"holds {', '.join(calls)}: {data.role} can take the same keys and block it")
            for (pid, holder), calls in held.items()]


def long_transactions(data: ResidualData) -> list[Finding]:
    timeouts = ", ".join(f"{name}={data.role_timeouts.get(name, 'unset')}" for name in TIMEOUT_SETTINGS)
    hidden = (f"; {data.hidden_role_sessions} of its sessions are hidden from this auditor (needs pg_read_all_stats)"
              if data.hidden_role_sessions else "")
    bound = (f"threshold {data.long_transaction_after.total_seconds():g} s; the role's {timeouts} bound no "
             f"transaction{hidden}")
    findings = []
    for tx in data.open_transactions:
        if tx.age > data.long_transaction_after:
            vacuum = f", holds back VACUUM by {tx.xid_age} transactions" if tx.xid_age is not None else ""
            findings.append(Finding(Severity.MEDIUM, f"pid {tx.pid} ({data.role})",
                                    f"transaction open {tx.age.total_seconds():.0f} s in database {tx.database} "
                                    f"({tx.state}){vacuum}; {bound}",
                                    # A role may end its own sessions; the admin needs pg_signal_backend.
                                    fix=(f"SELECT pg_terminate_backend({tx.pid});",), fix_as=FixAs.ROLE))
    if findings:
        return findings
    oldest = data.open_transactions[0] if data.open_transactions else None
    now = (f"oldest open transaction: pid {oldest.pid}, {oldest.age.total_seconds():.0f} s" if oldest
           else "no open transaction")
    return [Finding(Severity.INFO, data.role, f"{now}; {bound}")]


def catalog_disclosure(data: ResidualData) -> list[Finding]:
    functions = sum(b.functions for b in data.bodies)
    views = sum(b.views for b in data.bodies)
    named = [f"{b.schema} ({b.functions} functions, {b.views} views)" for b in data.bodies[:NAMED_SCHEMAS]]
    more = len(data.bodies) - len(named)
    where = "; ".join(named) + (f"; {more} more schemas" if more > 0 else "") if named else "none right now"
    return [Finding(Severity.INFO, f"database {data.database}",
                    f"every role, {data.role} included, reads {functions} function bodies (pg_proc.prosrc) and "
                    f"{views} view definitions (pg_get_viewdef) outside schema {data.schema}: {where}")]


def closing_summary() -> str:
    """What remains open after the isolation checks pass, for the rehearsal's last line."""
    ids = sorted(CHANNELS)
    return (f"residual channels no grant can prevent: {', '.join(CHANNELS.values())} ({ids[0]}..{ids[-1]}); "
            f"PUBLIC's defaults unless revoked: {', '.join(PUBLIC_DEFAULTS.values())} "
            f"({', '.join(PUBLIC_DEFAULTS)})")


CHECKS = declare("residual", {  # titles, severities, remediations: checks.toml
    "RES-001": listen_notify, "RES-002": advisory_locks, "RES-003": long_transactions,
    "RES-004": catalog_disclosure,
})
