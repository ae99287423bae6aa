"""The nightly retention job: an EventBridge Scheduler schedule that runs a one-off ECS task.

The task runs Umami's own image with `driver/retention.mjs` (shipped as text in a plain
environment variable, with its plan `driver/retention.json`), which deletes events older than
`umami:retentionDays` as the umami role, in short batches. Nothing exists when retention is off (0).

- task definition `<base>-retention`: Fargate, the smallest size, the service's architecture,
  execution and task roles, the Umami secrets through `secrets`, logs to the service's log group under
  the stream prefix `retention`, the CA wrapper of the Umami container in front of node;
- a scheduler role that may only run that task family on the stack's cluster and pass exactly
  those two roles to ECS tasks, assumable only by EventBridge Scheduler for this account's
  default schedule group;
- the schedule: daily at 03:17 UTC, no flexible window, private subnets, the tasks' security
  group, no public IP.

The documents and the container definition are plain data, built by functions tests can judge.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pulumi
import pulumi_aws as aws

from components.config import NetworkConfig, RetentionConfig, ServiceConfig
from components.service_parts.container import (as_list, ca_environment, ca_wrapper, log_configuration,
                                                shell_command, umami_secrets)
from components.service_parts.iam import ECS_TASKS, TaskRoles, pin_policies
from components.service_parts.task import fargate_task_definition

DRIVER = Path(__file__).resolve().parents[2] / "driver"
SCRIPT_FILE = DRIVER / "retention.mjs"
PLAN_FILE = DRIVER / "retention.json"

CONTAINER_NAME = "retention"
LOG_STREAM_PREFIX = "retention"
SCRIPT_VARIABLE = "UMAMI_RETENTION_SCRIPT"
PLAN_VARIABLE = "UMAMI_RETENTION_PLAN"
DAYS_VARIABLE = "UMAMI_RETENTION_DAYS"
# The job runs the script text itself (the image has no copy of it); /app is the image's workdir.
NODE_COMMAND = f'node --input-type=module -e "${SCRIPT_VARIABLE}"'
# A quiet hour, off the full hour when scheduled jobs crowd; UTC, so no daylight-saving jumps.
SCHEDULE_EXPRESSION = "cron(17 3 * * ? *)"
SCHEDULE_TIMEZONE = "UTC"
# The smallest Fargate size: the job waits on the database, not on CPU.
TASK_CPU, TASK_MEMORY = 256, 512
# A run that could not start (capacity, throttling) is retried for an hour, then waits for the next night.
MAXIMUM_EVENT_AGE_SECONDS = 3600
MAXIMUM_RETRY_ATTEMPTS = 3
SCHEDULER = "scheduler.amazonaws.com"
DEFAULT_SCHEDULE_GROUP = "default"


def job_name(base: str) -> str:
    """The task family and the schedule: `<base>-retention`."""
    return f"{base}-retention"


def shipped_files() -> tuple[str, str]:
    """The script and its plan (compact JSON), as the task definition carries them."""
    plan = json.dumps(json.loads(PLAN_FILE.read_text(encoding="utf-8")), separators=(",", ":"))
    return SCRIPT_FILE.read_text(encoding="utf-8"), plan


def container_definitions(*, image: str, days: int, db_secret_arn: str, app_secret_arn: str, log_group: str,
                          region: str, ca_pem: str | None, script: str, plan: str) -> list[dict[str, Any]]:
    """The job's single container, in ECS's `containerDefinitions` shape.

    Like the Umami container: its image, the CA wrapper in front of node (`ca_pem`; None with
    sslmode=disable), the log group. The job reads only DATABASE_URL; APP_SECRET is delivered as to
    Umami because the policy pack requires both in every container of Umami's image.
    """
    environment = {DAYS_VARIABLE: str(days), SCRIPT_VARIABLE: script, PLAN_VARIABLE: plan, **ca_environment(ca_pem)}
    return [{
        "name": CONTAINER_NAME,
        "image": image,
        "essential": True,
        **shell_command(ca_wrapper(NODE_COMMAND) if ca_pem else f"exec {NODE_COMMAND}"),
        "environment": as_list(environment),
        "secrets": umami_secrets(db_secret_arn, app_secret_arn, replica=False),
        "logConfiguration": log_configuration(log_group, region, LOG_STREAM_PREFIX),
    }]


def scheduler_trust_policy(account_id: str, region: str, partition: str = "aws") -> str:
    """Only EventBridge Scheduler, for schedules of this account's default group (confused deputy)."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Service": SCHEDULER},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {
            "aws:SourceAccount": account_id,
            "aws:SourceArn": f"arn:{partition}:scheduler:{region}:{account_id}:schedule-group/{DEFAULT_SCHEDULE_GROUP}",
        }},
    }]})


def scheduler_policy(*, task_family_arn: str, cluster_arn: str, role_arns: Sequence[str]) -> str:
    """Run the job's task family (any revision) on the stack's cluster; pass its two roles to ECS tasks only."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {
            "Sid": "RunRetentionTask",
            "Effect": "Allow",
            "Action": "ecs:RunTask",
            "Resource": [f"{task_family_arn}:*"],
            "Condition": {"ArnEquals": {"ecs:cluster": cluster_arn}},
        },
        {
            "Sid": "PassRetentionTaskRoles",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": sorted(role_arns),
            "Condition": {"StringEquals": {"iam:PassedToService": ECS_TASKS}},
        },
    ]})


@dataclass
class RetentionJob:
    task_definition: aws.ecs.TaskDefinition
    scheduler_role: aws.iam.Role
    schedule: aws.scheduler.Schedule


def retention_job(name: str, *, base: str, retention: RetentionConfig | None, service: ServiceConfig,
                  network: NetworkConfig, cluster_arn: pulumi.Input[str], roles: TaskRoles,
                  task_security_group_id: pulumi.Input[str], log_group_name: pulumi.Input[str],
                  db_secret_arn: pulumi.Input[str], app_secret_arn: pulumi.Input[str], ca_pem: str | None,
                  tags: dict[str, str], parent: pulumi.Resource) -> RetentionJob | None:
    """The task definition, the scheduler's role and the schedule; None when retention is off."""
    if retention is None or not retention.enabled:
        return None
    child = pulumi.ResourceOptions(parent=parent)
    region = aws.get_region_output().region
    identity = aws.get_caller_identity_output()
    partition = aws.get_partition_output().partition
    script, plan = shipped_files()

    task_definition = fargate_task_definition(
        f"{name}-retention-task",
        family=job_name(base),
        cpu=TASK_CPU,
        memory=TASK_MEMORY,
        cpu_architecture=service.cpu_architecture,
        roles=roles,
        container_definitions=pulumi.Output.all(db_secret_arn, app_secret_arn, log_group_name, region).apply(
            lambda v: json.dumps(container_definitions(
                image=service.image, days=retention.days, db_secret_arn=v[0], app_secret_arn=v[1],
                log_group=v[2], region=v[3], ca_pem=ca_pem, script=script, plan=plan,
            ))),
        tags=tags,
        parent=parent,
    )

    scheduler_role = aws.iam.Role(
        f"{name}-retention-scheduler",
        description="EventBridge Scheduler starts the nightly retention task, nothing else",
        assume_role_policy=pulumi.Output.all(identity.account_id, region, partition).apply(
            lambda v: scheduler_trust_policy(v[0], v[1], v[2])),
        tags=tags,
        opts=child,
    )
    scheduler_inline = aws.iam.RolePolicy(
        f"{name}-retention-scheduler",
        role=scheduler_role.id,
        policy=pulumi.Output.all(task_definition.arn_without_revision, cluster_arn, roles.execution_role.arn,
                                 roles.task_role.arn).apply(
            lambda v: scheduler_policy(task_family_arn=v[0], cluster_arn=v[1], role_arns=v[2:])),
        opts=child,
    )
    pin_policies(f"{name}-retention-scheduler", scheduler_role, [scheduler_inline], child)

    schedule = aws.scheduler.Schedule(
        f"{name}-retention",
        name=job_name(base),
        description=f"Deletes Umami events older than {retention.days} days (driver/retention.mjs)",
        schedule_expression=SCHEDULE_EXPRESSION,
        schedule_expression_timezone=SCHEDULE_TIMEZONE,
        flexible_time_window=aws.scheduler.ScheduleFlexibleTimeWindowArgs(mode="OFF"),
        state="ENABLED",
        target=aws.scheduler.ScheduleTargetArgs(
            arn=cluster_arn,
            role_arn=scheduler_role.arn,
            ecs_parameters=aws.scheduler.ScheduleTargetEcsParametersArgs(
                task_definition_arn=task_definition.arn,
                launch_type="FARGATE",
                platform_version="LATEST",
                task_count=1,
                network_configuration=aws.scheduler.ScheduleTargetEcsParametersNetworkConfigurationArgs(
                    subnets=list(network.private_subnet_ids),
                    security_groups=[task_security_group_id],
                    assign_public_ip=False,
                ),
            ),
            retry_policy=aws.scheduler.ScheduleTargetRetryPolicyArgs(
                maximum_event_age_in_seconds=MAXIMUM_EVENT_AGE_SECONDS,
                maximum_retry_attempts=MAXIMUM_RETRY_ATTEMPTS,
            ),
        ),
        # The role's policy is in place before the first invocation.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[scheduler_inline]),
    )
    return RetentionJob(task_definition=task_definition, scheduler_role=scheduler_role, schedule=schedule)
