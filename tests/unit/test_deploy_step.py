"""The deploy step: migrations and the admin rotation as a one-off task inside `pulumi up`.

Under Pulumi's mocks: the service never migrates; the deploy task definition (its container, secrets,
command and URL option); the Lambda function, its least-privilege role and the invocation, which waits
for the database and the secrets and which the service waits for. The container's command runs for real
under /bin/sh with stand-ins for pnpm and node; the task definition and function are accepted by moto's
ECS and Lambda (botocore validates the shapes); the handler runs against botocore's Stubber.
"""

from __future__ import annotations

import hashlib
import io
import json
import shlex
import subprocess
import zipfile
from fnmatch import fnmatchcase
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from components.service_parts import deploy_step_handler as handler_module
from components.service_parts.container import (MIGRATION_URL_PARAMETER, ca_wrapper, deploy_command,
                                                rotation_script)
from components.service_parts.deploy_step import invocation_input
from components.service_parts.deploy_step_handler import DeployStepFailed, DeployTask, redact
from components.service_parts.deploy_step_handler import run as run_deploy_task
from components.shared.tls import CONTAINER_CA_PATH
from facts import UMAMI_DEFAULT_ADMIN_PASSWORD_HASH
from tests.stack import named, run_dev

REPO = Path(__file__).resolve().parents[2]
PEM = (REPO / "components" / "shared" / "rds_ca" / "eu-west-1.pem").read_text()
PRIVATE = ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"]
TASK_DEF = "aws:ecs/taskDefinition:TaskDefinition"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
FUNCTION = "aws:lambda/function:Function"
INVOCATION = "aws:lambda/invocation:Invocation"
SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
ECS_ARN = "arn:aws:ecs:eu-west-1:123456789012"
PLAIN = {"dbSslMode": "disable", "allowUnencryptedDatabase": "true"}


@pytest.fixture(scope="module")
def run():
    return run_dev()


def container(task) -> dict:
    definitions = json.loads(task.inputs["containerDefinitions"])
    assert len(definitions) == 1
    return definitions[0]


def environment(definition: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in definition["environment"]}


def deploy_task(run):
    return named(run, TASK_DEF, "umami-deploy-task")


# -- the containers ------------------------------------------------------------------------------

def test_the_service_container_never_migrates(run):
    assert environment(container(named(run, TASK_DEF, "umami-task")))["SKIP_DB_MIGRATION"] == "1"


def test_the_deploy_task_is_the_service_image_roles_and_size_in_its_own_family(run):
    service, deploy = named(run, TASK_DEF, "umami-task").inputs, deploy_task(run).inputs
    assert deploy["family"] == "umami-dev-deploy" != service["family"]
    for key in ("requiresCompatibilities", "networkMode", "cpu", "memory", "runtimePlatform", "executionRoleArn",
                "taskRoleArn", "tags"):
        assert deploy[key] == service[key], key
    assert deploy["requiresCompatibilities"] == ["FARGATE"]
    assert container(deploy_task(run))["image"] == container(named(run, TASK_DEF, "umami-task"))["image"]


def test_the_deploy_container_migrates_then_rotates_without_skipping(run):
    deploy, service = container(deploy_task(run)), container(named(run, TASK_DEF, "umami-task"))
    env = environment(deploy)
    assert "SKIP_DB_MIGRATION" not in env
    assert env["UMAMI_ROTATE_ADMIN_SCRIPT"] == (REPO / "driver" / "rotate-admin.mjs").read_text()
    assert env["UMAMI_DEFAULT_ADMIN_HASH"] == UMAMI_DEFAULT_ADMIN_PASSWORD_HASH
    for key in ("UMAMI_DB_CA_PEM", "NODE_EXTRA_CA_CERTS", "HOSTNAME", "DISABLE_TELEMETRY"):
        assert env[key] == environment(service)[key], key
    # The service's CA wrapper in front of: check-db (connection, version, prisma migrate deploy) on the
    # URL with statement_timeout=0, then the rotation script from the environment.
    command = deploy_command("3.1.0")
    assert deploy["entryPoint"] == ["/bin/sh", "-c"] and deploy["command"] == [ca_wrapper(f"sh -c {shlex.quote(command)}")]
    assert command.index("pnpm check-db") < command.index('node --input-type=module -e "$UMAMI_ROTATE_ADMIN_SCRIPT"')
    assert MIGRATION_URL_PARAMETER == "options=-c%20statement_timeout%3D0" and MIGRATION_URL_PARAMETER in command
    assert "portMappings" not in deploy and "healthCheck" not in deploy


