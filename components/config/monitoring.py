"""The monitoring section: alarm thresholds (the story's for Aurora) and where alarms are sent."""

from __future__ import annotations

import re
from dataclasses import dataclass

from components.config.reader import Reader, pattern_problem

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")


@dataclass(frozen=True)
class MonitoringConfig:
    """Alarm thresholds (the story's for Aurora) and where alarms are sent."""

    alarm_email: str | None
    response_time_alarm_seconds: float
    target_5xx_alarm_count: int
    ecs_cpu_alarm_percent: int = 85
    ecs_memory_alarm_percent: int = 85
    aurora_cpu_alarm_percent: int = 70
    aurora_connections_alarm_ratio: float = 0.8


def read_monitoring(reader: Reader) -> MonitoringConfig:
    return MonitoringConfig(
        alarm_email=reader.string("alarmEmail", check=pattern_problem(EMAIL, "is not an e-mail address")),
        response_time_alarm_seconds=reader.integer("responseTimeAlarmMs", 2000, 100, 60_000, " ms") / 1000,
        target_5xx_alarm_count=reader.integer("target5xxAlarmCount", 10, 1, 100_000),
    )
