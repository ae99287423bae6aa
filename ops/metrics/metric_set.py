"""Which CloudWatch metrics a snapshot takes, with the dimensions CloudWatch files them under.

Aurora (namespace AWS/RDS): per instance (`DBInstanceIdentifier`) CPUUtilization,
DatabaseConnections, FreeableMemory, ReadIOPS, WriteIOPS, ReadLatency,
WriteLatency and ServerlessDatabaseCapacity (kept only when it has data, i.e. on
Serverless v2); when no instance is named, the same metrics at cluster level
(`DBClusterIdentifier`). VolumeBytesUsed is a cluster metric. FreeStorageSpace
does not exist for Aurora: its storage grows on its own.

The service, when its outputs exist: ECS CPU and memory (`ClusterName`,
`ServiceName`), ALB requests, 5xx and target response time (`TargetGroup`,
`LoadBalancer` as ARN suffixes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ops.core.errors import OpsError
from ops.core.outputs import StackOutputs

AURORA = "aurora"
SERVICE = "service"

# (metric, unit shown, statistic): gauges are averaged, counts summed per period.
AURORA_INSTANCE_METRICS: tuple[tuple[str, str, str], ...] = (
    ("CPUUtilization", "percent", "Average"),
    ("DatabaseConnections", "count", "Average"),
    ("FreeableMemory", "bytes", "Average"),
    ("ReadIOPS", "per_second", "Average"),
    ("WriteIOPS", "per_second", "Average"),
    ("ReadLatency", "seconds", "Average"),
    ("WriteLatency", "seconds", "Average"),
)
OPTIONAL_AURORA_METRICS = ("ServerlessDatabaseCapacity",)
DEFAULT_AURORA_NAMES = ({name for name, _, _ in AURORA_INSTANCE_METRICS} | set(OPTIONAL_AURORA_METRICS)
                        | {"VolumeBytesUsed"})
NOT_AURORA_METRICS = {
    "FreeStorageSpace": "FreeStorageSpace is not an Aurora metric: Aurora storage grows on its own; "
                        "the cluster volume is VolumeBytesUsed, which is collected by default",
}
_METRIC_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,254}$")


@dataclass(frozen=True)
class MetricSpec:
    """One metric series: what to ask CloudWatch for and how to show it."""

    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    stat: str            # "Average" for gauges, "Sum" for counts
    unit: str            # percent, count, bytes, per_second, seconds, acu, value
    scope: str           # AURORA or SERVICE
    optional: bool = False

    @property
    def key(self) -> str:
        """Stable identity across snapshots, e.g. 'AWS/RDS CPUUtilization DBInstanceIdentifier=db-1'."""
        dims = ",".join(f"{name}={value}" for name, value in self.dimensions)
        return f"{self.namespace} {self.name} {dims}"

    @property
    def subject(self) -> str:
        """What the series is about, for labels: the last dimension's value."""
        return self.dimensions[-1][1] if self.dimensions else ""


@dataclass(frozen=True)
class Targets:
    """The AWS resources named in the stack outputs."""

    region: str | None
    cluster: str | None
    instances: tuple[str, ...]
    ecs_cluster: str | None
    ecs_service: str | None
    target_group: str | None
    load_balancer: str | None

    @property
    def has_aurora(self) -> bool:
        return bool(self.cluster or self.instances)


def targets_from_outputs(outputs: StackOutputs) -> Targets:
    """The identifiers (contract.parse validated them)."""
    service = outputs.service
    return Targets(
        region=outputs.aws_region,
        cluster=outputs.database.aurora_cluster_identifier,
        instances=outputs.database.aurora_instance_identifiers,
        ecs_cluster=service.ecs_cluster_name if service else None,
        ecs_service=service.ecs_service_name if service else None,
        target_group=service.target_group_arn_suffix if service else None,
        load_balancer=service.load_balancer_arn_suffix if service else None,
    )


def check_extra_metric(name: str) -> str:
    """Validate a metric asked for with --metric; FreeStorageSpace gets its explanation."""
    if name in NOT_AURORA_METRICS:
        raise OpsError(f"--metric {name}: {NOT_AURORA_METRICS[name]}")
    if not _METRIC_NAME.match(name):
        raise OpsError(f"--metric {name!r} is not a CloudWatch metric name")
    return name


def aurora_metrics(targets: Targets, extra: tuple[str, ...] = ()) -> list[MetricSpec]:
    """Instance metrics per instance (or for the cluster when none is named), plus the volume."""
    subjects = ([(("DBInstanceIdentifier", i),) for i in targets.instances]
                or [(("DBClusterIdentifier", targets.cluster),)])
    specs: list[MetricSpec] = []
    for dims in subjects:
        for name, unit, stat in AURORA_INSTANCE_METRICS:
            specs.append(MetricSpec("AWS/RDS", name, dims, stat, unit, AURORA))
        for name in OPTIONAL_AURORA_METRICS:
            specs.append(MetricSpec("AWS/RDS", name, dims, "Average", "acu", AURORA, optional=True))
        for name in extra:
            if name in DEFAULT_AURORA_NAMES:
                continue
            specs.append(MetricSpec("AWS/RDS", name, dims, "Average", "value", AURORA))
    if targets.cluster:
        specs.append(MetricSpec("AWS/RDS", "VolumeBytesUsed", (("DBClusterIdentifier", targets.cluster),),
                                "Average", "bytes", AURORA))
    return specs


def service_metrics(targets: Targets) -> list[MetricSpec]:
    """ECS and ALB metrics for whichever of the service's outputs exist."""
    specs: list[MetricSpec] = []
    if targets.ecs_cluster and targets.ecs_service:
        dims = (("ClusterName", targets.ecs_cluster), ("ServiceName", targets.ecs_service))
        specs += [MetricSpec("AWS/ECS", "CPUUtilization", dims, "Average", "percent", SERVICE),
                  MetricSpec("AWS/ECS", "MemoryUtilization", dims, "Average", "percent", SERVICE)]
    if targets.load_balancer:
        lb = (("LoadBalancer", targets.load_balancer),)
        if targets.target_group:
            tg = (("TargetGroup", targets.target_group),) + lb
            specs += [MetricSpec("AWS/ApplicationELB", "RequestCount", tg, "Sum", "count", SERVICE),
                      MetricSpec("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", tg, "Sum", "count", SERVICE),
                      MetricSpec("AWS/ApplicationELB", "TargetResponseTime", tg, "Average", "seconds", SERVICE)]
        specs.append(MetricSpec("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", lb, "Sum", "count", SERVICE))
    return specs


def default_metric_set(targets: Targets, extra: tuple[str, ...] = ()) -> list[MetricSpec]:
    """Everything a snapshot asks CloudWatch for (empty when no Aurora identifier is known)."""
    if not targets.has_aurora:
        return []
    return aurora_metrics(targets, extra) + service_metrics(targets)
