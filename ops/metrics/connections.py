"""Client connections over a short window: who holds them, sampled several times.

One instant can catch a pool refilling or a batch job's burst; several samples a
second or so apart give the peak (what the server must hold) and the mean (the
steady count). Each sample is a transaction of its own: PostgreSQL freezes what
pg_stat_activity shows for the rest of a transaction once it has been read.

Groups: `umami` (the stack's role), `ops` (application_name umami-ops: this
snapshot's siblings, never counted), `application` (every other client session)
and `total` (umami + application, per sample).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import psycopg

from ops.core.db import APPLICATION_NAME
from ops.core.errors import OpsError

UMAMI = "umami"
APPLICATION = "application"
OPS = "ops"
TOTAL = "total"
GROUPS = (UMAMI, APPLICATION, OPS, TOTAL)

DEFAULT_SAMPLES = 5
DEFAULT_INTERVAL_SECONDS = 1.0
MAX_SAMPLES = 60
MAX_INTERVAL_SECONDS = 60.0

# Client sessions only. Without privilege backend_type is hidden, so a session counts as a
# client when it has a database and a role (autovacuum and launchers have neither).
SESSIONS_SQL = """
SELECT datname, usename, coalesce(application_name, ''), state, count(*)::int
FROM pg_stat_activity
WHERE pid <> pg_backend_pid() AND datid IS NOT NULL AND usesysid IS NOT NULL
  AND (backend_type IS NULL OR backend_type = 'client backend')
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4
"""


@dataclass(frozen=True)
class Sampling:
    """How many samples of pg_stat_activity, and how far apart."""

    samples: int = DEFAULT_SAMPLES
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS

    def describe(self) -> str:
        """'5 samples 1 s apart' or '1 sample'."""
        if self.samples == 1:
            return "1 sample"
        return f"{self.samples} samples {self.interval_seconds:g} s apart"


def parse_sampling(samples: str | int | None, interval: str | float | None) -> Sampling:
    """--samples / --sample-interval as a Sampling (None: the default); bad values are one-line errors."""
    count = DEFAULT_SAMPLES
    if samples is not None:
        try:
            count = int(str(samples).strip())
        except ValueError:
            count = 0
        if not 1 <= count <= MAX_SAMPLES:
            raise OpsError(f"--samples={samples!r} must be a whole number from 1 to {MAX_SAMPLES}")
    seconds = DEFAULT_INTERVAL_SECONDS
    if interval is not None:
        try:
            seconds = float(str(interval).strip().removesuffix("s"))
        except ValueError:
            seconds = -1.0
        if not (math.isfinite(seconds) and 0 <= seconds <= MAX_INTERVAL_SECONDS):
            raise OpsError(f"--sample-interval={interval!r} must be seconds from 0 to {MAX_INTERVAL_SECONDS:g}, "
                           "e.g. 1 or 0.5")
    return Sampling(count, seconds)


def classify(role: str | None, application_name: str, umami_role: str) -> str:
    """The group of one client session."""
    if application_name == APPLICATION_NAME:
        return OPS
    if role == umami_role:
        return UMAMI
    return APPLICATION


def group_counts(sessions: list[dict[str, Any]], umami_role: str) -> dict[str, int]:
    """{umami, application, ops, total} of one sample's grouped session rows."""
    counts = dict.fromkeys(GROUPS, 0)
    for session in sessions:
        counts[classify(session["role"], session["applicationName"], umami_role)] += session["count"]
    counts[TOTAL] = counts[UMAMI] + counts[APPLICATION]
    return counts


def summarize(samples: list[dict[str, int]]) -> dict[str, dict[str, Any]]:
    """Per group: the max, the mean and every sample's value, in order."""
    out = {}
    for group in GROUPS:
        values = [sample[group] for sample in samples]
        out[group] = {"max": max(values), "mean": round(sum(values) / len(values), 3), "values": values}
    return out


def read_sessions(conn: psycopg.Connection) -> list[dict[str, Any]]:
    return [
        {"database": datname, "role": role, "applicationName": app, "state": state, "count": count}
        for datname, role, app, state, count in conn.execute(SESSIONS_SQL)
    ]


Sleep = Callable[[float], None]


def sample(conn: psycopg.Connection, sampling: Sampling, umami_role: str,
           sleep: Sleep = time.sleep) -> dict[str, Any]:
    """Sample the client sessions; the last sample's rows are kept for the breakdowns.

    `conn` must not be inside a transaction: each sample opens and ends its own.
    """
    counts, sessions, taken = [], [], []
    for index in range(sampling.samples):
        if index:
            sleep(sampling.interval_seconds)
        with conn.transaction():
            sessions = read_sessions(conn)
        taken.append(datetime.now(timezone.utc))
        counts.append(group_counts(sessions, umami_role))
    return {
        "sampling": {"samples": sampling.samples, "intervalSeconds": sampling.interval_seconds,
                     "firstAt": taken[0].isoformat(), "lastAt": taken[-1].isoformat()},
        "groups": summarize(counts),
        "sessions": sessions,
    }