def test_the_deploy_container_gets_the_service_secrets_and_the_admin_hash(run):
    deploy, service = container(deploy_task(run)), container(named(run, TASK_DEF, "umami-task"))
    secrets = {s["name"]: s["valueFrom"] for s in deploy["secrets"]}
    assert secrets == {**{s["name"]: s["valueFrom"] for s in service["secrets"]},
                       "UMAMI_ADMIN_PASSWORD_HASH": f"{run.outputs['umamiAdminSecretArn']}:passwordHash::"}


def test_the_deploy_container_logs_to_the_service_log_group_under_deploy(run):
    options = container(deploy_task(run))["logConfiguration"]["options"]
    service = container(named(run, TASK_DEF, "umami-task"))["logConfiguration"]["options"]
    assert options == {**service, "awslogs-stream-prefix": "deploy"}
    assert options["awslogs-group"] == "/ecs/umami-dev"


def test_2x_images_check_the_database_with_yarn():
    assert "yarn check-db &&" in deploy_command("2.19.0") and "pnpm" not in deploy_command("2.19.0")


def test_without_a_ca_the_command_runs_as_it_is():
    deploy = container(deploy_task(run_dev(PLAIN)))
    assert deploy["command"] == [deploy_command("3.1.0")]
    assert not {"UMAMI_DB_CA_PEM", "NODE_EXTRA_CA_CERTS"} & set(environment(deploy))


FAKE_TOOL = """#!/bin/sh
# Stands in for the image's pnpm and node: records what it was run with (a third argument, node's
# script, in a file of its own).
echo "$(basename "$0") $1 $2 | skip=${SKIP_DB_MIGRATION-unset} url=$DATABASE_URL" >> "$TOOLS_LOG"
[ -z "$3" ] || printf '%s' "$3" > "$TOOLS_LOG.script"
exit "${FAKE_EXIT:-0}"
"""


