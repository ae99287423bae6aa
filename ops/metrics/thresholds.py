"""The limits a diff is judged against: the stories' defaults, or a JSON file.

Story 1.2 (AC5, IV3) and story 4.1 (IV1): CPU up by less than 5 percentage
points, connections unchanged or up by 1-2, IOPS within 10 %, storage growth as
expected. "As expected" becomes two absolute limits:

- `umamiSchemaGrowthBytes` = 64 MiB. A fresh Umami 3.1 schema (17 tables,
  `_prisma_migrations`, their indexes and TOAST tables, nearly empty) takes well
  under 2 MiB; 64 MiB leaves room for tens of thousands of events of smoke and
  early traffic (about 1 KiB per event with its indexes) while a bulk import or
  a migration gone wrong in the window stands out.
- `databaseGrowthBytes` = 256 MiB: the Umami allowance plus 192 MiB for the
  application's own growth during a deploy window of an hour or so. A breach
  means something other than Umami grew enough for a DBA to look.

IOPS is judged on its increase only: Umami adds load, it cannot remove any, and a
quieter hour after the deploy is not a regression.

Connections (the peak of several samples, see `connections`): the stories' "same
or +1-2" (`connectionsIncrease`) applies to the application's connections, every
client session that is neither Umami's role nor an ops tool. Umami's own are
judged against Umami's budget instead (`budget`): they may exceed it by
`umamiConnectionsOverBudget` (0). Aurora's DatabaseConnections counts every
session, so it may rise by `connectionsIncrease` plus the budget.

A thresholds file is a JSON object holding any of the keys below; a number (or a
size such as "64MiB" for the byte limits) sets a limit, null turns the check into
information only.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.core.errors import OpsError
from ops.core.jsonfile import read_json
from ops.metrics.units import format_bytes

PASS = "pass"
FAIL = "fail"
INFO = "info"
NO_DATA = "no-data"

MIB = 1024 * 1024

# Deltas are rounded before comparison so that 20.1 -> 25.1 counts as exactly 5 points.
COMPARISON_DIGITS = 9


@dataclass(frozen=True)
class Definition:
    """One configurable limit: its file key, default, and how it is compared."""

    key: str
    default: float | None
    strict: bool        # True: the change must stay below the limit; False: at or below
    relative: bool      # True: the limit is a percentage of the before value
    unit: str           # "points", "connections", "percent" or "bytes"
    meaning: str


DEFINITIONS: tuple[Definition, ...] = (
    Definition("cpuIncreasePoints", 5, strict=True, relative=False, unit="points",
               meaning="Aurora CPUUtilization (average) may rise by less than this many percentage points"),
    Definition("connectionsIncrease", 2, strict=False, relative=False, unit="connections",
               meaning="the application's client connections (max of the samples) may rise by at most this many"),
    Definition("umamiConnectionsOverBudget", 0, strict=False, relative=False, unit="connections",
               meaning="Umami's connections (max of the samples) may exceed its budget by at most this many"),
    Definition("iopsIncreasePercent", 10, strict=False, relative=True, unit="percent",
               meaning="Aurora ReadIOPS/WriteIOPS (average) may rise by at most this percentage"),
    Definition("umamiSchemaGrowthBytes", 64 * MIB, strict=False, relative=False, unit="bytes",
               meaning="the Umami schema may grow by at most this many bytes"),
    Definition("databaseGrowthBytes", 256 * MIB, strict=False, relative=False, unit="bytes",
               meaning="the database may grow by at most this many bytes"),
    Definition("volumeGrowthBytes", None, strict=False, relative=False, unit="bytes",
               meaning="the Aurora cluster volume (VolumeBytesUsed, all databases) may grow by at most this much"),
)
BY_KEY = {definition.key: definition for definition in DEFINITIONS}

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKMGT]i?B|B)?\s*$")
_SIZE_FACTORS = {
    None: 1, "B": 1,
    "kB": 1000, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
    "KiB": 1024, "kiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4,
}


@dataclass(frozen=True)
class Rule:
    """A definition with its configured limit; `limit=None` means information only."""

    definition: Definition
    limit: float | None

    def describe(self) -> str:
        """The limit as a reader sees it, e.g. 'increase < 5 points'."""
        if self.limit is None:
            return ""
        op = "<" if self.definition.strict else "<="
        unit = self.definition.unit
        if unit == "bytes":
            return f"growth {op} {format_bytes(self.limit)}"
        if unit == "percent":
            return f"increase {op} {self.limit:g} %"
        if unit == "points":
            return f"increase {op} {self.limit:g} points"
        return f"increase {op} {self.limit:g}"

    def judge(self, before: float | None, after: float | None) -> tuple[str, str]:
        """(verdict, note) for a before/after pair."""
        if before is None or after is None:
            return NO_DATA, ""
        if self.limit is None:
            return INFO, ""
        if self.definition.relative:
            if before == 0:
                if after == 0:
                    return PASS, ""
                return FAIL, "the before value was 0, so any increase exceeds a percentage limit"
            change = (after - before) / before * 100
        else:
            change = after - before
        change = round(change, COMPARISON_DIGITS)
        within = change < self.limit if self.definition.strict else change <= self.limit
        return (PASS if within else FAIL), ""


@dataclass(frozen=True)
class Thresholds:
    """The configured limits and where they came from ("defaults" or a file path)."""

    limits: dict[str, float | None]
    source: str

    def rule(self, key: str) -> Rule:
        return Rule(BY_KEY[key], self.limits[key])

    def as_dict(self) -> dict[str, float | None]:
        return dict(self.limits)


def defaults() -> Thresholds:
    return Thresholds({d.key: d.default for d in DEFINITIONS}, "defaults")


def parse_size(value: str) -> int | None:
    """'64MiB' -> 67108864; None when `value` is not a size."""
    match = _SIZE.match(value)
    if not match or match.group(2) not in _SIZE_FACTORS:
        return None
    return int(float(match.group(1)) * _SIZE_FACTORS[match.group(2)])


def _limit_value(definition: Definition, value: Any, source: str) -> float | None:
    shown = json.dumps(value)
    if value is None:
        return None
    if definition.unit == "bytes" and isinstance(value, str):
        size = parse_size(value)
        if size is None:
            raise OpsError(f"{source}: {definition.key}={shown} is not a size "
                           f"(use bytes as a number, or e.g. \"64MiB\", \"1GiB\", \"500MB\"; null disables)")
        return size
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        wanted = "a number of bytes or a size such as \"64MiB\"" if definition.unit == "bytes" else "a number"
        raise OpsError(f"{source}: {definition.key}={shown} is not {wanted} (null disables the check)")
    if value < 0:
        raise OpsError(f"{source}: {definition.key}={shown} must be >= 0")
    return value


def parse(data: Any, source: str) -> Thresholds:
    """Defaults overridden by the keys of `data` (a decoded thresholds file)."""
    if not isinstance(data, dict):
        raise OpsError(f"{source}: a thresholds file must be a JSON object, e.g. {{\"cpuIncreasePoints\": 5}}")
    limits = defaults().as_dict()
    for key, value in data.items():
        if key not in BY_KEY:
            if "freestorage" in key.lower():
                raise OpsError(f"{source}: {key}: FreeStorageSpace is not an Aurora metric "
                               f"(Aurora storage grows on its own); limit volumeGrowthBytes instead")
            raise OpsError(f"{source}: unknown key {key!r} (known: {', '.join(BY_KEY)})")
        limits[key] = _limit_value(BY_KEY[key], value, source)
    return Thresholds(limits, source)


def load(path: str | Path) -> Thresholds:
    """Read a thresholds file; every problem is one line naming the file and the key."""
    return parse(read_json(path, "thresholds file"), f"thresholds file {path}")
