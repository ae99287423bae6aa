"""The CrossGuard policies: each wraps one function of `invariants` and is mandatory.

Kept apart from `__main__.py` because constructing the `PolicyPack` starts the
analyzer server; tests import this module and call the policies directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pulumi_policy import (EnforcementLevel, ReportViolation, ResourceValidationArgs, ResourceValidationPolicy,
                           StackValidationArgs, StackValidationPolicy)

import invariants

MANDATORY = EnforcementLevel.MANDATORY


def resource_policy(name: str, description: str,
                    check: Callable[[str, Mapping[str, Any]], list[str]]) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in check(args.resource_type, args.props):
            report_violation(message, None)

    return ResourceValidationPolicy(name=name, description=description, validate=validate,
                                    enforcement_level=MANDATORY)


def stack_policy(name: str, description: str,
                 check: Callable[[list[tuple[str, str, Mapping[str, Any]]]], list[tuple[str, str]]]
                 ) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [(r.urn, r.resource_type, r.props) for r in args.resources]
        for urn, message in check(resources):
            report_violation(message, urn)

    return StackValidationPolicy(name=name, description=description, validate=validate,
                                 enforcement_level=MANDATORY)


def _protected(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    for message in invariants.stateful_protected(args.resource_type, bool(args.opts.protect)):
        report_violation(message, None)


POLICIES: list[ResourceValidationPolicy | StackValidationPolicy] = [
    resource_policy("ecs-tasks-no-public-ip", "ECS tasks run in given subnets without a public IP.",
                    invariants.tasks_without_public_ip),
    stack_policy("ecs-tasks-in-private-subnets", "ECS tasks never share a subnet with an internet-facing "
                 "load balancer.", invariants.tasks_in_private_subnets),
    resource_policy("fargate-size-in-range", "Fargate cpu/memory is 256/512, 256/1024 or 512/1024.",
                    invariants.task_size_in_range),
    resource_policy("secrets-only-through-task-secrets", "Secrets reach containers only through the task "
                    "definition's secrets, never as environment values.",
                    invariants.secrets_only_through_task_secrets),
    resource_policy("secret-access-scoped-to-arns", "IAM access to Secrets Manager names secret ARNs.",
                    invariants.secret_access_scoped),
    resource_policy("target-group-heartbeat", "Target groups health-check Umami's /api/heartbeat.",
                    invariants.heartbeat_health_check),
    resource_policy("log-retention-set", "CloudWatch log groups have a retention.", invariants.log_retention_set),
    resource_policy("tags-present", "Taggable AWS resources carry Project, Component, Environment and ManagedBy.",
                    invariants.tags_present),
    resource_policy("postgresql-role-least-privilege", "PostgreSQL roles have no SUPERUSER, CREATEROLE, "
                    "CREATEDB, REPLICATION, BYPASSRLS or membership.", invariants.role_least_privilege),
    stack_policy("postgresql-grants-only-on-stack-schema", "Grants and default privileges only on the stack's "
                 "schema; nothing beyond CONNECT on the database.", invariants.grants_within_schema),
    ResourceValidationPolicy(name="stateful-database-resources-protected",
                             description="The schema, role and extension are protected from deletion.",
                             validate=_protected, enforcement_level=MANDATORY),
]
