"""Every invariant of the policy pack: passes on what the program really declares, fails on a violation.

Passing cases use the props the program produces (run under mocks with the dev
stack's config); violating cases are those props with one thing changed, in the
shape the policy engine sees (camelCase inputs, JSON documents as strings).
"""

from __future__ import annotations

import copy
import json
import sys
from typing import Any

import pytest

from ops.engine.offline import OfflineHandler
from ops.engine.program import PROJECT_ROOT, ProgramRun, read_stack_config, run_program

sys.path.insert(0, str(PROJECT_ROOT / "policy"))
import invariants  # noqa: E402  (the pack imports it the same way, from its own directory)
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy  # noqa: E402

RESOURCE_CHECKS = (
    invariants.tasks_without_public_ip,
    invariants.task_size_in_range,
    invariants.secrets_only_through_task_secrets,
    invariants.secret_access_scoped,
    invariants.heartbeat_health_check,
    invariants.log_retention_set,
    invariants.tags_present,
    invariants.role_least_privilege,
)


def program(**overrides: str) -> ProgramRun:
    config = read_stack_config("dev")
    config.update(overrides)
    return run_program(OfflineHandler(), stack="dev", config=config)


@pytest.fixture(scope="module")
def dev() -> ProgramRun:
    return program()


def props(run: ProgramRun, type_token: str, name: str | None = None) -> dict[str, Any]:
    found = [r for r in run.by_type(type_token) if name is None or r.name == name]
    assert len(found) == 1, f"{type_token} {name}: {len(found)} found"
    return copy.deepcopy(found[0].inputs)


def triples(run: ProgramRun) -> list[tuple[str, str, dict[str, Any]]]:
    return [(r.urn, r.type, copy.deepcopy(r.inputs)) for r in run.resources]


# -- the whole program passes ---------------------------------------------------------------

def test_the_program_passes_every_resource_check(dev):
    checked_types = set()
    for resource in dev.resources:
        for check in RESOURCE_CHECKS:
            assert check(resource.type, resource.inputs) == [], (check.__name__, resource.name)
        assert invariants.stateful_protected(resource.type, resource.protect) == []
        checked_types.add(resource.type)
    # The service half is there, so the service policies ran against real props.
    for type_token in (invariants.ECS_SERVICE, invariants.TASK_DEFINITION, invariants.TARGET_GROUP,
                       invariants.LOG_GROUP, invariants.IAM_ROLE_POLICY, invariants.PG_ROLE):
        assert type_token in checked_types


def test_the_program_passes_the_stack_checks(dev):
    assert invariants.grants_within_schema(triples(dev)) == []
    assert invariants.tasks_in_private_subnets(triples(dev)) == []


def test_checks_accept_the_policy_engines_read_only_proxies(dev):
    task = props(dev, invariants.TASK_DEFINITION, "umami-task")
    assert invariants.secrets_only_through_task_secrets(invariants.TASK_DEFINITION, unknown_checking_proxy(task)) == []
    service = props(dev, invariants.ECS_SERVICE)
    service["networkConfiguration"]["assignPublicIp"] = True
    assert invariants.tasks_without_public_ip(invariants.ECS_SERVICE, unknown_checking_proxy(service))
    # During preview an unknown value raises; the engine reports "can't run during preview".
    service["networkConfiguration"]["assignPublicIp"] = "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7"
    with pytest.raises(UnknownValueError):
        invariants.tasks_without_public_ip(invariants.ECS_SERVICE, unknown_checking_proxy(service))


# -- tasks in private subnets, no public IP -------------------------------------------------------

def test_public_ip_or_missing_network_is_a_violation(dev):
    service = props(dev, invariants.ECS_SERVICE)
    service["networkConfiguration"]["assignPublicIp"] = True
    assert invariants.tasks_without_public_ip(invariants.ECS_SERVICE, service) == [
        "networkConfiguration.assignPublicIp is true: tasks must not get a public IP"]
    service["networkConfiguration"]["subnets"] = []
    assert len(invariants.tasks_without_public_ip(invariants.ECS_SERVICE, service)) == 2
    del service["networkConfiguration"]
    assert "no networkConfiguration" in invariants.tasks_without_public_ip(invariants.ECS_SERVICE, service)[0]


def test_tasks_in_the_load_balancers_public_subnets_are_a_violation(dev):
    resources = triples(dev)
    public = next(p for _, t, p in resources if t == invariants.LOAD_BALANCER)["subnets"]
    for _, type_token, service in resources:
        if type_token == invariants.ECS_SERVICE:
            service["networkConfiguration"]["subnets"] = [public[0]]
    problems = invariants.tasks_in_private_subnets(resources)
    assert len(problems) == 1
    urn, message = problems[0]
    assert urn.endswith("::umami-service") and public[0] in message


