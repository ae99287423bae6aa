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

The published schemas (schemas/umami-ops-metrics-snapshot.v1/v2.schema.json) say
every field's type and range; loading validates against them, so a corrupt or
hand-edited file fails with one line naming the file and the field, never halfway
through a report. What they cannot say is checked here: one value per sample in
each group, and (`ensure_comparable`) that two snapshots are of one database.

Version 1 (connections of one instant, no budget) is still read: loading turns
it into version 2 with one sample per group and no budget from the outputs, and
marks it `"upgradedFrom": 1` so a diff can say so.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from ops.core import documents, reporting
from ops.core.errors import OpsError
from ops.metrics import connections

FORMAT = "umami-ops-metrics-snapshot"
VERSION = 2
READABLE_VERSIONS = (1, 2)

KIND = documents.DocumentType(FORMAT, READABLE_VERSIONS, "snapshot")


def _check_samples(doc: dict[str, Any], source: str) -> None:
    """Each group holds one value per sample: the schema cannot relate the two."""
    conns = doc["database"]["connections"]
    samples = conns["sampling"]["samples"]
    for group in connections.GROUPS:
        values = conns["groups"][group]["values"]
        if len(values) != samples:
            raise OpsError(f"{source}: /database/connections/groups/{group}/values: {len(values)} value(s) "
                           f"where sampling.samples is {samples} (one per sample)")


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


def _readable(doc: dict[str, Any], version: int, source: str) -> dict[str, Any]:
    if version == 1:
        _upgrade_from_1(doc)
    else:
        _check_samples(doc, source)
    return doc


def validate(doc: Any, source: str) -> dict[str, Any]:
    """`doc` if it is a snapshot this package reads (a version 1 upgraded); else a one-line OpsError."""
    return _readable(doc, documents.check(doc, KIND, source), source)


def load(path: str | Path) -> dict[str, Any]:
    """Read and validate a snapshot file."""
    doc, version = documents.load(path, KIND)
    return _readable(doc, version, str(path))


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
