"""The database part of a snapshot: read-only transactions, catalog and statistics views only.

What any role can see is enough for every number here: sizes come from
`pg_relation_size` (no privilege on the table is needed), sessions from
`pg_stat_activity` (the role and application_name of every session are visible;
their state only to the session's own role and to roles allowed to read all
statistics: pg_read_all_stats, or Aurora's rds_superuser),
counters from `pg_stat_database`. The snapshot's own session is left out, and
sessions are sampled over a short window (`connections`).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from ops.core.errors import OpsError
from ops.metrics import connections
from ops.metrics.connections import Sampling

IDENTITY_SQL = """
SELECT current_database(), d.oid::bigint, current_user, current_setting('server_version'),
       current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int,
       pg_database_size(current_database())
FROM pg_database d WHERE d.datname = current_database()
"""

SYSTEM_IDENTIFIER_SQL = "SELECT system_identifier::text FROM pg_control_system()"

# TOAST is counted with the table it belongs to; shared catalogs are not part of this database.
SCHEMA_SIZES_SQL = """
SELECT n.nspname,
       n.nspname IN ('pg_catalog', 'information_schema') AS system,
       count(c.oid) FILTER (WHERE c.relkind IN ('r', 'p', 'm')) AS tables,
       coalesce(sum(pg_table_size(c.oid) - coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0))
                FILTER (WHERE c.relkind IN ('r', 'm', 'S')), 0)::bigint AS table_bytes,
       coalesce(sum(pg_relation_size(c.oid)) FILTER (WHERE c.relkind = 'i'), 0)::bigint AS index_bytes,
       coalesce(sum(pg_total_relation_size(c.reltoastrelid))
                FILTER (WHERE c.relkind IN ('r', 'm') AND c.reltoastrelid <> 0), 0)::bigint AS toast_bytes
FROM pg_namespace n
LEFT JOIN pg_class c ON c.relnamespace = n.oid AND NOT c.relisshared
WHERE n.nspname <> 'pg_toast' AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
GROUP BY n.nspname
ORDER BY n.nspname
"""

ROLE_LIMIT_SQL = "SELECT rolconnlimit FROM pg_roles WHERE rolname = %s"

ACTIVITY_SQL = """
SELECT now(), stats_reset, xact_commit, xact_rollback, blks_read, blks_hit,
       temp_files, temp_bytes, deadlocks
FROM pg_stat_database WHERE datname = current_database()
"""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _system_identifier(conn: psycopg.Connection) -> str | None:
    """The cluster's system identifier, or None where the function is not allowed (some managed services)."""
    try:
        with conn.transaction():
            row = conn.execute(SYSTEM_IDENTIFIER_SQL).fetchone()
    except (pg_errors.InsufficientPrivilege, pg_errors.UndefinedFunction, pg_errors.FeatureNotSupported):
        return None
    return row[0] if row else None


def _identity(conn: psycopg.Connection) -> tuple[dict[str, Any], dict[str, Any]]:
    row = conn.execute(IDENTITY_SQL).fetchone()
    name, oid, user, version, max_conn, reserved, size = row
    identity = {"database": name, "databaseOid": oid, "systemIdentifier": _system_identifier(conn),
                "serverVersion": version}
    facts = {"observerRole": user, "maxConnections": max_conn, "reservedConnections": reserved, "sizeBytes": size}
    return identity, facts


def _schemas(conn: psycopg.Connection) -> list[dict[str, Any]]:
    return [
        {"name": name, "system": system, "tables": tables, "tableBytes": table_bytes,
         "indexBytes": index_bytes, "toastBytes": toast_bytes,
         "totalBytes": table_bytes + index_bytes + toast_bytes}
        for name, system, tables, table_bytes, index_bytes, toast_bytes in conn.execute(SCHEMA_SIZES_SQL)
    ]


def _activity(conn: psycopg.Connection) -> dict[str, Any]:
    row = conn.execute(ACTIVITY_SQL).fetchone()
    if row is None:
        raise OpsError("pg_stat_database has no row for the current database")
    sampled, reset, commits, rollbacks, read, hit, temp_files, temp_bytes, deadlocks = row
    return {"sampledAt": _iso(sampled), "statsReset": _iso(reset), "xactCommit": commits,
            "xactRollback": rollbacks, "blksRead": read, "blksHit": hit, "tempFiles": temp_files,
            "tempBytes": temp_bytes, "deadlocks": deadlocks}


def snapshot_database(conn: psycopg.Connection, umami_role: str, sampling: Sampling = Sampling(),
                      sleep: connections.Sleep = time.sleep) -> tuple[dict[str, Any], dict[str, Any]]:
    """(source identity, database section) of a snapshot.

    The client sessions are sampled first, one short transaction per sample; the
    rest is read in one read-only transaction. Relation sizes take ACCESS SHARE
    locks; a DDL statement holding a table longer than the connection's
    lock_timeout makes the snapshot fail rather than wait.
    """
    try:
        sampled = connections.sample(conn, sampling, umami_role, sleep)
        with conn.transaction():
            identity, facts = _identity(conn)
            schemas = _schemas(conn)
            limit_row = conn.execute(ROLE_LIMIT_SQL, (umami_role,)).fetchone()
            activity = _activity(conn)
    except pg_errors.LockNotAvailable:
        raise OpsError("a table is locked by a DDL statement (lock timeout while measuring sizes); "
                       "take the snapshot again when it is done") from None
    except pg_errors.QueryCanceled:
        raise OpsError("the snapshot's catalog queries hit the statement timeout") from None
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()
        raise OpsError(f"database snapshot failed: {first[0] if first else type(exc).__name__}") from None
    sessions = sampled["sessions"]
    section = {
        # A client session's state is NULL only when the observer may not see it.
        "observer": {"role": facts["observerRole"],
                     "hiddenSessions": sum(s["count"] for s in sessions if s["state"] is None)},
        "sizeBytes": facts["sizeBytes"],
        "schemas": schemas,
        "connections": {
            "maxConnections": facts["maxConnections"],
            "reservedConnections": facts["reservedConnections"],
            "umamiRole": umami_role,
            "umamiRoleExists": limit_row is not None,
            "umamiRoleLimit": limit_row[0] if limit_row else None,
            "sampling": sampled["sampling"],
            "groups": sampled["groups"],
            "sessions": sessions,     # the last sample's, for the breakdowns by role, state and name
        },
        "activity": activity,
    }
    return identity, section