# -- task size ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("cpu", "memory"), [("1024", "2048"), ("512", "512"), ("256", "4096"), ("abc", "512")])
def test_task_size_outside_the_story_is_a_violation(dev, cpu, memory):
    task = props(dev, invariants.TASK_DEFINITION, "umami-task")
    task.update(cpu=cpu, memory=memory)
    assert invariants.task_size_in_range(invariants.TASK_DEFINITION, task) == [
        f"cpu={cpu} memory={memory} is outside the allowed cpu/memory: 256/512, 256/1024, 512/1024"]


def test_every_allowed_size_passes(dev):
    task = props(dev, invariants.TASK_DEFINITION, "umami-task")
    for cpu, memory in invariants.FARGATE_SIZES:
        task.update(cpu=str(cpu), memory=str(memory))
        assert invariants.task_size_in_range(invariants.TASK_DEFINITION, task) == []


# -- secrets only through `secrets` ----------------------------------------------------------------

def _with_container(task: dict[str, Any], change) -> dict[str, Any]:
    containers = json.loads(task["containerDefinitions"])
    change(containers[0])
    task["containerDefinitions"] = json.dumps(containers)
    return task


def test_secret_in_the_environment_is_a_violation(dev):
    task = _with_container(props(dev, invariants.TASK_DEFINITION, "umami-task"), lambda c: c["environment"].append(
        {"name": "APP_SECRET", "value": "x" * 64}))
    problems = invariants.secrets_only_through_task_secrets(invariants.TASK_DEFINITION, task)
    assert problems == ["container umami: environment variable APP_SECRET looks like a secret; "
                        "pass it in `secrets` (valueFrom a Secrets Manager ARN)"]


def test_credentials_under_an_innocent_name_are_a_violation(dev):
    task = _with_container(props(dev, invariants.TASK_DEFINITION, "umami-task"), lambda c: c["environment"].append(
        {"name": "DB", "value": "postgresql://umami_user:s3cret@db.internal:5432/appdb?schema=umami"}))
    problems = invariants.secrets_only_through_task_secrets(invariants.TASK_DEFINITION, task)
    assert problems == ["container umami: environment variable DB holds a credential-like value; pass it in `secrets`"]


def test_umami_without_its_secrets_or_with_a_bad_reference_is_a_violation(dev):
    def break_secrets(container: dict[str, Any]) -> None:
        container["secrets"] = [s for s in container["secrets"] if s["name"] != "APP_SECRET"]
        container["secrets"][0]["valueFrom"] = "observability/umami-db-credentials"

    task = _with_container(props(dev, invariants.TASK_DEFINITION, "umami-task"), break_secrets)
    problems = invariants.secrets_only_through_task_secrets(invariants.TASK_DEFINITION, task)
    assert problems == [
        "container umami: secret DATABASE_URL valueFrom is not a Secrets Manager or SSM parameter ARN",
        "container umami: APP_SECRET is not delivered through `secrets`",
    ]


# -- secret access scoped to ARNs -----------------------------------------------------------------

def _edit_policy(policy: dict[str, Any], change) -> dict[str, Any]:
    document = json.loads(policy["policy"])
    statement = next(s for s in document["Statement"] if "secretsmanager:GetSecretValue" in s["Action"])
    change(statement)
    policy["policy"] = json.dumps(document)
    return policy


