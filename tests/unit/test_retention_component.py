"""The nightly retention job under Pulumi's mocks: a schedule and a task definition only when
umami:retentionDays > 0, a least-privilege scheduler role, a private network, and the container
that runs driver/retention.mjs with its plan, as Umami's own image and CA wrapper run node."""

import json
import shlex
from fnmatch import fnmatchcase

import boto3
import pytest
from moto import mock_aws

from components.service_parts import retention as job_part
from components.service_parts.container import ca_wrapper
from tests.stack import named, run_dev

SCHEDULE = "aws:scheduler/schedule:Schedule"
TASK_DEF = "aws:ecs/taskDefinition:TaskDefinition"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
SG = "aws:ec2/securityGroup:SecurityGroup"
PRIVATE = ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"]
ACCOUNT, REGION = "123456789012", "eu-west-1"
SHARED_CLUSTER = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/shared"
FAMILY_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/umami-dev-retention"


@pytest.fixture(scope="module")
def run():
    return run_dev()


def job_task(run):
    return named(run, TASK_DEF, "umami-retention-task")


def job_container(run) -> dict:
    containers = json.loads(job_task(run).inputs["containerDefinitions"])
    assert len(containers) == 1
    return containers[0]


def environment(container) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["environment"]}


def scheduler_role(run):
    return named(run, ROLE, "umami-retention-scheduler")


def scheduler_statements(run) -> list[dict]:
    role = scheduler_role(run)
    documents = [json.loads(p.inputs["policy"]) for p in run.by_type(ROLE_POLICY) if p.inputs["role"] == role.id]
    assert len(documents) == 1
    for statement in documents[0]["Statement"]:
        assert statement["Effect"] == "Allow" and not {"NotAction", "NotResource"} & set(statement)
    return documents[0]["Statement"]


def as_list(value):
    return value if isinstance(value, list) else [value]


def allowed(statements, action, resource) -> list[dict]:
    """The statements allowing `action` on `resource` (IAM wildcards), with their conditions."""
    return [s for s in statements if any(fnmatchcase(action, a) for a in as_list(s["Action"]))
            and any(fnmatchcase(resource, r) for r in as_list(s["Resource"]))]


# -- exists only when retention is on --

def test_the_default_stack_schedules_the_job_daily_with_no_flexible_window(run):
    schedule = run.one(SCHEDULE).inputs
    assert schedule["name"] == "umami-dev-retention" == run.outputs["retentionScheduleName"]
    assert schedule["scheduleExpression"] == "cron(17 3 * * ? *)"
    assert schedule["scheduleExpressionTimezone"] == "UTC"
    assert schedule["flexibleTimeWindow"] == {"mode": "OFF"}
    assert schedule["state"] == "ENABLED"
    assert run.outputs["retentionDays"] == 365
    assert job_task(run).inputs["family"] == "umami-dev-retention"


@pytest.mark.parametrize("overrides", [{"retentionDays": "0"},
                                       {"image": "ghcr.io/umami-software/umami:3.0.3"}], ids=["zero", "umami-3.0"])
def test_no_schedule_no_task_definition_no_role_when_retention_is_off(overrides):
    run = run_dev(overrides)
    assert run.by_type(SCHEDULE) == []
    assert [t.inputs["family"] for t in run.by_type(TASK_DEF) if t.inputs["family"].endswith("-retention")] == []
    assert [r.name for r in run.resources if "retention" in r.name] == []
    assert run.outputs["retentionDays"] == 0
    assert "retentionScheduleName" not in run.outputs_json()