def run_registered_command(run, tmp_path: Path, url: str, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """The exact command of the deploy task definition, its CA path pointed at tmp_path."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("pnpm", "node"):
        (bin_dir / tool).write_text(FAKE_TOOL)
        (bin_dir / tool).chmod(0o755)
    definition = container(deploy_task(run))
    command = definition["command"][0].replace(CONTAINER_CA_PATH, str(tmp_path / "ca.pem"))
    variables = {"PATH": f"{bin_dir}:/usr/bin:/bin", "TOOLS_LOG": str(tmp_path / "tools.log"),
                 "DATABASE_URL": url, **environment(definition), **env}
    result = subprocess.run([*definition["entryPoint"], command], env=variables, capture_output=True, text=True,
                            timeout=30)
    log = tmp_path / "tools.log"
    return result, log.read_text().splitlines() if log.exists() else []


def test_the_registered_command_runs_check_db_on_the_lifted_url_then_the_rotation(run, tmp_path):
    stored = "postgresql://umami_user:p%40ss@db:5432/appdb?schema=umami&sslmode=verify-full"
    # SKIP_DB_MIGRATION set by anyone (a task override, an image default) is still unset for check-db.
    result, calls = run_registered_command(run, tmp_path, stored, SKIP_DB_MIGRATION="1")
    assert result.returncode == 0, result.stderr
    lifted = f"{stored}&{MIGRATION_URL_PARAMETER}"
    script = rotation_script()
    assert calls == [f"pnpm check-db  | skip=unset url={lifted}", f"node --input-type=module -e | skip=unset url={lifted}"]
    assert (tmp_path / "tools.log.script").read_text() == script  # the script's text, whole, from the environment
    assert (tmp_path / "ca.pem").read_text() == PEM


def test_a_failed_check_db_fails_the_task_before_the_rotation(run, tmp_path):
    result, calls = run_registered_command(run, tmp_path, "postgresql://u:p@db/appdb?schema=umami", FAKE_EXIT="3")
    assert result.returncode == 3
    assert [c.split(" |")[0].strip() for c in calls] == ["pnpm check-db"]


def test_a_url_without_a_query_gets_the_option_as_its_first_parameter(run, tmp_path):
    result, calls = run_registered_command(run, tmp_path, "postgresql://u:p@db/appdb")
    assert result.returncode == 0, result.stderr
    assert calls[0].endswith(f"url=postgresql://u:p@db/appdb?{MIGRATION_URL_PARAMETER}")


# -- the function and its invocation --------------------------------------------------------------

def test_the_invocation_runs_the_deploy_task_where_the_service_runs(run):
    invocation = run.one(INVOCATION).inputs
    function = run.one(FUNCTION)
    assert invocation["functionName"] == function.inputs["name"] == "umami-dev-deploy-step"
    assert invocation.get("lifecycleScope", "CREATE_ONLY") == "CREATE_ONLY"  # no call on delete
    service = run.one("aws:ecs/service:Service").inputs
    assert json.loads(invocation["input"]) == {
        "cluster": run.outputs["ecsClusterArn"],
        "taskDefinition": deploy_task(run).state["arn"],
        "subnets": PRIVATE,
        "securityGroups": service["networkConfiguration"]["securityGroups"],
        "containerName": "umami",
        "logGroup": "/ecs/umami-dev",
        "logStreamPrefix": "deploy",
    }
    DeployTask.from_event(json.loads(invocation["input"]))  # what the handler reads


def test_the_invocation_waits_for_the_database_and_the_secrets(run):
    dependencies = set(run.one(INVOCATION).dependencies)
    database = {r.urn for r in run.resources if r.custom and r.type.startswith("postgresql:")}
    assert {"postgresql:index/role:Role", "postgresql:index/schema:Schema", "postgresql:index/grant:Grant",
            "postgresql:index/extension:Extension"} <= {r.type for r in run.resources if r.urn in database}
    assert database <= dependencies
    versions = {r.urn for r in run.by_type(SECRET_VERSION)}
    assert len(versions) == 3 and versions <= dependencies  # credentials, APP_SECRET, admin login
    assert {named(run, ROLE_POLICY, "umami-execution").urn, named(run, ROLE_POLICY, "umami-deploy-step").urn} <= dependencies
    assert deploy_task(run).urn in dependencies and run.one(FUNCTION).urn in dependencies


def test_the_service_rolls_only_after_the_invocation(run):
    assert run.one(INVOCATION).urn in run.one("aws:ecs/service:Service").dependencies


def test_a_new_image_triggers_the_invocation_again(run):
    triggers = run.one(INVOCATION).inputs["triggers"]
    assert triggers == {"image": "ghcr.io/umami-software/umami:3.1.0", "taskDefinition": deploy_task(run).state["arn"],
                        "revision": "1"}
    other = run_dev({"image": "ghcr.io/umami-software/umami:3.1.1"})
    assert other.one(INVOCATION).inputs["triggers"]["image"] == "ghcr.io/umami-software/umami:3.1.1"
    # ... and the deploy task definition changes with it (a new revision, hence a new ARN, in AWS).
    assert container(deploy_task(other))["image"] == "ghcr.io/umami-software/umami:3.1.1"
    assert deploy_task(other).inputs["containerDefinitions"] != deploy_task(run).inputs["containerDefinitions"]


def test_the_function_ships_the_handler_module_for_python_312(run):
    function = run.one(FUNCTION)
    inputs = function.inputs
    handler_file = REPO / "components" / "service_parts" / "deploy_step_handler.py"
    assert inputs["code"] == {"archive": {"deploy_step_handler.py": {
        "file": "components/service_parts/deploy_step_handler.py",
        "sha256": hashlib.sha256(handler_file.read_bytes()).hexdigest()}}}
    assert (inputs["runtime"], inputs["handler"]) == ("python3.12", "deploy_step_handler.handler")
    assert inputs["timeout"] == 900 and handler_module.MARGIN_SECONDS >= 3 * handler_module.POLL_SECONDS
    assert inputs["role"] == named(run, ROLE, "umami-deploy-step").state["arn"]
    group = named(run, "aws:cloudwatch/logGroup:LogGroup", "umami-deploy-step-logs")
    assert inputs["loggingConfig"] == {"logFormat": "Text", "logGroup": "/aws/lambda/umami-dev-deploy-step"}
    assert group.inputs["name"] == "/aws/lambda/umami-dev-deploy-step" and group.inputs["retentionInDays"] == 30
    assert group.urn in function.dependencies
    assert inputs["tags"]["Component"] == "service"


# -- least privilege for the function -------------------------------------------------------------

def statements(run) -> list[dict]:
    policy = named(run, ROLE_POLICY, "umami-deploy-step")
    assert policy.inputs["role"] == named(run, ROLE, "umami-deploy-step").id
    document = json.loads(policy.inputs["policy"])
    assert all(s["Effect"] == "Allow" and not {"NotAction", "NotResource"} & set(s) for s in document["Statement"])
    return document["Statement"]


def allows(run, action: str, resource: str) -> list[dict]:
    """The statements allowing `action` on `resource` (IAM wildcard matching)."""
    return [s for s in statements(run) if action in s["Action"] and any(fnmatchcase(resource, r) for r in s["Resource"])]


def test_the_function_is_assumable_by_lambda_only(run):
    trust = json.loads(named(run, ROLE, "umami-deploy-step").inputs["assumeRolePolicy"])
    assert [(s["Effect"], s["Principal"], s["Action"]) for s in trust["Statement"]] == [
        ("Allow", {"Service": "lambda.amazonaws.com"}, "sts:AssumeRole")]


def test_the_function_may_run_only_the_deploy_family_in_the_stacks_cluster(run):
    [statement] = allows(run, "ecs:RunTask", f"{ECS_ARN}:task-definition/umami-dev-deploy:7")
    assert statement["Condition"] == {"ArnEquals": {"ecs:cluster": run.outputs["ecsClusterArn"]}}
    for family in ("umami-dev", "umami-dev-retention", "other"):
        assert not allows(run, "ecs:RunTask", f"{ECS_ARN}:task-definition/{family}:1"), family
    assert allows(run, "ecs:DescribeTasks", f"{ECS_ARN}:task/umami-dev/0123abcd")
    assert not allows(run, "ecs:DescribeTasks", f"{ECS_ARN}:task/other-cluster/0123abcd")


def test_the_function_passes_exactly_the_two_task_roles_to_ecs_tasks(run):
    passed = [s for s in statements(run) if "iam:PassRole" in s["Action"]]
    assert len(passed) == 1
    assert set(passed[0]["Resource"]) == {named(run, ROLE, "umami-execution").state["arn"],
                                          named(run, ROLE, "umami-task").state["arn"]}
    assert passed[0]["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}


def test_the_function_reads_only_the_deploy_tasks_log_and_writes_only_its_own(run):
    group = named(run, "aws:cloudwatch/logGroup:LogGroup", "umami-logs").state["arn"]
    own = named(run, "aws:cloudwatch/logGroup:LogGroup", "umami-deploy-step-logs").state["arn"]
    assert allows(run, "logs:GetLogEvents", f"{group}:log-stream:deploy/umami/0123")
    assert not allows(run, "logs:GetLogEvents", f"{group}:log-stream:umami/umami/0123")
    assert allows(run, "logs:PutLogEvents", f"{own}:log-stream:2024/01/01/[$LATEST]abc")
    assert not allows(run, "logs:PutLogEvents", f"{group}:log-stream:deploy/umami/0123")


def test_the_function_has_nothing_else(run):
    actions = {a for s in statements(run) for a in s["Action"]}
    assert actions == {"ecs:RunTask", "ecs:DescribeTasks", "iam:PassRole", "logs:GetLogEvents",
                       "logs:CreateLogStream", "logs:PutLogEvents"}
    assert all(r != "*" for s in statements(run) for r in s["Resource"])
    exclusive = named(run, "aws:iam/rolePoliciesExclusive:RolePoliciesExclusive", "umami-deploy-step-only-declared-policies")
    assert exclusive.inputs["policyNames"] == [named(run, ROLE_POLICY, "umami-deploy-step").state["name"]]
    managed = named(run, "aws:iam/rolePolicyAttachmentsExclusive:RolePolicyAttachmentsExclusive",
                    "umami-deploy-step-no-managed-policies")
    assert managed.inputs["policyArns"] == []


def test_an_existing_cluster_scopes_the_function_to_it():
    arn = "arn:aws:ecs:eu-west-1:123456789012:cluster/shared"
    other = run_dev({"existingClusterArn": arn})
    assert json.loads(other.one(INVOCATION).inputs["input"])["cluster"] == arn
    [statement] = allows(other, "ecs:RunTask", f"{ECS_ARN}:task-definition/umami-dev-deploy:1")
    assert statement["Condition"] == {"ArnEquals": {"ecs:cluster": arn}}
    assert allows(other, "ecs:DescribeTasks", f"{ECS_ARN}:task/shared/0123")


def test_a_database_only_stack_has_no_deploy_step():
    other = run_dev({"deployService": "false"})
    assert not other.by_type(INVOCATION) and not other.by_type(FUNCTION) and not other.by_type(TASK_DEF)


# -- the AWS API shapes ---------------------------------------------------------------------------

@pytest.fixture
def aws(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield lambda service: boto3.client(service, region_name="eu-west-1")


def test_ecs_registers_the_deploy_task_definition_unchanged(run, aws):
    inputs = deploy_task(run).inputs
    registered = aws("ecs").register_task_definition(
        family=inputs["family"], requiresCompatibilities=inputs["requiresCompatibilities"],
        networkMode=inputs["networkMode"], cpu=inputs["cpu"], memory=inputs["memory"],
        runtimePlatform=inputs["runtimePlatform"], executionRoleArn=inputs["executionRoleArn"],
        taskRoleArn=inputs["taskRoleArn"], containerDefinitions=json.loads(inputs["containerDefinitions"]),
    )["taskDefinition"]
    described = aws("ecs").describe_task_definition(taskDefinition=registered["taskDefinitionArn"])["taskDefinition"]
    for key, value in json.loads(inputs["containerDefinitions"])[0].items():
        assert described["containerDefinitions"][0][key] == value, key


def test_lambda_accepts_the_function_and_its_role(run, aws):
    role = named(run, ROLE, "umami-deploy-step").inputs
    iam = aws("iam")
    role_arn = iam.create_role(RoleName="umami-deploy-step", AssumeRolePolicyDocument=role["assumeRolePolicy"])["Role"]["Arn"]
    iam.put_role_policy(RoleName="umami-deploy-step", PolicyName="umami-deploy-step",
                        PolicyDocument=named(run, ROLE_POLICY, "umami-deploy-step").inputs["policy"])
    inputs = run.one(FUNCTION).inputs
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        for name, asset in inputs["code"]["archive"].items():
            bundle.write(REPO / asset["file"], name)
    created = aws("lambda").create_function(
        FunctionName=inputs["name"], Runtime=inputs["runtime"], Handler=inputs["handler"], Role=role_arn,
        Code={"ZipFile": archive.getvalue()}, Timeout=inputs["timeout"], MemorySize=inputs["memorySize"],
        Architectures=inputs["architectures"], Description=inputs["description"],
        LoggingConfig={"LogFormat": inputs["loggingConfig"]["logFormat"],
                       "LogGroup": inputs["loggingConfig"]["logGroup"]},
    )
    assert (created["Runtime"], created["Handler"], created["Timeout"]) == ("python3.12", "deploy_step_handler.handler", 900)


# -- the handler, against botocore's Stubber ------------------------------------------------------

TASK_ARN = "arn:aws:ecs:eu-west-1:123456789012:task/umami-dev/0123456789abcdef0123456789abcdef"
EVENT = json.loads(invocation_input(cluster="arn:aws:ecs:eu-west-1:123456789012:cluster/umami-dev",
                                    task_definition="arn:aws:ecs:eu-west-1:123456789012:task-definition/umami-dev-deploy:3",
                                    subnets=PRIVATE, security_group="sg-0123456789abcdef0", log_group="/ecs/umami-dev"))
RUN_TASK = {
    "cluster": EVENT["cluster"], "taskDefinition": EVENT["taskDefinition"], "launchType": "FARGATE",
    "platformVersion": "LATEST", "count": 1, "startedBy": "pulumi-deploy-step",
    "networkConfiguration": {"awsvpcConfiguration": {"subnets": PRIVATE, "securityGroups": ["sg-0123456789abcdef0"],
                                                     "assignPublicIp": "DISABLED"}},
}
DESCRIBE = {"cluster": EVENT["cluster"], "tasks": [TASK_ARN]}
LOGS = {"logGroupName": "/ecs/umami-dev", "logStreamName": "deploy/umami/0123456789abcdef0123456789abcdef",
        "limit": 50, "startFromHead": False}


class Clock:
    """Time that passes only when the handler sleeps."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clients():
    ecs = boto3.client("ecs", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    logs = boto3.client("logs", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(ecs) as ecs_stub, Stubber(logs) as logs_stub:
        yield ecs, logs, ecs_stub, logs_stub
        ecs_stub.assert_no_pending_responses()
        logs_stub.assert_no_pending_responses()


def started(stub):
    stub.add_response("run_task", {"tasks": [{"taskArn": TASK_ARN, "lastStatus": "PROVISIONING"}], "failures": []},
                      RUN_TASK)


def status(stub, last_status: str, **extra):
    stub.add_response("describe_tasks", {"tasks": [{"taskArn": TASK_ARN, "lastStatus": last_status, **extra}],
                                         "failures": []}, DESCRIBE)


def logged(stub, *lines: str):
    stub.add_response("get_log_events", {"events": [{"timestamp": i, "message": line, "ingestionTime": i}
                                                    for i, line in enumerate(lines)]}, LOGS)


def run_handler(clients, clock: Clock, budget: float = 840):
    ecs, logs, _, _ = clients
    return run_deploy_task(DeployTask.from_event(EVENT), ecs, logs, deadline=clock.now + budget, clock=clock,
                           sleep=clock.sleep)


def test_a_task_that_exits_0_returns_its_log_tail(clients):
    _, _, ecs_stub, logs_stub = clients
    started(ecs_stub)
    status(ecs_stub, "RUNNING")
    status(ecs_stub, "STOPPED", containers=[{"name": "umami", "exitCode": 0}], stopCode="EssentialContainerExited")
    logged(logs_stub, "✓ Database connection successful.", "All migrations have been successfully applied.",
           "admin password replaced")
    clock = Clock()

    result = run_handler(clients, clock)

    assert result == {"status": "succeeded", "taskArn": TASK_ARN, "exitCode": 0,
                      "logTail": ["✓ Database connection successful.", "All migrations have been successfully applied.",
                                  "admin password replaced"]}
    assert clock.sleeps == [handler_module.POLL_SECONDS]


def test_a_failed_migration_fails_the_invocation_with_the_redacted_log_tail(clients):
    _, _, ecs_stub, logs_stub = clients
    started(ecs_stub)
    status(ecs_stub, "STOPPED", containers=[{"name": "umami", "exitCode": 1}], stopCode="EssentialContainerExited")
    logged(logs_stub, *[f"line {i}" for i in range(60)],
           "Error: P3009 migrate found failed migrations in the target database",
           "Datasource: postgresql://umami_user:S3cret-Pass@db.example.com:5432/appdb",
           f"hash {UMAMI_DEFAULT_ADMIN_PASSWORD_HASH} password=hunter22 APP_SECRET: abcdef123456")

    with pytest.raises(DeployStepFailed) as failed:
        run_handler(clients, Clock())

    message = str(failed.value)
    assert message.startswith(f"the deploy task {TASK_ARN} failed: container umami exited with 1; "
                              "the service was not changed\nLast log lines:\n")
    tail = message.split("Last log lines:\n", 1)[1].splitlines()
    assert len(tail) == handler_module.LOG_TAIL_LINES
    assert tail[-3] == "Error: P3009 migrate found failed migrations in the target database"
    assert tail[-2] == "Datasource: postgresql://umami_user:***@db.example.com:5432/appdb"
    assert tail[-1] == "hash *** password=*** APP_SECRET: ***"
    for secret in ("S3cret-Pass", "hunter22", "abcdef123456", UMAMI_DEFAULT_ADMIN_PASSWORD_HASH):
        assert secret not in message


def test_a_task_that_cannot_start_fails_at_once(clients):
    _, _, ecs_stub, _ = clients
    ecs_stub.add_response("run_task", {"tasks": [], "failures": [{"arn": EVENT["taskDefinition"], "reason": "RESOURCE:ENI",
                                                                  "detail": "no free addresses"}]}, RUN_TASK)
    with pytest.raises(DeployStepFailed, match=r"^the deploy task could not start: RESOURCE:ENI \(no free addresses\)$"):
        run_handler(clients, Clock())


def test_a_task_that_stopped_before_its_container_ran_says_why(clients):
    _, _, ecs_stub, logs_stub = clients
    started(ecs_stub)
    status(ecs_stub, "STOPPED", stopCode="TaskFailedToStart",
           stoppedReason="ResourceInitializationError: unable to pull secrets or registry auth",
           containers=[{"name": "umami", "reason": "CannotPullContainerError: pull access denied"}])
    logs_stub.add_client_error("get_log_events", service_error_code="ResourceNotFoundException",
                               service_message="The specified log stream does not exist.", expected_params=LOGS)
    with pytest.raises(DeployStepFailed) as failed:
        run_handler(clients, Clock())
    assert str(failed.value) == (
        f"the deploy task {TASK_ARN} stopped before its container ran: TaskFailedToStart; "
        "ResourceInitializationError: unable to pull secrets or registry auth; "
        "CannotPullContainerError: pull access denied\nLast log lines:\n(no log events: ResourceNotFoundException)")


def test_a_task_still_running_near_lambdas_timeout_fails_and_is_left_running(clients):
    _, _, ecs_stub, logs_stub = clients
    started(ecs_stub)
    for _ in range(4):
        status(ecs_stub, "RUNNING")
    logged(logs_stub, "Applying migration `14_add_link_and_pixel`")
    clock = Clock()

    with pytest.raises(DeployStepFailed) as failed:
        run_handler(clients, clock, budget=35)

    # No StopTask: the Stubber would refuse a call nobody stubbed.
    assert str(failed.value).startswith(f"the deploy task {TASK_ARN} was still RUNNING after 30 s; it keeps running")
    assert "stream deploy/umami/0123456789abcdef0123456789abcdef" in str(failed.value)
    assert str(failed.value).endswith("Last log lines:\nApplying migration `14_add_link_and_pixel`")
    assert clock.sleeps == [10, 10, 10]


def test_a_role_policy_not_yet_visible_to_ecs_is_waited_for(clients):
    _, _, ecs_stub, logs_stub = clients
    ecs_stub.add_client_error("run_task", service_error_code="AccessDeniedException",
                              service_message="not authorized to perform: iam:PassRole", expected_params=RUN_TASK)
    started(ecs_stub)
    status(ecs_stub, "STOPPED", containers=[{"name": "umami", "exitCode": 0}])
    logged(logs_stub, "admin password already changed: left as is")
    clock = Clock()
    assert run_handler(clients, clock)["status"] == "succeeded"
    assert clock.sleeps == [10]


def test_access_still_denied_after_the_propagation_window_fails(clients):
    _, _, ecs_stub, _ = clients
    for _ in range(handler_module.IAM_PROPAGATION_SECONDS // handler_module.POLL_SECONDS):
        ecs_stub.add_client_error("run_task", service_error_code="AccessDeniedException",
                                  service_message="not authorized to perform: ecs:RunTask", expected_params=RUN_TASK)
    with pytest.raises(DeployStepFailed, match=r"^the deploy task could not start: AccessDeniedException: "
                                               r"not authorized to perform: ecs:RunTask$"):
        run_handler(clients, Clock())


def test_an_input_without_its_keys_is_refused():
    with pytest.raises(DeployStepFailed, match=r"^the invocation's input lacks taskDefinition, logGroup$"):
        DeployTask.from_event({**EVENT, "taskDefinition": "", "logGroup": None})
    with pytest.raises(DeployStepFailed, match="not a JSON object"):
        DeployTask.from_event(["x"])


def test_the_lambda_entry_point_bounds_the_wait_by_the_remaining_time(clients, monkeypatch):
    ecs, logs, ecs_stub, logs_stub = clients
    started(ecs_stub)
    status(ecs_stub, "STOPPED", containers=[{"name": "umami", "exitCode": 0}])
    logged(logs_stub, "admin password replaced")
    monkeypatch.setattr(handler_module.boto3, "client", lambda service: {"ecs": ecs, "logs": logs}[service])

    class Context:
        def get_remaining_time_in_millis(self):
            return 899_000

    assert handler_module.handler(EVENT, Context())["logTail"] == ["admin password replaced"]


@pytest.mark.parametrize("line, shown", [
    ("postgresql://u:pa55word@h/db?x=1", "postgresql://u:***@h/db?x=1"),
    ('{"password": "x1y2z3"}', '{"password": ***}'),
    ("token=abc.def", "token=***"),
    ("key AKIAABCDEFGHIJKLMNOP", "key ***"),
    ("-----BEGIN PRIVATE KEY----- MIIEvg", "***"),
    ("Datasource \"db\": PostgreSQL database \"appdb\", schema \"umami\"", None),
    ("password authentication failed for user \"umami_user\"", None),
])
def test_secret_looking_text_is_redacted(line, shown):
    assert redact(line) == (line if shown is None else shown)
