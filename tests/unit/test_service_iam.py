"""The IAM documents, parsed and evaluated: the execution role reads only the stack's secrets,
the task role grants nothing by default."""

import json
from fnmatch import fnmatchcase

import pytest

from components.service_parts.iam import ecr_repository_arn
from tests.stack import named, run_dev

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ADMIN_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!cluster-0a1b2c3d-AbCdEf"
KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/0123abcd-0123-4567-89ab-0123456789ab"
ECR_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mirror/umami:3.1.0"


@pytest.fixture(scope="module")
def run():
    return run_dev()


def role(run, name):
    return next(r for r in run.by_type(ROLE) if r.name == name)


def inline_policies(run, role_resource):
    """Every inline policy document attached to the role (by id, as RolePolicy.role refers to it)."""
    return [json.loads(p.inputs["policy"]) for p in run.by_type(ROLE_POLICY) if p.inputs["role"] == role_resource.id]


def statements(documents):
    for document in documents:
        assert document["Version"] == "2012-10-17"
        for statement in document["Statement"]:
            # Only plain Allow statements, so evaluating them below is complete.
            assert statement["Effect"] == "Allow"
            assert not {"NotAction", "NotResource", "NotPrincipal"} & set(statement)
            yield statement


def as_list(value):
    return value if isinstance(value, list) else [value]


def allows(documents, action, resource):
    """Whether any statement allows `action` on `resource` (IAM wildcard matching)."""
    for statement in statements(documents):
        if any(fnmatchcase(action, a) for a in as_list(statement["Action"])) and \
                any(fnmatchcase(resource, r) for r in as_list(statement["Resource"])):
            return True
    return False


def stack_secret_arns(run):
    return {r.state["arn"] for r in run.by_type("aws:secretsmanager/secret:Secret")}


def test_execution_role_reads_exactly_the_stacks_secrets(run):
    documents = inline_policies(run, role(run, "umami-execution"))
    secret_arns = stack_secret_arns(run)
    # The deploy task reads the admin login's passwordHash with the same execution role.
    assert secret_arns == {run.outputs["dbSecretArn"], run.outputs["appSecretArn"], run.outputs["umamiAdminSecretArn"]}
    readable = [s for s in statements(documents) if any("secretsmanager" in a for a in as_list(s["Action"]))]
    assert len(readable) == 1
    assert as_list(readable[0]["Action"]) == ["secretsmanager:GetSecretValue"]
    assert set(as_list(readable[0]["Resource"])) == secret_arns
    for arn in secret_arns:
        assert allows(documents, "secretsmanager:GetSecretValue", arn)
    # Not the admin secret, not any other secret, and no other Secrets Manager action.
    assert not allows(documents, "secretsmanager:GetSecretValue", ADMIN_SECRET)
    assert not allows(documents, "secretsmanager:GetSecretValue",
                      "arn:aws:secretsmanager:eu-west-1:123456789012:secret:observability/other-AbCdEf")
    assert not allows(documents, "secretsmanager:ListSecrets", "*")
    assert not allows(documents, "secretsmanager:PutSecretValue", run.outputs["dbSecretArn"])


def test_execution_role_writes_only_its_log_group(run):
    documents = inline_policies(run, role(run, "umami-execution"))
    group = named(run, "aws:cloudwatch/logGroup:LogGroup", "umami-logs").state["arn"]
    assert allows(documents, "logs:PutLogEvents", f"{group}:log-stream:umami/umami/0123")
    assert allows(documents, "logs:CreateLogStream", group)
    assert not allows(documents, "logs:PutLogEvents", group.replace("/ecs/umami-dev", "/ecs/other") + ":log-stream:x")
    assert not allows(documents, "logs:CreateLogGroup", group)
    assert not allows(documents, "logs:DeleteLogGroup", group)


def test_execution_role_has_nothing_else_by_default(run):
    documents = inline_policies(run, role(run, "umami-execution"))
    actions = {a for s in statements(documents) for a in as_list(s["Action"])}
    assert actions == {"logs:CreateLogStream", "logs:PutLogEvents", "secretsmanager:GetSecretValue"}
    assert all("*" not in r.split(":log-stream:")[0] for s in statements(documents) for r in as_list(s["Resource"]))


def test_execution_role_is_assumable_by_ecs_tasks_only(run):
    trust = json.loads(role(run, "umami-execution").inputs["assumeRolePolicy"])
    assert [(s["Effect"], s["Principal"], s["Action"]) for s in trust["Statement"]] == [
        ("Allow", {"Service": "ecs-tasks.amazonaws.com"}, "sts:AssumeRole")]


