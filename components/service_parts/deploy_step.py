"""The deploy step: Umami's migrations and the admin rotation, run once inside `pulumi up`
before the ECS service rolls.

    deploy task definition (family <base>-deploy): the service's image, roles, secrets, CA
        wrapper and log group (stream prefix `deploy`); `check-db` with migrations, then
        driver/rotate-admin.mjs (components/service_parts/container.py)
    Lambda function (Python 3.12, deploy_step_handler.py): RunTask, wait until STOPPED, fail
        with the log's tail unless the container exited 0
    Invocation: calls the function whenever the image or the deploy task definition changes,
        after the database's resources and the secrets exist; the ECS service waits for it

A failed migration therefore stops `pulumi up` with the task's last log lines, and the running
service keeps its old tasks (instead of every new task crash-looping on Prisma's P3009).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pulumi
import pulumi_aws as aws

from components.config import ServiceConfig
from components.service_parts.container import (CONTAINER_NAME, DEPLOY_LOG_STREAM_PREFIX,
                                                deploy_container_definitions)
from components.service_parts.iam import TaskRoles, deploy_step_policy, lambda_assume_role_policy, pin_policies
from components.service_parts.task import fargate_task_definition
from facts import DEPLOY_TASK_FAMILY_SUFFIX

HANDLER_FILE = Path(__file__).resolve().with_name("deploy_step_handler.py")
HANDLER = f"{HANDLER_FILE.stem}.handler"
RUNTIME = "python3.12"
# Lambda's maximum; the handler stops waiting a margin before it (deploy_step_handler.MARGIN_SECONDS).
FUNCTION_TIMEOUT_SECONDS = 900
FUNCTION_MEMORY_MB = 128


@dataclass
class DeployStep:
    task_definition: aws.ecs.TaskDefinition
    function: aws.lambda_.Function
    invocation: aws.lambda_.Invocation


def deploy_task_family(base: str) -> str:
    return f"{base}{DEPLOY_TASK_FAMILY_SUFFIX}"


def function_name(base: str) -> str:
    return f"{base}-deploy-step"


def handler_code() -> pulumi.AssetArchive:
    """The handler module alone: boto3 comes with Lambda's Python runtime."""
    return pulumi.AssetArchive({HANDLER_FILE.name: pulumi.FileAsset(str(HANDLER_FILE))})


def invocation_input(*, cluster: str, task_definition: str, subnets: Sequence[str], security_group: str,
                     log_group: str) -> str:
    """The event deploy_step_handler.handler reads (DeployTask.from_event)."""
    return json.dumps({
        "cluster": cluster,
        "taskDefinition": task_definition,
        "subnets": list(subnets),
        "securityGroups": [security_group],
        "containerName": CONTAINER_NAME,
        "logGroup": log_group,
        "logStreamPrefix": DEPLOY_LOG_STREAM_PREFIX,
    }, sort_keys=True)


def deploy_step(name: str, *, base: str, service: ServiceConfig, roles: TaskRoles,
                log_group: aws.cloudwatch.LogGroup, cluster_arn: pulumi.Input[str], cluster_name: pulumi.Input[str],
                subnets: Sequence[str], task_security_group_id: pulumi.Input[str],
                db_secret_arn: pulumi.Input[str], app_secret_arn: pulumi.Input[str],
                admin_secret_arn: pulumi.Input[str], ca_pem: str | None, replica: bool, tags: dict[str, str],
                depends_on: Sequence[pulumi.Resource], parent: pulumi.Resource) -> DeployStep:
    """The deploy task, the function that runs it and the invocation `pulumi up` waits for."""
    child = pulumi.ResourceOptions(parent=parent)
    region = aws.get_region_output().region
    identity = aws.get_caller_identity_output()
    partition = aws.get_partition_output().partition
    family = deploy_task_family(base)

    task_definition = fargate_task_definition(
        f"{name}-deploy-task",
        family=family,
        cpu=service.cpu,
        memory=service.memory,
        cpu_architecture=service.cpu_architecture,
        roles=roles,
        container_definitions=pulumi.Output.all(db_secret_arn, app_secret_arn, admin_secret_arn, log_group.name,
                                                region).apply(
            lambda v: json.dumps(deploy_container_definitions(
                image=service.image, db_secret_arn=v[0], app_secret_arn=v[1], admin_secret_arn=v[2],
                log_group=v[3], region=v[4], ca_pem=ca_pem, umami_version=service.umami_version,
                replica=replica,
            ))),
        tags=tags,
        parent=parent,
    )

    function_logs = aws.cloudwatch.LogGroup(
        f"{name}-deploy-step-logs",
        name=f"/aws/lambda/{function_name(base)}",
        retention_in_days=service.log_retention_days,
        tags=tags,
        opts=child,
    )
    role = aws.iam.Role(
        f"{name}-deploy-step",
        description="Runs the Umami deploy task (migrations, admin rotation) during pulumi up",
        assume_role_policy=lambda_assume_role_policy(),
        tags=tags,
        opts=child,
    )
    policy = aws.iam.RolePolicy(
        f"{name}-deploy-step",
        role=role.id,
        policy=pulumi.Output.all(region, identity.account_id, partition, cluster_arn, cluster_name,
                                 roles.execution_role.arn, roles.task_role.arn, log_group.arn,
                                 function_logs.arn).apply(
            lambda v: deploy_step_policy(region=v[0], account_id=v[1], partition=v[2], task_family=family,
                                         cluster_arn=v[3], cluster_name=v[4], pass_role_arns=[v[5], v[6]],
                                         task_log_group_arn=v[7], task_log_stream_prefix=DEPLOY_LOG_STREAM_PREFIX,
                                         function_log_group_arn=v[8])),
        opts=child,
    )
    pin_policies(f"{name}-deploy-step", role, [policy], child)

    function = aws.lambda_.Function(
        f"{name}-deploy-step",
        name=function_name(base),
        description="Runs the Umami deploy task and fails when it fails (pulumi up waits for it)",
        runtime=RUNTIME,
        handler=HANDLER,
        code=handler_code(),
        role=role.arn,
        timeout=FUNCTION_TIMEOUT_SECONDS,
        memory_size=FUNCTION_MEMORY_MB,
        architectures=["arm64"],
        logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="Text", log_group=function_logs.name),
        tags=tags,
        # Its log group exists first (else Lambda would create one without retention).
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[function_logs]),
    )

    invocation = aws.lambda_.Invocation(
        f"{name}-deploy-step-run",
        function_name=function.name,
        input=pulumi.Output.all(cluster_arn, task_definition.arn, task_security_group_id, log_group.name).apply(
            lambda v: invocation_input(cluster=v[0], task_definition=v[1], subnets=subnets, security_group=v[2],
                                       log_group=v[3])),
        # Invoked on create and whenever a trigger changes: a new image (or any change of the deploy
        # task definition, hence a new revision) migrates before the service rolls.
        triggers={
            "image": service.image,
            "taskDefinition": task_definition.arn,
            "revision": task_definition.revision.apply(str),
        },
        opts=pulumi.ResourceOptions(
            parent=parent,
            # The schema, role and grants exist, the secrets hold their values, and both roles may act.
            depends_on=[*depends_on, roles.execution_policy, policy],
        ),
    )
    return DeployStep(task_definition=task_definition, function=function, invocation=invocation)
