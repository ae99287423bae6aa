"""Fetching a metric set with GetMetricData: batches of at most 500 queries, pages followed.

Each metric is one query returning its per-period values over the window (the
period comes from `window.choose_period`); average, maximum and p95 are computed
here from those values. Aurora and ECS publish one sample a minute, so with
one-minute periods these equal CloudWatch's own statistics; for ALB response
time the p95 is that of per-minute averages, not of single requests.

Throttling is retried by botocore's standard retry mode (see `ops.core.aws`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import botocore.exceptions

from ops.core import aws
from ops.metrics.metric_set import MetricSpec
from ops.metrics.window import Window

MAX_QUERIES_PER_CALL = 500


class CloudWatchUnavailable(Exception):
    """CloudWatch could not be asked (no credentials, no network, access denied); the reason is one line."""


@dataclass(frozen=True)
class Series:
    """What CloudWatch returned for one metric."""

    spec: MetricSpec
    values: tuple[float, ...]
    status: str            # Complete, Forbidden, InternalError
    message: str | None


@dataclass(frozen=True)
class Fetch:
    """All series of a metric set and how many GetMetricData calls it took."""

    series: tuple[Series, ...]
    calls: int


def query_for(spec: MetricSpec, query_id: str, period_seconds: int) -> dict[str, Any]:
    """One MetricDataQuery for `spec`."""
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": spec.namespace,
                "MetricName": spec.name,
                "Dimensions": [{"Name": name, "Value": value} for name, value in spec.dimensions],
            },
            "Period": period_seconds,
            "Stat": spec.stat,
        },
        "ReturnData": True,
    }


def batches(specs: list[MetricSpec], size: int = MAX_QUERIES_PER_CALL) -> list[list[MetricSpec]]:
    """Consecutive slices of at most `size` specs."""
    return [specs[start:start + size] for start in range(0, len(specs), size)]


def _get_page(client: Any, queries: list[dict[str, Any]], window: Window, token: str | None) -> dict[str, Any]:
    try:
        if token:
            return client.get_metric_data(MetricDataQueries=queries, StartTime=window.start, EndTime=window.end,
                                          ScanBy="TimestampAscending", NextToken=token)
        return client.get_metric_data(MetricDataQueries=queries, StartTime=window.start, EndTime=window.end,
                                      ScanBy="TimestampAscending")
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise CloudWatchUnavailable(f"GetMetricData failed: {aws.describe_error(exc)}") from None


def fetch(client: Any, specs: list[MetricSpec], window: Window) -> Fetch:
    """Every spec's values over `window`, in as few GetMetricData calls as the limits allow."""
    series: list[Series] = []
    calls = 0
    for batch in batches(specs):
        queries = [query_for(spec, f"m{index}", window.period_seconds) for index, spec in enumerate(batch)]
        values: dict[str, list[float]] = {query["Id"]: [] for query in queries}
        status: dict[str, str] = {query["Id"]: "Complete" for query in queries}
        messages: dict[str, str | None] = {query["Id"]: None for query in queries}
        token: str | None = None
        while True:
            page = _get_page(client, queries, window, token)
            calls += 1
            for result in page.get("MetricDataResults", []):
                query_id = result["Id"]
                values[query_id].extend(float(v) for v in result.get("Values", []))
                if result.get("StatusCode") in ("Forbidden", "InternalError"):
                    status[query_id] = result["StatusCode"]
                    notes = [m.get("Value", "") for m in result.get("Messages", [])]
                    messages[query_id] = "; ".join(n for n in notes if n) or None
            token = page.get("NextToken")
            if not token:
                break
        for query, spec in zip(queries, batch):
            query_id = query["Id"]
            series.append(Series(spec, tuple(values[query_id]), status[query_id], messages[query_id]))
    return Fetch(tuple(series), calls)


def percentile(values: tuple[float, ...], rank: float) -> float | None:
    """Nearest-rank percentile (p95: the smallest value at or above 95 % of the values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(rank / 100 * len(ordered)) - 1)]


def summarize(series: Series, window: Window) -> dict[str, Any]:
    """The snapshot's record of one series: identity, statistics over the window, status."""
    values = series.values
    spec = series.spec
    record: dict[str, Any] = {
        "namespace": spec.namespace,
        "name": spec.name,
        "dimensions": {name: value for name, value in spec.dimensions},
        "stat": spec.stat,
        "unit": spec.unit,
        "scope": spec.scope,
        "status": series.status,
        "message": series.message,
        "points": len(values),
        "average": sum(values) / len(values) if values else None,
        "maximum": max(values) if values else None,
        "p95": percentile(values, 95),
        "sum": None,
        "perHour": None,
    }
    if spec.stat == "Sum":
        # Periods without traffic have no data point at all: a rate over the whole window.
        total = sum(values)
        record["sum"] = total
        record["perHour"] = total / (window.seconds / 3600)
    return record
