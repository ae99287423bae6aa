"""The CloudWatch time window of a snapshot: parsing '24h' and choosing a period.

Statistics are computed over the per-period values of the window, so the period
decides both the resolution and the data-point count: at most 1440 points per
metric (a day of one-minute data), never finer than CloudWatch keeps for data of
that age (one-minute data for 15 days, five-minute data for 63 days, hourly after).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ops.core.errors import OpsError

MIN_WINDOW = timedelta(minutes=5)
MAX_WINDOW = timedelta(days=455)       # CloudWatch keeps hourly data for 15 months
MAX_POINTS_PER_METRIC = 1440
_UNITS = {"m": 60, "h": 3600, "d": 86400}
_WINDOW = re.compile(r"^(\d+)([mhd])$")


def parse_window(text: str) -> timedelta:
    """'30m', '24h', '7d' -> timedelta; a bad value is a one-line OpsError."""
    match = _WINDOW.match(text.strip())
    if not match:
        raise OpsError(f"--window={text!r} is not a duration; use minutes, hours or days, e.g. 30m, 24h, 7d")
    window = timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    if not MIN_WINDOW <= window <= MAX_WINDOW:
        raise OpsError(f"--window={text!r} must be between 5m and 455d")
    return window


def format_window(window: timedelta) -> str:
    """A spelling `parse_window` reads back: hours up to 72h, then days, else minutes."""
    seconds = int(window.total_seconds())
    if seconds % 3600 == 0 and seconds <= 72 * 3600:
        return f"{seconds // 3600}h"
    if seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds // 60}m"


def choose_period(window: timedelta) -> int:
    """Seconds per data point: a multiple of 60, <= 1440 points, within CloudWatch's retention."""
    seconds = window.total_seconds()
    period = max(60, math.ceil(seconds / MAX_POINTS_PER_METRIC / 60) * 60)
    if window > timedelta(days=63):
        period = max(period, 3600)
    elif window > timedelta(days=15):
        period = max(period, 300)
    return period


@dataclass(frozen=True)
class Window:
    """A closed-open interval [start, end) ending at a whole minute, and its period."""

    start: datetime
    end: datetime
    period_seconds: int

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def window_ending(now: datetime, length: timedelta) -> Window:
    """The window of `length` that ends at `now`, truncated to the minute (UTC)."""
    end = now.astimezone(timezone.utc).replace(second=0, microsecond=0)
    return Window(start=end - length, end=end, period_seconds=choose_period(length))
