"""The Fargate task definitions of the stack: Umami's service, its deploy step and the retention job.

All three run Umami's image as one container with the same execution and task roles; only the
family, size and container definitions differ.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.service_parts.iam import TaskRoles


def fargate_task_definition(resource_name: str, *, family: str, cpu: int, memory: int, cpu_architecture: str,
                            roles: TaskRoles, container_definitions: pulumi.Input[str], tags: dict[str, str],
                            parent: pulumi.Resource) -> aws.ecs.TaskDefinition:
    """A Fargate (awsvpc, Linux) task definition of one container document (JSON)."""
    return aws.ecs.TaskDefinition(
        resource_name,
        family=family,
        requires_compatibilities=["FARGATE"],
        network_mode="awsvpc",
        cpu=str(cpu),
        memory=str(memory),
        runtime_platform=aws.ecs.TaskDefinitionRuntimePlatformArgs(
            operating_system_family="LINUX",
            cpu_architecture=cpu_architecture,
        ),
        execution_role_arn=roles.execution_role.arn,
        task_role_arn=roles.task_role.arn,
        container_definitions=container_definitions,
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )
