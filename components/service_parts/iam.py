"""Least-privilege IAM for the Umami task.

- The execution role (used by ECS, not by Umami) may write to the service's log group,
  read exactly the stack's two secrets, decrypt with the secrets' CMK when one is
  configured, and pull from ECR only when the image lives there.
- The task role (what Umami's code could use) grants nothing, unless ECS Exec is on,
  which needs the SSM message channels.
- The deploy step's Lambda role may run the deploy task family in the stack's cluster, watch
  that cluster's tasks, pass exactly the two task roles to ECS, read the deploy task's log
  streams and write its own log group (components/service_parts/deploy_step.py).

The documents are built by plain functions so tests can parse and judge them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Sequence

import pulumi
import pulumi_aws as aws

ECS_TASKS = "ecs-tasks.amazonaws.com"
LAMBDA = "lambda.amazonaws.com"
ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/(?P<repository>[^:@]+)"
)
EXEC_ACTIONS = [
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
]


def assume_role_policy(account_id: str | None = None, region: str | None = None, partition: str = "aws") -> str:
    """Trust for ECS tasks; with an account, only tasks of that account and region (confused deputy)."""
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": ECS_TASKS},
        "Action": "sts:AssumeRole",
    }
    if account_id:
        statement["Condition"] = {
            "ArnLike": {"aws:SourceArn": f"arn:{partition}:ecs:{region}:{account_id}:*"},
            "StringEquals": {"aws:SourceAccount": account_id},
        }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def ecr_repository_arn(image: str, partition: str = "aws") -> str | None:
    """The ECR repository an image is pulled from, or None for other registries."""
    match = ECR_IMAGE.match(image)
    if not match:
        return None
    return (f"arn:{partition}:ecr:{match.group('region')}:{match.group('account')}:"
            f"repository/{match.group('repository')}")


def execution_policy(*, log_group_arn: str, secret_arns: Sequence[str], kms_key_arn: str | None,
                     region: str, image: str, partition: str = "aws") -> str:
    """What ECS needs to start the task: logs, the two secrets, and the image's registry if private."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "WriteServiceLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [log_group_arn, f"{log_group_arn}:log-stream:*"],
        },
        {
            "Sid": "ReadStackSecrets",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": sorted(secret_arns),
        },
    ]
    if kms_key_arn:
        statements.append({
            "Sid": "DecryptStackSecrets",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": [kms_key_arn],
            "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}},
        })
    repository = ecr_repository_arn(image, partition)
    if repository:
        statements.append({
            "Sid": "PullImage",
            "Effect": "Allow",
            "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            "Resource": [repository],
        })
        # GetAuthorizationToken has no resource-level permissions.
        statements.append({"Sid": "EcrLogin", "Effect": "Allow",
                           "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"})
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def lambda_assume_role_policy() -> str:
    """Trust for the Lambda service (the deploy step's function)."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": LAMBDA}, "Action": "sts:AssumeRole"},
    ]})


def deploy_step_policy(*, region: str, account_id: str, partition: str, task_family: str, cluster_arn: str,
                       cluster_name: str, pass_role_arns: Sequence[str], task_log_group_arn: str,
                       task_log_stream_prefix: str, function_log_group_arn: str) -> str:
    """What the deploy step's function needs: run the deploy task, watch it, read its log, write its own."""
    ecs = f"arn:{partition}:ecs:{region}:{account_id}"
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {
            "Sid": "RunDeployTask",
            "Effect": "Allow",
            "Action": ["ecs:RunTask"],
            "Resource": [f"{ecs}:task-definition/{task_family}:*"],
            "Condition": {"ArnEquals": {"ecs:cluster": cluster_arn}},
        },
        {
            "Sid": "WatchDeployTask",
            "Effect": "Allow",
            "Action": ["ecs:DescribeTasks"],
            "Resource": [f"{ecs}:task/{cluster_name}/*"],
        },
        {
            "Sid": "PassTaskRoles",
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": sorted(pass_role_arns),
            "Condition": {"StringEquals": {"iam:PassedToService": ECS_TASKS}},
        },
        {
            "Sid": "ReadDeployTaskLog",
            "Effect": "Allow",
            "Action": ["logs:GetLogEvents"],
            "Resource": [f"{task_log_group_arn}:log-stream:{task_log_stream_prefix}/*"],
        },
        {
            "Sid": "WriteOwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [function_log_group_arn, f"{function_log_group_arn}:log-stream:*"],
        },
    ]})


def exec_policy() -> str:
    """ECS Exec's SSM channels (these actions have no resource-level permissions)."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "EcsExec", "Effect": "Allow", "Action": EXEC_ACTIONS, "Resource": "*"},
    ]})


@dataclass
class TaskRoles:
    execution_role: aws.iam.Role
    task_role: aws.iam.Role
    # The execution role's inline policy: a task started before it exists cannot read its secrets.
    execution_policy: aws.iam.RolePolicy


def pin_policies(name: str, role: aws.iam.Role, inline: list[aws.iam.RolePolicy], opts: pulumi.ResourceOptions) -> None:
    """Make the declared inline policies the role's only policies: anything attached out of band is removed."""
    aws.iam.RolePoliciesExclusive(f"{name}-only-declared-policies", role_name=role.name,
                                  policy_names=[policy.name for policy in inline], opts=opts)
    aws.iam.RolePolicyAttachmentsExclusive(f"{name}-no-managed-policies", role_name=role.name,
                                           policy_arns=[], opts=opts)


def task_roles(name: str, *, log_group_arn: pulumi.Input[str], secret_arns: Sequence[pulumi.Input[str]],
               kms_key_id: str | None, image: str, enable_execute_command: bool,
               tags: dict[str, str], parent: pulumi.Resource) -> TaskRoles:
    """The execution role and the task role, with inline policies only (nothing shared, nothing managed)."""
    child = pulumi.ResourceOptions(parent=parent)
    region = aws.get_region_output().region
    identity = aws.get_caller_identity_output()
    partition = aws.get_partition_output().partition

    execution_role = aws.iam.Role(
        f"{name}-execution",
        description="ECS starts the Umami task: logs, the stack's secrets, the image",
        assume_role_policy=assume_role_policy(),
        tags=tags,
        opts=child,
    )
    kms_key_arn = aws.kms.get_key_output(key_id=kms_key_id).arn if kms_key_id else None
    execution_inline = aws.iam.RolePolicy(
        f"{name}-execution",
        role=execution_role.id,
        policy=pulumi.Output.all(log_group_arn, region, partition, kms_key_arn, *secret_arns).apply(
            lambda v: execution_policy(log_group_arn=v[0], region=v[1], partition=v[2], kms_key_arn=v[3],
                                       secret_arns=v[4:], image=image)),
        opts=child,
    )
    pin_policies(f"{name}-execution", execution_role, [execution_inline], child)

    task_role = aws.iam.Role(
        f"{name}-task",
        description="The Umami application: no AWS permissions" + (" except ECS Exec" if enable_execute_command else ""),
        assume_role_policy=pulumi.Output.all(identity.account_id, region, partition).apply(
            lambda v: assume_role_policy(v[0], v[1], v[2])),
        tags=tags,
        opts=child,
    )
    task_inline = []
    if enable_execute_command:
        task_inline.append(aws.iam.RolePolicy(f"{name}-task-exec", role=task_role.id, policy=exec_policy(), opts=child))
    pin_policies(f"{name}-task", task_role, task_inline, child)
    return TaskRoles(execution_role=execution_role, task_role=task_role, execution_policy=execution_inline)