@pytest.mark.parametrize("resource", [
    "*",
    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:*",
    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:observability/*",
    "arn:aws:ssm:eu-west-1:123456789012:parameter/umami",
])
def test_secret_read_beyond_named_secrets_is_a_violation(dev, resource):
    policy = _edit_policy(props(dev, invariants.IAM_ROLE_POLICY, "umami-execution"), lambda s: s.update(Resource=[resource]))
    problems = invariants.secret_access_scoped(invariants.IAM_ROLE_POLICY, policy)
    assert problems == [f"statement ReadStackSecrets: secret read on {resource!r}; "
                        "scope it to the stack's secret ARNs"]


def test_wildcard_actions_and_not_action_count_as_secret_read(dev):
    policy = _edit_policy(props(dev, invariants.IAM_ROLE_POLICY, "umami-execution"),
                          lambda s: s.update(Action="secretsmanager:Get*", Resource="*"))
    assert len(invariants.secret_access_scoped(invariants.IAM_ROLE_POLICY, policy)) == 1
    policy = _edit_policy(props(dev, invariants.IAM_ROLE_POLICY, "umami-execution"),
                          lambda s: (s.pop("Action"), s.update(NotAction="iam:*")))
    assert "NotAction" in invariants.secret_access_scoped(invariants.IAM_ROLE_POLICY, policy)[0]


def test_a_name_prefix_with_the_random_suffix_wildcard_passes(dev):
    policy = _edit_policy(props(dev, invariants.IAM_ROLE_POLICY, "umami-execution"), lambda s: s.update(
        Resource="arn:aws:secretsmanager:eu-west-1:123456789012:secret:observability/umami-db-credentials-??????"))
    assert invariants.secret_access_scoped(invariants.IAM_ROLE_POLICY, policy) == []


def test_inline_role_policies_are_checked_too():
    role = {"inlinePolicies": [{"name": "secrets", "policy": json.dumps({"Statement": [
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]})}]}
    assert len(invariants.secret_access_scoped(invariants.IAM_ROLE, role)) == 1


# -- health check, log retention, tags --------------------------------------------------------------

@pytest.mark.parametrize(("change", "expected"), [
    ({"path": "/"}, "healthCheck.path='/'; use /api/heartbeat"),
    ({"enabled": False}, "healthCheck.enabled is false"),
    ({"matcher": "301-302"}, "healthCheck.matcher='301-302' does not accept 200, which the heartbeat returns"),
])
def test_health_check_not_on_the_heartbeat_is_a_violation(dev, change, expected):
    group = props(dev, invariants.TARGET_GROUP)
    group["healthCheck"].update(change)
    assert invariants.heartbeat_health_check(invariants.TARGET_GROUP, group) == [expected]


def test_target_group_without_health_check_is_a_violation(dev):
    group = props(dev, invariants.TARGET_GROUP)
    del group["healthCheck"]
    assert "the default path / answers 307" in invariants.heartbeat_health_check(invariants.TARGET_GROUP, group)[0]


@pytest.mark.parametrize("retention", [None, 0])
def test_log_group_without_retention_is_a_violation(dev, retention):
    group = props(dev, invariants.LOG_GROUP, "umami-logs")
    group["retentionInDays"] = retention
    assert invariants.log_retention_set(invariants.LOG_GROUP, group) == [
        "retentionInDays is not set: set a retention (e.g. 30 days)"]


def test_missing_tags_are_a_violation(dev):
    secret = props(dev, "aws:secretsmanager/secret:Secret", "umami-db-credentials")
    del secret["tags"]["Environment"]
    secret["tags"]["ManagedBy"] = " "
    assert invariants.tags_present("aws:secretsmanager/secret:Secret", secret) == [
        "missing tag(s) Environment, ManagedBy"]
    assert invariants.tags_present(invariants.LOAD_BALANCER, {}) == [
        "missing tag(s) Project, Component, Environment, ManagedBy"]
    # Types that take no tags are not asked for them.
    assert invariants.tags_present("aws:secretsmanager/secretVersion:SecretVersion", {}) == []


# -- PostgreSQL roles, grants, protection ----------------------------------------------------------------

@pytest.mark.parametrize(("attribute", "keyword"), sorted(invariants.ROLE_ATTRIBUTES.items()))
def test_dangerous_role_attribute_is_a_violation(dev, attribute, keyword):
    role = props(dev, invariants.PG_ROLE)
    role[attribute] = True
    assert invariants.role_least_privilege(invariants.PG_ROLE, role) == [f"role umami_user has {keyword}"]


def test_role_membership_is_a_violation(dev):
    role = props(dev, invariants.PG_ROLE)
    role["roles"] = ["rds_superuser"]
    assert invariants.role_least_privilege(invariants.PG_ROLE, role) == ["role umami_user is a member of rds_superuser"]


def test_grants_outside_the_stack_schema_are_violations(dev):
    resources = triples(dev)
    for urn, type_token, grant in resources:
        if type_token == invariants.PG_GRANT:
            grant["schema"] = "public"
        if type_token == invariants.PG_DEFAULT_PRIVILEGES and urn.endswith("::umami-default-tables"):
            grant["schema"] = ""
    problems = dict(invariants.grants_within_schema(resources))
    assert sorted(urn.rsplit("::", 1)[1] for urn in problems) == ["umami-default-tables", "umami-schema-usage"]
    schema_usage = next(m for u, m in problems.items() if u.endswith("::umami-schema-usage"))
    assert schema_usage == "grants on schema public; only the stack's schema is allowed (umami)"


def test_database_grant_beyond_connect_is_a_violation(dev):
    resources = triples(dev)
    grant = {"database": "appdb", "objectType": "database", "privileges": ["CONNECT", "CREATE", "TEMPORARY"],
             "role": "umami_user"}
    resources.append(("urn:pulumi:dev::umami::postgresql:index/grant:Grant::db", invariants.PG_GRANT, grant))
    assert invariants.grants_within_schema(resources) == [
        ("urn:pulumi:dev::umami::postgresql:index/grant:Grant::db",
         "grants CREATE, TEMPORARY on database appdb; only CONNECT is allowed")]
    grant["privileges"] = ["CONNECT"]
    assert invariants.grants_within_schema(resources) == []


def test_a_renamed_schema_keeps_the_grant_check_consistent():
    renamed = program(**{"umami:schemaName": "analytics"})
    assert invariants.grants_within_schema(triples(renamed)) == []


def test_unprotected_stateful_database_resources_are_violations():
    unprotected = program(**{"umami:protectStatefulResources": "false"})
    problems = {r.name: invariants.stateful_protected(r.type, r.protect) for r in unprotected.resources}
    assert {name for name, found in problems.items() if found} == {"umami-schema", "umami-role", "umami-pgcrypto"}
    assert problems["umami-schema"] == ["Schema is not protected; set protect (umami:protectStatefulResources)"]
