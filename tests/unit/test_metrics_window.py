"""The CloudWatch window, the statistics over it, and how numbers are shown."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ops.core.errors import OpsError
from ops.metrics.cloudwatch import Series, percentile, summarize
from ops.metrics.metric_set import AURORA, SERVICE, MetricSpec, check_extra_metric
from ops.metrics.units import format_change, format_value
from ops.metrics.window import choose_period, format_window, parse_window, window_ending


@pytest.mark.parametrize("text, seconds", [("5m", 300), ("24h", 86400), ("7d", 7 * 86400), ("90m", 5400)])
def test_window_parses(text, seconds):
    assert parse_window(text).total_seconds() == seconds
    assert parse_window(format_window(parse_window(text))) == parse_window(text)


@pytest.mark.parametrize("text", ["24", "1w", "-1h", "4m", "456d", "h"])
def test_bad_window_is_one_line(text):
    with pytest.raises(OpsError, match=r"--window="):
        parse_window(text)


@pytest.mark.parametrize("window, period", [
    (timedelta(hours=1), 60), (timedelta(hours=24), 60), (timedelta(hours=25), 120),
    (timedelta(days=14), 840), (timedelta(days=16), 960), (timedelta(days=20), 1200),
    (timedelta(days=64), 3840), (timedelta(days=400), 24000),
])
def test_period_keeps_points_and_retention(window, period):
    assert choose_period(window) == period
    assert period % 60 == 0 and window.total_seconds() / period <= 1440


def test_retention_floor_applies_to_old_data():
    assert choose_period(timedelta(days=16)) >= 300
    assert choose_period(timedelta(days=64)) >= 3600


def test_window_ends_on_a_whole_minute_in_utc():
    now = datetime(2025, 3, 1, 12, 34, 56, 789, tzinfo=timezone(timedelta(hours=2)))
    window = window_ending(now, timedelta(hours=1))
    assert window.end == datetime(2025, 3, 1, 10, 34, tzinfo=timezone.utc)
    assert window.seconds == 3600 and window.period_seconds == 60


def test_percentile_is_nearest_rank():
    values = tuple(float(v) for v in range(1, 101))
    assert percentile(values, 95) == 95.0
    assert percentile((5.0,), 95) == 5.0
    assert percentile((), 95) is None
    assert percentile((1.0, 2.0, 3.0, 100.0), 95) == 100.0


def test_counts_become_a_rate_over_the_whole_window():
    spec = MetricSpec("AWS/ApplicationELB", "RequestCount", (("LoadBalancer", "app/x/1"),), "Sum", "count", SERVICE)
    window = window_ending(datetime(2025, 1, 1, tzinfo=timezone.utc), timedelta(hours=2))
    record = summarize(Series(spec, (30.0, 10.0), "Complete", None), window)
    assert record["sum"] == 40.0 and record["perHour"] == 20.0 and record["maximum"] == 30.0


def test_no_data_points_give_no_statistics():
    spec = MetricSpec("AWS/RDS", "CPUUtilization", (("DBInstanceIdentifier", "db-1"),), "Average", "percent", AURORA)
    window = window_ending(datetime(2025, 1, 1, tzinfo=timezone.utc), timedelta(hours=1))
    record = summarize(Series(spec, (), "Complete", None), window)
    assert record["points"] == 0
    assert (record["average"], record["maximum"], record["p95"], record["sum"]) == (None, None, None, None)


def test_free_storage_space_is_refused_with_the_reason():
    with pytest.raises(OpsError, match="FreeStorageSpace is not an Aurora metric: Aurora storage grows on its own"):
        check_extra_metric("FreeStorageSpace")
    with pytest.raises(OpsError, match="is not a CloudWatch metric name"):
        check_extra_metric("CPU Utilization")
    assert check_extra_metric("FreeLocalStorage") == "FreeLocalStorage"


@pytest.mark.parametrize("value, unit, text", [
    (1536, "bytes", "1.5 KiB"), (5 * 1024 ** 3, "bytes", "5.0 GiB"), (0.0123, "seconds", "12.30 ms"),
    (12.5, "percent", "12.50 %"), (1234567, "count", "1,234,567"), (None, "count", "-"), (0.25, "per_second", "0.25/s"),
])
def test_values_for_people(value, unit, text):
    assert format_value(value, unit) == text


def test_changes_for_people():
    assert format_change(2048, 100.0, "bytes") == "+2.0 KiB (+100.0 %)"
    assert format_change(-3, -50.0, "count") == "-3 (-50.0 %)"
    assert format_change(2.5, 10.0, "percent") == "+2.50 points"
    assert format_change(None, None, "count") == "-"
