"""Taking a whole snapshot: the database part always, the CloudWatch part when it can.

CloudWatch is skipped, with the reason recorded, when no Aurora identifier is
known (a rehearsal, a database outside AWS) or CloudWatch cannot be asked (no
region, no credentials, no network, access denied). The caller decides whether
that is acceptable (`--require-cloudwatch`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import botocore.exceptions

from ops.core import aws, db
from ops.core.cli import progress
from ops.core.errors import OpsError
from ops.metrics import budget, cloudwatch, snapshot
from ops.metrics.connections import Sampling, Sleep
from ops.metrics.database import snapshot_database
from ops.metrics.login import AUTO, choose_login
from ops.metrics.metric_set import Targets, default_metric_set, targets_from_outputs
from ops.metrics.window import format_window, window_ending
from ops.core.outputs import StackOutputs

ClientFactory = Callable[[str, str | None], Any]
Progress = Callable[[str], None]


def log(message: str) -> None:
    progress(message, prefix="metrics: ")


@dataclass(frozen=True)
class SnapshotRequest:
    """What to snapshot and how."""

    outputs: StackOutputs
    window: timedelta = timedelta(hours=24)
    db_user: str = AUTO
    host: str | None = None
    port: int | None = None
    extra_metrics: tuple[str, ...] = ()
    sampling: Sampling = Sampling()


def _skipped(reason: str, extra: tuple[str, ...]) -> dict[str, Any]:
    return {"status": "skipped", "reason": reason, "window": None, "calls": 0,
            "extraMetrics": list(extra), "metrics": []}


def collect_cloudwatch(targets: Targets, length: timedelta, extra: tuple[str, ...], now: datetime,
                       make_client: ClientFactory = aws.client, progress: Progress = log) -> dict[str, Any]:
    """The snapshot's cloudwatch section: statistics per metric, or why there are none."""
    if not targets.has_aurora:
        return _skipped("no Aurora cluster identifier (auroraClusterIdentifier and auroraInstanceIdentifiers "
                        "are empty in the outputs; --aurora-cluster ID sets one)", extra)
    window = window_ending(now, length)
    specs = default_metric_set(targets, extra)
    try:
        client = make_client("cloudwatch", targets.region)
        fetched = cloudwatch.fetch(client, specs, window)
    except (OpsError, cloudwatch.CloudWatchUnavailable) as exc:
        return _skipped(f"CloudWatch could not be reached: {exc}", extra)
    except botocore.exceptions.BotoCoreError as exc:  # e.g. an invalid region name
        return _skipped(f"CloudWatch could not be reached: {aws.describe_error(exc)}", extra)
    metrics = [cloudwatch.summarize(series, window) for series in fetched.series
               if series.values or not series.spec.optional]
    with_data = sum(1 for metric in metrics if metric["points"])
    progress(f"CloudWatch: {len(specs)} metric queries, {with_data} with data, "
             f"{fetched.calls} GetMetricData call(s)")
    return {
        "status": "collected",
        "reason": None,
        "window": {"start": window.start.isoformat(), "end": window.end.isoformat(),
                   "length": format_window(length), "periodSeconds": window.period_seconds},
        "calls": fetched.calls,
        "extraMetrics": list(extra),
        "metrics": metrics,
    }


def _configured_max_connections(outputs: StackOutputs) -> int | None:
    return outputs.database.max_connections


def take_snapshot(request: SnapshotRequest, *, now: datetime | None = None,
                  make_client: ClientFactory = aws.client, progress: Progress = log,
                  sleep: Sleep = time.sleep) -> dict[str, Any]:
    """A complete snapshot document (validated, ready to write)."""
    outputs = request.outputs
    now = now or datetime.now(timezone.utc)
    targets = targets_from_outputs(outputs)
    connection_budget, connection_limit = budget.from_outputs(outputs)
    login = choose_login(outputs, request.db_user, host=request.host, port=request.port)
    if login.note:
        progress(login.note)
    progress(f"reading the database as {login.target.describe()} ({login.source}); "
             f"connections: {request.sampling.describe()}")
    with db.connect(login.target) as conn:
        identity, database = snapshot_database(conn, outputs.database.role, request.sampling, sleep)
    observer = database.pop("observer")
    groups = database["connections"]["groups"]
    progress(f"database: {len(database['schemas'])} schemas; connections (max/mean): "
             + ", ".join(f"{name} {groups[name]['max']}/{groups[name]['mean']:g}"
                         for name in ("umami", "application", "ops")))
    cw = collect_cloudwatch(targets, request.window, request.extra_metrics, now, make_client, progress)
    if cw["status"] == "skipped":
        progress(f"CloudWatch part skipped: {cw['reason']}")
    doc = {
        "format": snapshot.FORMAT,
        "version": snapshot.VERSION,
        "takenAt": now.isoformat(),
        "source": {**identity, "host": login.target.host, "port": login.target.port,
                   "clusterIdentifier": targets.cluster, "instanceIdentifiers": list(targets.instances),
                   "region": targets.region},
        "stack": {"schema": outputs.database.schema, "role": outputs.database.role,
                  "applicationRoles": list(outputs.database.application_roles),
                  "maxConnectionsConfigured": _configured_max_connections(outputs),
                  "connectionBudget": connection_budget, "connectionLimit": connection_limit},
        "observer": {"role": observer["role"], "kind": login.kind, "credentials": login.source,
                     "hiddenSessions": observer["hiddenSessions"], "note": login.note},
        "database": database,
        "cloudwatch": cw,
    }
    return snapshot.validate(doc, "the new snapshot")
