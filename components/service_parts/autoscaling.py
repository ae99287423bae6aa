"""Autoscaling of the ECS service: 1 to 2 tasks, target tracking on CPU and memory.

The service's desired count is left to this scaling target after creation (the service
ignores later changes to `desiredCount`, so a deploy never scales back to 1 behind
autoscaling's back).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

MIN_TASKS = 1
MAX_TASKS = 2
# The story's targets: scale out before a single task is saturated.
TARGETS = {"cpu": ("ECSServiceAverageCPUUtilization", 70.0), "memory": ("ECSServiceAverageMemoryUtilization", 80.0)}
SCALE_OUT_COOLDOWN = 60
SCALE_IN_COOLDOWN = 300


def service_autoscaling(name: str, *, cluster_name: pulumi.Input[str], service_name: pulumi.Input[str],
                        tags: dict[str, str], parent: pulumi.Resource) -> aws.appautoscaling.Target:
    """The scalable target and one target-tracking policy per metric."""
    child = pulumi.ResourceOptions(parent=parent)
    target = aws.appautoscaling.Target(
        f"{name}-scaling",
        service_namespace="ecs",
        scalable_dimension="ecs:service:DesiredCount",
        resource_id=pulumi.Output.concat("service/", cluster_name, "/", service_name),
        min_capacity=MIN_TASKS,
        max_capacity=MAX_TASKS,
        tags=tags,
        opts=child,
    )
    for label, (metric, target_value) in TARGETS.items():
        aws.appautoscaling.Policy(
            f"{name}-scale-on-{label}",
            policy_type="TargetTrackingScaling",
            service_namespace=target.service_namespace,
            scalable_dimension=target.scalable_dimension,
            resource_id=target.resource_id,
            target_tracking_scaling_policy_configuration=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationArgs(
                target_value=target_value,
                predefined_metric_specification=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs(
                    predefined_metric_type=metric,
                ),
                scale_out_cooldown=SCALE_OUT_COOLDOWN,
                scale_in_cooldown=SCALE_IN_COOLDOWN,
            ),
            opts=child,
        )
    return target