def test_cmk_adds_decrypt_on_that_key_through_secrets_manager_only():
    run = run_dev({"kmsKeyId": KMS_KEY})
    documents = inline_policies(run, role(run, "umami-execution"))
    decrypt = [s for s in statements(documents) if "kms:Decrypt" in as_list(s["Action"])]
    assert len(decrypt) == 1 and as_list(decrypt[0]["Resource"]) == [KMS_KEY]
    assert decrypt[0]["Condition"] == {"StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}}
    assert not allows(documents, "kms:Decrypt", KMS_KEY.replace("0123abcd", "ffffffff"))


def test_cmk_alias_is_resolved_to_a_key_arn():
    run = run_dev({"kmsKeyId": "alias/umami-secrets"})
    documents = inline_policies(run, role(run, "umami-execution"))
    resources = [r for s in statements(documents) if "kms:Decrypt" in as_list(s["Action"]) for r in as_list(s["Resource"])]
    assert len(resources) == 1 and ":key/" in resources[0] and "alias" not in resources[0]


def test_no_kms_permission_without_a_cmk(run):
    documents = inline_policies(run, role(run, "umami-execution"))
    assert not any(a.startswith("kms:") for s in statements(documents) for a in as_list(s["Action"]))


def test_ecr_image_gets_pull_rights_on_its_repository_only():
    run = run_dev({"image": ECR_IMAGE})
    documents = inline_policies(run, role(run, "umami-execution"))
    repository = "arn:aws:ecr:eu-west-1:123456789012:repository/mirror/umami"
    assert ecr_repository_arn(ECR_IMAGE) == repository
    assert allows(documents, "ecr:BatchGetImage", repository)
    assert not allows(documents, "ecr:BatchGetImage", "arn:aws:ecr:eu-west-1:123456789012:repository/other")
    assert allows(documents, "ecr:GetAuthorizationToken", "*")
    assert not allows(documents, "ecr:PutImage", repository)


def test_public_registry_image_gets_no_ecr_rights(run):
    documents = inline_policies(run, role(run, "umami-execution"))
    assert not any(a.startswith("ecr:") for s in statements(documents) for a in as_list(s["Action"]))


def test_task_role_grants_nothing_by_default(run):
    task = role(run, "umami-task")
    assert inline_policies(run, task) == []
    assert "managedPolicyArns" not in task.inputs and "inlinePolicies" not in task.inputs
    assert not run.by_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert not run.by_type("aws:iam/policy:Policy")
    # Pinned: policies attached outside the stack are removed on the next `pulumi up`.
    exclusive = {r.name: r.inputs for r in run.by_type("aws:iam/rolePoliciesExclusive:RolePoliciesExclusive")}
    assert exclusive["umami-task-only-declared-policies"] == {"roleName": task.state["name"], "policyNames": []}
    attachments = {r.name: r.inputs for r in run.by_type("aws:iam/rolePolicyAttachmentsExclusive:RolePolicyAttachmentsExclusive")}
    assert attachments["umami-task-no-managed-policies"] == {"roleName": task.state["name"], "policyArns": []}
    assert attachments["umami-execution-no-managed-policies"]["policyArns"] == []


def test_task_role_trust_is_limited_to_this_account_and_region(run):
    trust = json.loads(role(run, "umami-task").inputs["assumeRolePolicy"])
    statement = trust["Statement"][0]
    assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert statement["Condition"] == {
        "ArnLike": {"aws:SourceArn": "arn:aws:ecs:eu-west-1:123456789012:*"},
        "StringEquals": {"aws:SourceAccount": "123456789012"},
    }


def test_ecs_exec_gives_the_task_role_the_ssm_channels_only():
    run = run_dev({"enableExecuteCommand": "true"})
    task = role(run, "umami-task")
    documents = inline_policies(run, task)
    actions = {a for s in statements(documents) for a in as_list(s["Action"])}
    assert actions == {"ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
                       "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"}
    assert not allows(documents, "secretsmanager:GetSecretValue", run.outputs["dbSecretArn"])
    exec_policy = next(p for p in run.by_type(ROLE_POLICY) if p.inputs["role"] == task.id)
    exclusive = next(r for r in run.by_type("aws:iam/rolePoliciesExclusive:RolePoliciesExclusive")
                     if r.inputs["roleName"] == task.state["name"])
    assert exclusive.inputs["policyNames"] == [exec_policy.state["name"]]
