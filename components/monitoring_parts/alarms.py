"""The alarms of the Umami stack, as data: what is watched, with which dimensions and thresholds.

ECS and the ALB are watched for the service's health; Aurora for the story's limits
(CPU above 70 %, connections above 80 % of `max_connections`). With instance identifiers
configured each instance gets its own Aurora alarms, otherwise the cluster's writer does
(the `DBClusterIdentifier` + `Role=WRITER` dimensions), which is where Umami connects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import pulumi

from components.config import DatabaseConfig, MonitoringConfig

GREATER = "GreaterThanThreshold"
AT_LEAST = "GreaterThanOrEqualToThreshold"
LESS = "LessThanThreshold"


@dataclass(frozen=True)
class AlarmSpec:
    """One CloudWatch metric alarm. `statistic` is a plain statistic or a percentile such as p95."""

    key: str
    title: str
    description: str
    namespace: str
    metric: str
    dimensions: Mapping[str, pulumi.Input[str]]
    statistic: str
    comparison: str
    threshold: float
    period: int
    evaluation_periods: int
    treat_missing_data: str = "missing"

    @property
    def is_percentile(self) -> bool:
        return self.statistic.startswith("p")


@dataclass(frozen=True)
class Watched:
    """The names of what the alarms watch (plain strings or Pulumi outputs)."""

    cluster_name: pulumi.Input[str]
    service_name: pulumi.Input[str]
    load_balancer: pulumi.Input[str]  # the ALB's ARN suffix, app/NAME/ID
    target_group: pulumi.Input[str]   # the target group's ARN suffix, targetgroup/NAME/ID


def aurora_targets(database: DatabaseConfig) -> list[tuple[str, dict[str, str]]]:
    """(label, dimensions) per watched Aurora instance, or the cluster's writer; empty without identifiers."""
    if database.instance_identifiers:
        return [(instance, {"DBInstanceIdentifier": instance}) for instance in database.instance_identifiers]
    if database.cluster_identifier:
        return [("writer", {"DBClusterIdentifier": database.cluster_identifier, "Role": "WRITER"})]
    return []


def connections_threshold(database: DatabaseConfig, monitoring: MonitoringConfig) -> int:
    return int(database.max_connections * monitoring.aurora_connections_alarm_ratio)


def alarm_specs(watched: Watched, monitoring: MonitoringConfig, database: DatabaseConfig) -> list[AlarmSpec]:
    """Every alarm of the stack, in a stable order."""
    service = {"ClusterName": watched.cluster_name, "ServiceName": watched.service_name}
    target = {"LoadBalancer": watched.load_balancer, "TargetGroup": watched.target_group}
    specs = [
        AlarmSpec(
            key="ecs-cpu-high", title="Umami tasks: CPU %",
            description=f"Umami tasks use more than {monitoring.ecs_cpu_alarm_percent} % CPU for 5 minutes "
                        "(autoscaling already added a task, or cannot)",
            namespace="AWS/ECS", metric="CPUUtilization", dimensions=service, statistic="Average",
            comparison=GREATER, threshold=monitoring.ecs_cpu_alarm_percent, period=60, evaluation_periods=5),
        AlarmSpec(
            key="ecs-memory-high", title="Umami tasks: memory %",
            description=f"Umami tasks use more than {monitoring.ecs_memory_alarm_percent} % memory for 5 minutes",
            namespace="AWS/ECS", metric="MemoryUtilization", dimensions=service, statistic="Average",
            comparison=GREATER, threshold=monitoring.ecs_memory_alarm_percent, period=60, evaluation_periods=5),
        # No data means no task reports at all, which is the outage this alarm exists for.
        AlarmSpec(
            key="ecs-running-tasks-low", title="Umami tasks running",
            description="Fewer than 1 Umami task running for 3 minutes",
            namespace="ECS/ContainerInsights", metric="RunningTaskCount", dimensions=service, statistic="Minimum",
            comparison=LESS, threshold=1, period=60, evaluation_periods=3, treat_missing_data="breaching"),
        AlarmSpec(
            key="alb-unhealthy-hosts", title="Unhealthy targets",
            description="At least one Umami target fails /api/heartbeat for 3 minutes",
            namespace="AWS/ApplicationELB", metric="UnHealthyHostCount", dimensions=target, statistic="Maximum",
            comparison=AT_LEAST, threshold=1, period=60, evaluation_periods=3, treat_missing_data="notBreaching"),
        AlarmSpec(
            key="target-5xx", title="Umami 5xx responses (per 5 minutes)",
            description=f"Umami answered at least {monitoring.target_5xx_alarm_count} 5xx responses in 5 minutes",
            namespace="AWS/ApplicationELB", metric="HTTPCode_Target_5XX_Count", dimensions=target, statistic="Sum",
            comparison=AT_LEAST, threshold=monitoring.target_5xx_alarm_count, period=300, evaluation_periods=1,
            treat_missing_data="notBreaching"),
        AlarmSpec(
            key="target-response-time", title="Umami response time p95 (s)",
            description=f"Umami's p95 response time is above {monitoring.response_time_alarm_seconds:g} s for 10 minutes",
            namespace="AWS/ApplicationELB", metric="TargetResponseTime", dimensions=target, statistic="p95",
            comparison=GREATER, threshold=monitoring.response_time_alarm_seconds, period=300, evaluation_periods=2,
            treat_missing_data="notBreaching"),
    ]
    connections = connections_threshold(database, monitoring)
    for label, dimensions in aurora_targets(database):
        specs.append(AlarmSpec(
            key=f"aurora-cpu-high-{label}", title=f"Aurora {label}: CPU %",
            description=f"Aurora {label} CPU above {monitoring.aurora_cpu_alarm_percent} % for 15 minutes",
            namespace="AWS/RDS", metric="CPUUtilization", dimensions=dimensions, statistic="Average",
            comparison=GREATER, threshold=monitoring.aurora_cpu_alarm_percent, period=300, evaluation_periods=3))
        specs.append(AlarmSpec(
            key=f"aurora-connections-high-{label}", title=f"Aurora {label}: connections",
            description=f"Aurora {label} has more than {connections} connections "
                        f"({monitoring.aurora_connections_alarm_ratio:.0%} of max_connections {database.max_connections})",
            namespace="AWS/RDS", metric="DatabaseConnections", dimensions=dimensions, statistic="Maximum",
            comparison=GREATER, threshold=connections, period=300, evaluation_periods=2))
    return specs