def test_the_target_runs_the_job_task_on_the_stacks_cluster_as_the_scheduler_role(run):
    target = run.one(SCHEDULE).inputs["target"]
    assert target["arn"] == run.outputs["ecsClusterArn"]
    assert target["roleArn"] == scheduler_role(run).state["arn"]
    ecs = target["ecsParameters"]
    assert ecs["taskDefinitionArn"] == job_task(run).state["arn"]
    assert (ecs["launchType"], ecs["platformVersion"], ecs["taskCount"]) == ("FARGATE", "LATEST", 1)
    # No tags at RunTask: they would need ecs:TagResource too.
    assert not {"tags", "propagateTags", "enableEcsManagedTags", "enableExecuteCommand"} & set(ecs)
    assert target["retryPolicy"] == {"maximumEventAgeInSeconds": 3600, "maximumRetryAttempts": 3}


def test_the_target_network_is_private(run):
    network = run.one(SCHEDULE).inputs["target"]["ecsParameters"]["networkConfiguration"]
    assert network["subnets"] == PRIVATE
    assert network["securityGroups"] == [named(run, SG, "umami-task").id] == [run.outputs["taskSecurityGroupId"]]
    assert network["assignPublicIp"] is False


# -- least privilege --

def test_the_scheduler_may_only_run_the_job_family_on_the_stacks_cluster(run):
    statements = scheduler_statements(run)
    actions = sorted(a for s in statements for a in as_list(s["Action"]))
    assert actions == ["ecs:RunTask", "iam:PassRole"]
    run_task = allowed(statements, "ecs:RunTask", f"{FAMILY_ARN}:7")
    assert len(run_task) == 1
    assert run_task[0]["Condition"] == {"ArnEquals": {"ecs:cluster": run.outputs["ecsClusterArn"]}}
    for other in (f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/umami-dev:3",
                  f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/umami-dev-deploy:1",
                  f"{FAMILY_ARN}-other:1"):
        assert not allowed(statements, "ecs:RunTask", other), other


def test_the_scheduler_passes_exactly_the_tasks_two_roles_to_ecs_tasks_only(run):
    statements = scheduler_statements(run)
    passing = [s for s in statements if "iam:PassRole" in as_list(s["Action"])]
    assert len(passing) == 1
    assert sorted(passing[0]["Resource"]) == sorted([named(run, ROLE, "umami-execution").state["arn"],
                                                     named(run, ROLE, "umami-task").state["arn"]])
    assert passing[0]["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    assert not allowed(statements, "iam:PassRole", scheduler_role(run).state["arn"])


def test_only_eventbridge_scheduler_of_this_account_assumes_the_role(run):
    trust = json.loads(scheduler_role(run).inputs["assumeRolePolicy"])
    assert trust["Statement"] == [{
        "Effect": "Allow",
        "Principal": {"Service": "scheduler.amazonaws.com"},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {
            "aws:SourceAccount": ACCOUNT,
            "aws:SourceArn": f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule-group/default"}},
    }]


def test_the_scheduler_role_keeps_only_its_declared_policy(run):
    role = scheduler_role(run)
    exclusive = named(run, "aws:iam/rolePoliciesExclusive:RolePoliciesExclusive",
                      "umami-retention-scheduler-only-declared-policies").inputs
    assert exclusive["roleName"] == role.state["name"]
    assert exclusive["policyNames"] == [named(run, ROLE_POLICY, "umami-retention-scheduler").state["name"]]
    attachments = named(run, "aws:iam/rolePolicyAttachmentsExclusive:RolePolicyAttachmentsExclusive",
                        "umami-retention-scheduler-no-managed-policies").inputs
    assert attachments["policyArns"] == []


def test_an_existing_cluster_is_the_target_and_the_condition():
    run = run_dev({"existingClusterArn": SHARED_CLUSTER})
    assert run.one(SCHEDULE).inputs["target"]["arn"] == SHARED_CLUSTER
    run_task = allowed(scheduler_statements(run), "ecs:RunTask", f"{FAMILY_ARN}:1")
    assert run_task[0]["Condition"] == {"ArnEquals": {"ecs:cluster": SHARED_CLUSTER}}


# -- the task definition --

def test_the_task_is_the_smallest_fargate_size_with_the_services_image_roles_and_architecture():
    run = run_dev({"cpu": "512", "memory": "1024", "cpuArchitecture": "X86_64"})
    task = job_task(run).inputs
    assert (task["requiresCompatibilities"], task["networkMode"]) == (["FARGATE"], "awsvpc")
    assert (task["cpu"], task["memory"]) == ("256", "512")
    assert task["runtimePlatform"] == {"operatingSystemFamily": "LINUX", "cpuArchitecture": "X86_64"}
    service = named(run, TASK_DEF, "umami-task").inputs
    assert task["executionRoleArn"] == service["executionRoleArn"]
    assert task["taskRoleArn"] == service["taskRoleArn"]
    assert job_container(run)["image"] == json.loads(service["containerDefinitions"])[0]["image"]
    assert task["tags"]["Component"] == "service"


def test_the_container_runs_the_shipped_script_behind_the_ca_wrapper(run):
    container = job_container(run)
    env = environment(container)
    script, plan = job_part.shipped_files()
    assert env["UMAMI_RETENTION_SCRIPT"] == script == (job_part.DRIVER / "retention.mjs").read_text()
    assert json.loads(env["UMAMI_RETENTION_PLAN"]) == json.loads((job_part.DRIVER / "retention.json").read_text())
    assert env["UMAMI_RETENTION_DAYS"] == "365"
    assert container["entryPoint"] == ["/bin/sh", "-c"]
    assert container["command"] == [ca_wrapper('node --input-type=module -e "$UMAMI_RETENTION_SCRIPT"')]
    assert shlex.split(container["command"][0])[-5:] == ["exec", "node", "--input-type=module", "-e",
                                                           "$UMAMI_RETENTION_SCRIPT"]
    assert env["NODE_EXTRA_CA_CERTS"] == "/tmp/umami-db-ca.pem" and "BEGIN CERTIFICATE" in env["UMAMI_DB_CA_PEM"]
    assert "portMappings" not in container and "healthCheck" not in container


def test_the_database_url_comes_only_from_secrets_manager(run):
    container = job_container(run)
    secret = run.outputs["dbSecretArn"]
    assert {"name": "DATABASE_URL", "valueFrom": f"{secret}:DATABASE_URL::"} in container["secrets"]
    assert "DATABASE_URL" not in environment(container)
    assert all(s["valueFrom"].startswith("arn:aws:secretsmanager:") for s in container["secrets"])


def test_the_job_logs_to_the_services_log_group_under_its_own_prefix(run):
    options = job_container(run)["logConfiguration"]["options"]
    assert options["awslogs-group"] == run.outputs["logGroupName"] == "/ecs/umami-dev"
    assert (options["awslogs-stream-prefix"], options["awslogs-region"]) == ("retention", REGION)


def test_the_configured_days_reach_the_job():
    run = run_dev({"retentionDays": "90"})
    assert environment(job_container(run))["UMAMI_RETENTION_DAYS"] == "90"
    assert "90 days" in run.one(SCHEDULE).inputs["description"]


def test_without_tls_the_job_starts_node_directly():
    run = run_dev({"dbSslMode": "disable", "allowUnencryptedDatabase": "true"})
    container = job_container(run)
    assert container["command"] == ['exec node --input-type=module -e "$UMAMI_RETENTION_SCRIPT"']
    assert "UMAMI_DB_CA_PEM" not in environment(container)


def test_a_database_only_stack_has_no_job():
    run = run_dev({"deployService": "false"}, remove=("umami:vpcId", "umami:privateSubnetIds"))
    assert run.by_type(SCHEDULE) == [] and "retentionScheduleName" not in run.outputs


# -- AWS's API shapes (botocore validates every parameter, moto keeps and parses them) --

def known(inputs: dict, keys: set[str]) -> dict:
    """`inputs`, after checking each one is mapped to the API below (a new input cannot slip past)."""
    assert set(inputs) <= keys, f"not mapped to the AWS API: {sorted(set(inputs) - keys)}"
    return inputs


@pytest.fixture
def aws(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield lambda service: boto3.client(service, region_name=REGION)


def test_aws_accepts_the_role_the_task_definition_and_the_schedule_as_declared(run, aws):
    role = known(scheduler_role(run).inputs, {"description", "assumeRolePolicy", "tags"})
    iam = aws("iam")
    created = iam.create_role(RoleName="umami-retention-scheduler", AssumeRolePolicyDocument=role["assumeRolePolicy"],
                              Description=role["description"])["Role"]
    policy = known(named(run, ROLE_POLICY, "umami-retention-scheduler").inputs, {"role", "policy"})
    iam.put_role_policy(RoleName=created["RoleName"], PolicyName="scheduler", PolicyDocument=policy["policy"])

    task = known(job_task(run).inputs, {"family", "requiresCompatibilities", "networkMode", "cpu", "memory",
                                        "runtimePlatform", "executionRoleArn", "taskRoleArn",
                                        "containerDefinitions", "tags"})
    ecs = aws("ecs")
    registered = ecs.register_task_definition(
        family=task["family"], requiresCompatibilities=task["requiresCompatibilities"],
        networkMode=task["networkMode"], cpu=task["cpu"], memory=task["memory"],
        runtimePlatform=task["runtimePlatform"], executionRoleArn=task["executionRoleArn"],
        taskRoleArn=task["taskRoleArn"], containerDefinitions=json.loads(task["containerDefinitions"]),
        tags=[{"key": k, "value": v} for k, v in task["tags"].items()])["taskDefinition"]
    stored = ecs.describe_task_definition(taskDefinition=registered["taskDefinitionArn"])["taskDefinition"]
    for key, value in job_container(run).items():
        assert stored["containerDefinitions"][0][key] == value, key

    schedule = known(run.one(SCHEDULE).inputs, {"name", "description", "scheduleExpression",
                                                "scheduleExpressionTimezone", "flexibleTimeWindow", "state",
                                                "target"})
    target = known(schedule["target"], {"arn", "roleArn", "ecsParameters", "retryPolicy"})
    ecs_parameters = known(target["ecsParameters"], {"taskDefinitionArn", "launchType", "platformVersion",
                                                     "taskCount", "networkConfiguration"})
    network = known(ecs_parameters["networkConfiguration"], {"subnets", "securityGroups", "assignPublicIp"})
    scheduler = aws("scheduler")
    scheduler.create_schedule(
        Name=schedule["name"], Description=schedule["description"], State=schedule["state"],
        ScheduleExpression=schedule["scheduleExpression"],
        ScheduleExpressionTimezone=schedule["scheduleExpressionTimezone"],
        FlexibleTimeWindow={"Mode": schedule["flexibleTimeWindow"]["mode"]},
        Target={
            "Arn": target["arn"], "RoleArn": created["Arn"],
            "RetryPolicy": {"MaximumEventAgeInSeconds": target["retryPolicy"]["maximumEventAgeInSeconds"],
                            "MaximumRetryAttempts": target["retryPolicy"]["maximumRetryAttempts"]},
            "EcsParameters": {
                "TaskDefinitionArn": registered["taskDefinitionArn"], "LaunchType": ecs_parameters["launchType"],
                "PlatformVersion": ecs_parameters["platformVersion"], "TaskCount": ecs_parameters["taskCount"],
                "NetworkConfiguration": {"awsvpcConfiguration": {
                    "Subnets": network["subnets"], "SecurityGroups": network["securityGroups"],
                    "AssignPublicIp": "ENABLED" if network["assignPublicIp"] else "DISABLED"}},
            },
        })
    read = scheduler.get_schedule(Name=schedule["name"])
    assert read["ScheduleExpression"] == "cron(17 3 * * ? *)" and read["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert read["Target"]["EcsParameters"]["NetworkConfiguration"]["awsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"
