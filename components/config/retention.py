"""The retention section: how many days of Umami's events the scheduled job keeps."""

from __future__ import annotations

from dataclasses import dataclass

from components.config.reader import Reader

DEFAULT_RETENTION_DAYS = 365  # Story 1.2 plans storage for one year of events
MAX_RETENTION_DAYS = 3650
# The job's plan (driver/retention.json) names Umami 3.1's tables; session_replay came with 3.1.
FIRST_SUPPORTED_VERSION = (3, 1)


@dataclass(frozen=True)
class RetentionConfig:
    """Events older than `days` are deleted every night; 0 keeps everything (no job, no schedule)."""

    days: int

    @property
    def enabled(self) -> bool:
        return self.days > 0


def supported(umami_version: str | None) -> bool:
    """Whether the image has the plan's tables; an unknown version (a digest) is taken to be current."""
    if umami_version is None:
        return True
    major, minor = (int(part) for part in umami_version.split(".")[:2])
    return (major, minor) >= FIRST_SUPPORTED_VERSION


def read_retention(reader: Reader, umami_version: str | None) -> RetentionConfig:
    """`umami:retentionDays`: 365 by default, 0 (off) by default for images older than Umami 3.1, which
    lack tables the job deletes from; a value above 0 is refused for them."""
    fits = supported(umami_version)
    reported = len(reader.problems)
    days = reader.integer("retentionDays", DEFAULT_RETENTION_DAYS if fits else 0, 0, MAX_RETENTION_DAYS,
                          " days (0 keeps everything)")
    if days > 0 and not fits and len(reader.problems) == reported:
        reader.fail("retentionDays", days, f"needs Umami 3.1's tables, but the image is Umami {umami_version}; "
                    "use 0 or a 3.1+ image")
    return RetentionConfig(days=days)
