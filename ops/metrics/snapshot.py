"""The snapshot file: versioned JSON naming the database it came from.

    {"format": "umami-ops-metrics-snapshot", "version": 2, "takenAt": ...,
     "source":   {database, databaseOid, systemIdentifier, serverVersion, host, port,
                  clusterIdentifier, instanceIdentifiers, region},
     "stack":    {schema, role, applicationRoles, maxConnectionsConfigured,
                  connectionBudget {poolSize, poolsPerTask, maxTasks, migrationConnections,
                                    opsHeadroom, total} | null, connectionLimit},
     "observer": {role, kind, credentials, hiddenSessions, note},
     "database": {sizeBytes, schemas[],
                  connections {maxConnections, reservedConnections, umamiRole, umamiRoleExists,
                               umamiRoleLimit, sampling {samples, intervalSeconds, firstAt, lastAt},
                               groups {umami, application, ops, total: {max, mean, values[]}},
                               sessions[] (the last sample)},
                  activity {...}},
     "cloudwatch": {status, reason, window, calls, extraMetrics, metrics[]}}

Version 1 (connections of one instant, no budget) is still read: loading turns
it into version 2 with one sample per group and no budget from the outputs, and
marks it `"upgradedFrom": 1` so a diff can say so.

Loading validates every field a diff reads, so a corrupt or hand-edited file fails
with one line naming the file and the field, never halfway through a report.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from ops.core import reporting
from ops.core.errors import OpsError
from ops.core.jsonfile import read_json
from ops.metrics import budget, connections

FORMAT = "umami-ops-metrics-snapshot"
VERSION = 2
READABLE_VERSIONS = (1, 2)

_INT = "an integer"
_STR = "a string"


class _Checker:
    """Walks a decoded snapshot; the first problem becomes an OpsError naming the field."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, wanted: str, value: Any) -> NoReturn:
        shown = json.dumps(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        raise OpsError(f"{self.source}: {path} must be {wanted} (found {shown}); the snapshot file is corrupt")

    def obj(self, parent: dict, key: str, path: str) -> dict:
        value = parent.get(key)
        if not isinstance(value, dict):
            self.fail(f"{path}{key}", "an object", value)
        return value

    def lst(self, parent: dict, key: str, path: str) -> list:
        value = parent.get(key)
        if not isinstance(value, list):
            self.fail(f"{path}{key}", "a list", value)
        return value

    def value(self, parent: dict, key: str, path: str, kinds: tuple[type, ...], wanted: str,
              nullable: bool = False) -> Any:
        value = parent.get(key)
        if value is None and nullable:
            return None
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            self.fail(f"{path}{key}", wanted + (" or null" if nullable else ""), value)
        return value

    def integer(self, parent: dict, key: str, path: str, nullable: bool = False) -> Any:
        return self.value(parent, key, path, (int,), _INT, nullable)

    def text(self, parent: dict, key: str, path: str, nullable: bool = False) -> Any:
        return self.value(parent, key, path, (str,), _STR, nullable)

    def number(self, parent: dict, key: str, path: str, nullable: bool = False) -> Any:
        return self.value(parent, key, path, (int, float), "a number", nullable)

    def timestamp(self, parent: dict, key: str, path: str, nullable: bool = False) -> Any:
        value = self.text(parent, key, path, nullable)
        if value is not None:
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                self.fail(f"{path}{key}", "an ISO 8601 timestamp with a UTC offset", value)
            if parsed.tzinfo is None:
                self.fail(f"{path}{key}", "an ISO 8601 timestamp with a UTC offset", value)
        return value


def _check_database(check: _Checker, doc: dict) -> None:
    db = check.obj(doc, "database", "")
    check.integer(db, "sizeBytes", "database.")
    for i, schema in enumerate(check.lst(db, "schemas", "database.")):
        path = f"database.schemas[{i}]."
        if not isinstance(schema, dict):
            check.fail(path[:-1], "an object", schema)
        check.text(schema, "name", path)
        for key in ("tables", "tableBytes", "indexBytes", "toastBytes", "totalBytes"):
            check.integer(schema, key, path)
        check.value(schema, "system", path, (bool,), "true or false")
    conns = check.obj(db, "connections", "database.")
    check.integer(conns, "maxConnections", "database.connections.")
    check.text(conns, "umamiRole", "database.connections.")
    check.integer(conns, "umamiRoleLimit", "database.connections.", nullable=True)
    if doc["version"] >= 2:
        _check_sampling(check, conns)
    for i, session in enumerate(check.lst(conns, "sessions", "database.connections.")):
        path = f"database.connections.sessions[{i}]."
        if not isinstance(session, dict):
            check.fail(path[:-1], "an object", session)
        check.text(session, "database", path, nullable=True)
        check.text(session, "role", path, nullable=True)
        check.text(session, "applicationName", path)
        check.text(session, "state", path, nullable=True)
        check.integer(session, "count", path)
    activity = check.obj(db, "activity", "database.")
    check.timestamp(activity, "sampledAt", "database.activity.")
    check.timestamp(activity, "statsReset", "database.activity.", nullable=True)
    for key in ("xactCommit", "xactRollback", "blksRead", "blksHit", "tempFiles", "tempBytes", "deadlocks"):
        check.integer(activity, key, "database.activity.")


def _check_sampling(check: _Checker, conns: dict) -> None:
    path = "database.connections."
    sampling = check.obj(conns, "sampling", path)
    samples = check.integer(sampling, "samples", path + "sampling.")
    if samples < 1:
        check.fail(path + "sampling.samples", "at least 1", samples)
    check.number(sampling, "intervalSeconds", path + "sampling.")
    check.timestamp(sampling, "firstAt", path + "sampling.")
    check.timestamp(sampling, "lastAt", path + "sampling.")
    groups = check.obj(conns, "groups", path)
    for group in connections.GROUPS:
        stats = check.obj(groups, group, path + "groups.")
        where = f"{path}groups.{group}."
        check.integer(stats, "max", where)
        check.number(stats, "mean", where)
        values = check.lst(stats, "values", where)
        if len(values) != samples or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            check.fail(f"{where}values", f"a list of {samples} integers (one per sample)", values)


def _check_stack_budget(check: _Checker, stack: dict) -> None:
    parts = stack.get("connectionBudget")
    if parts is not None:
        parts = check.obj(stack, "connectionBudget", "stack.")
        for key in budget.FIELDS:
            check.integer(parts, key, "stack.connectionBudget.")
    check.integer(stack, "connectionLimit", "stack.", nullable=True)


def _upgrade_from_1(doc: dict) -> None:
    """A version-1 snapshot in version-2 shape: its one instant is a single sample."""
    conns = doc["database"]["connections"]
    at = doc["database"]["activity"]["sampledAt"]
    counts = connections.group_counts(conns["sessions"], doc["stack"]["role"])
    conns["sampling"] = {"samples": 1, "intervalSeconds": 0, "firstAt": at, "lastAt": at}
    conns["groups"] = connections.summarize([counts])
    doc["stack"].setdefault("connectionBudget", None)
    doc["stack"].setdefault("connectionLimit", None)
    doc["version"] = VERSION
    doc["upgradedFrom"] = 1


def _check_cloudwatch(check: _Checker, doc: dict) -> None:
    cw = check.obj(doc, "cloudwatch", "")
    status = check.text(cw, "status", "cloudwatch.")
    if status not in ("collected", "skipped"):
        check.fail("cloudwatch.status", '"collected" or "skipped"', status)
    check.text(cw, "reason", "cloudwatch.", nullable=True)
    if cw.get("window") is not None:
        window = check.obj(cw, "window", "cloudwatch.")
        check.timestamp(window, "start", "cloudwatch.window.")
        check.timestamp(window, "end", "cloudwatch.window.")
        check.text(window, "length", "cloudwatch.window.")
        check.integer(window, "periodSeconds", "cloudwatch.window.")
    for i, metric in enumerate(check.lst(cw, "metrics", "cloudwatch.")):
        path = f"cloudwatch.metrics[{i}]."
        if not isinstance(metric, dict):
            check.fail(path[:-1], "an object", metric)
        for key in ("namespace", "name", "stat", "unit", "scope", "status"):
            check.text(metric, key, path)
        dims = check.obj(metric, "dimensions", path)
        if not all(isinstance(v, str) for v in dims.values()):
            check.fail(f"{path}dimensions", "an object of strings", dims)
        check.integer(metric, "points", path)
        for key in ("average", "maximum", "p95", "sum", "perHour"):
            check.number(metric, key, path, nullable=True)


def validate(doc: Any, source: str) -> dict[str, Any]:
    """`doc` if it is a snapshot this package reads; else a one-line OpsError."""
    check = _Checker(source)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise OpsError(f"{source} is not a metrics snapshot (no \"format\": \"{FORMAT}\")")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise OpsError(f"{source} is snapshot format version {json.dumps(version)}; "
                       f"this ops package reads versions {READABLE_VERSIONS[0]} to {VERSION}: "
                       "take a new snapshot with it")
    check.timestamp(doc, "takenAt", "")
    src = check.obj(doc, "source", "")
    check.text(src, "database", "source.")
    check.integer(src, "databaseOid", "source.")
    check.text(src, "systemIdentifier", "source.", nullable=True)
    check.text(src, "host", "source.")
    check.integer(src, "port", "source.")
    check.text(src, "clusterIdentifier", "source.", nullable=True)
    stack = check.obj(doc, "stack", "")
    check.text(stack, "schema", "stack.")
    check.text(stack, "role", "stack.")
    if version >= 2:
        _check_stack_budget(check, stack)
    observer = check.obj(doc, "observer", "")
    check.text(observer, "role", "observer.")
    check.text(observer, "kind", "observer.")
    check.integer(observer, "hiddenSessions", "observer.")
    _check_database(check, doc)
    _check_cloudwatch(check, doc)
    if version == 1:
        _upgrade_from_1(doc)
    return doc


def load(path: str | Path) -> dict[str, Any]:
    """Read and validate a snapshot file."""
    doc = read_json(path, "snapshot")
    return validate(doc, f"snapshot {path}")


def write(doc: dict[str, Any], path: str | Path) -> None:
    """Write `doc` atomically (a half-written baseline would be worse than none)."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.tmp")
    try:
        temporary.write_text(reporting.dumps(doc))
        os.replace(temporary, target)
    except OSError as exc:
        raise OpsError(f"cannot write snapshot {path}: {exc.strerror}") from None


def describe_source(doc: dict[str, Any]) -> str:
    """'database appdb (oid 16384) on cluster prod-aurora' or '... on 10.0.0.5:5432'."""
    src = doc["source"]
    where = (f"cluster {src['clusterIdentifier']}" if src.get("clusterIdentifier")
             else f"system {src['systemIdentifier']}" if src.get("systemIdentifier")
             else f"{src['host']}:{src['port']}")
    return f"database {src['database']} (oid {src['databaseOid']}) on {where}"


def ensure_comparable(before: dict[str, Any], after: dict[str, Any], before_name: str, after_name: str) -> None:
    """Both snapshots are of the same database, and BEFORE is the older one.

    The host is not compared when a cluster or system identifier is known: the same
    database may be reached through a tunnel one time and directly the next.
    """
    a, b = before["source"], after["source"]
    differences = []
    if a["database"] != b["database"] or a["databaseOid"] != b["databaseOid"]:
        differences.append("database")
    for key in ("clusterIdentifier", "systemIdentifier"):
        if a.get(key) and b.get(key) and a[key] != b[key]:
            differences.append(key)
    identified = (a.get("clusterIdentifier") and b.get("clusterIdentifier")) or \
                 (a.get("systemIdentifier") and b.get("systemIdentifier"))
    if not identified and (a["host"], a["port"]) != (b["host"], b["port"]):
        differences.append("host")
    if differences:
        raise OpsError(f"{before_name} and {after_name} are snapshots of different databases: "
                       f"{describe_source(before)} vs {describe_source(after)}")
    if datetime.fromisoformat(after["takenAt"]) < datetime.fromisoformat(before["takenAt"]):
        raise OpsError(f"{after_name} ({after['takenAt']}) is older than {before_name} ({before['takenAt']}): "
                       f"pass the baseline first")
