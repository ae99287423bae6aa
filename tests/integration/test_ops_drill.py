"""`python -m ops.drill`: the recovery drill against moto's ECS and ELBv2 (a scripted world playing ECS's
and the load balancer's part as the drill's own clock advances), botocore's Stubber for the exact
call sequences, and a local HTTP stand-in for Umami's heartbeat behind the load balancer."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import ThreadingHTTPServer
from typing import Callable

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from moto.moto_api import state_manager

import ops.core.aws
from ops.drill.__main__ import main
from ops.drill.drill import STOP_REASON
from tests.verify_support import JsonHandler, error_line

REGION = "eu-west-1"
CLUSTER = SERVICE = "umami-dev"


class Heartbeat(JsonHandler):
    """Umami behind the load balancer: /api/heartbeat answers the status the test sets."""

    def do_GET(self):  # noqa: N802
        status = self.server.status if self.path == "/api/heartbeat" else 404
        self._send(status, {"ok": True} if status == 200 else {"error": "unavailable"})

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def umami_http():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Heartbeat)
    server.status = 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def url_of(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def aws_credentials(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")


@pytest.fixture
def moto_aws(aws_credentials):
    # moto moves a described task one state towards STOPPED per DescribeTasks by default; a running
    # task must stay RUNNING until the drill (or the scripted ECS) stops it.
    state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 10**9})
    try:
        with mock_aws():
            yield
    finally:
        state_manager.unset_transition("ecs::task")


def outputs_file(tmp_path, url: str, target_group: str) -> str:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({
        "contractVersion": 1, "dbHost": "db.example", "dbPort": 5432, "dbName": "appdb", "dbSchema": "umami",
        "dbRole": "umami_user", "dbSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf",
        "awsRegion": REGION, "ecsClusterName": CLUSTER, "ecsServiceName": SERVICE, "targetGroupArn": target_group,
        "url": url,
    }))
    return str(path)


class FakeTime:
    """The drill's clock and sleep: time passes only when the drill sleeps, and each scripted change
    of the world (ECS, the load balancer, Umami) happens once its moment has come."""

    def __init__(self, script: list[tuple[float, Callable[[], None]]]):
        self.now = 0.0
        self.script = sorted(script, key=lambda step: step[0])
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        while self.script and self.script[0][0] <= self.now:
            self.script.pop(0)[1]()


def run(argv: list[str], capsys, time: FakeTime | None = None) -> tuple[int, str, str]:
    time = time or FakeTime([])
    code = main(argv, clock=time.clock, sleep=time.sleep)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- moto: a world where ECS replaces the stopped task ----------------------------------

@dataclass
class World:
    """The service in moto: one cluster, one awsvpc service, its target group; tasks ECS started."""

    target_group: str
    network: dict
    tasks: dict[str, str] = field(default_factory=dict)  # task ARN -> private IP

    def start_task(self) -> str:
        """What ECS's scheduler does for the service: run a task and note its IP."""
        task = boto3.client("ecs", REGION).run_task(
            cluster=CLUSTER, taskDefinition="umami-dev", launchType="FARGATE", startedBy="ecs-svc/1234567890",
            group=f"service:{SERVICE}", networkConfiguration=self.network)["tasks"][0]
        ip = next(d["value"] for d in task["attachments"][0]["details"] if d["name"] == "privateIPv4Address")
        self.tasks[task["taskArn"]] = ip
        return task["taskArn"]

    def register(self, arn: str) -> None:
        boto3.client("elbv2", REGION).register_targets(
            TargetGroupArn=self.target_group, Targets=[{"Id": self.tasks[arn], "Port": 3000}])

    def deregister(self, arn: str) -> None:
        boto3.client("elbv2", REGION).deregister_targets(
            TargetGroupArn=self.target_group, Targets=[{"Id": self.tasks[arn], "Port": 3000}])

    def status_of(self, arn: str) -> str:
        return boto3.client("ecs", REGION).describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"][0]["lastStatus"]


def build_world(monkeypatch, running: int = 1) -> tuple[World, str]:
    """The deployed service with one task running and healthy; `running`: what the service reports."""
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", str(running))
    ec2 = boto3.client("ec2", REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})  # moto names a task's ENI only then
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="umami-task", Description="task", VpcId=vpc)["GroupId"]
    network = {"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [sg], "assignPublicIp": "DISABLED"}}
    ecs = boto3.client("ecs", REGION)
    ecs.create_cluster(clusterName=CLUSTER)
    ecs.register_task_definition(
        family="umami-dev", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
        containerDefinitions=[{"name": "umami", "image": "ghcr.io/umami-software/umami:3.1.0", "memory": 512,
                               "portMappings": [{"containerPort": 3000}]}])
    ecs.create_service(cluster=CLUSTER, serviceName=SERVICE, taskDefinition="umami-dev", desiredCount=1,
                       launchType="FARGATE", networkConfiguration=network)
    tg = boto3.client("elbv2", REGION).create_target_group(
        Name="umami-tg", Protocol="HTTP", Port=3000, VpcId=vpc, TargetType="ip",
        HealthCheckPath="/api/heartbeat")["TargetGroups"][0]["TargetGroupArn"]
    world = World(target_group=tg, network=network)
    first = world.start_task()
    world.register(first)
    return world, first


def recovery_script(world: World, stopped: str, umami_http) -> list[tuple[float, Callable[[], None]]]:
    """After the stop: Umami goes down and the load balancer drops the old target (t=3), ECS starts a
    replacement (t=12), the load balancer registers it healthy (t=20), Umami answers again (t=31)."""
    def down():
        umami_http.status = 503
        world.deregister(stopped)

    def up():
        umami_http.status = 200

    new: list[str] = []
    return [(3, down), (12, lambda: new.append(world.start_task())), (20, lambda: world.register(new[0])), (31, up)]


@pytest.mark.parametrize("max_recovery, code, verdict", [
    ("300", 0, "PASS: recovered in 35.0 s, within --max-recovery 300 s"),
    ("30", 1, "FAIL: recovered in 35.0 s, ABOVE --max-recovery 30 s"),
])
def test_a_drill_stops_one_task_and_times_its_replacement(moto_aws, monkeypatch, umami_http, tmp_path, capsys,
                                                          max_recovery, code, verdict):
    world, first = build_world(monkeypatch)
    outputs = outputs_file(tmp_path, url_of(umami_http), world.target_group)
    time = FakeTime(recovery_script(world, first, umami_http))

    result = run(["--outputs", outputs, "--yes", "--max-recovery", max_recovery, "--timeout", "300"], capsys, time)

    assert result[0] == code, result[2]
    lines = result[1].splitlines()
    (new,) = set(world.tasks) - {first}
    old_id, old_ip, new_id, new_ip = first.rsplit("/", 1)[-1], world.tasks[first], new.rsplit("/", 1)[-1], world.tasks[new]
    assert lines[0] == f"ops.drill: service {SERVICE} in cluster {CLUSTER} ({REGION})"
    assert lines[1] == (f"before: running 1 of 1 desired; tasks {old_id} ({old_ip}) healthy; "
                        f"GET {url_of(umami_http)}/api/heartbeat: HTTP 200")
    assert [line.split(None, 1) for line in lines[lines.index("timeline:") + 1:-1]] == [
        ["t+0.0s", f"stopped task {old_id} ({old_ip}) (StopTask, reason: {STOP_REASON})"],
        ["t+0.0s", "heartbeat HTTP 200"],
        ["t+0.0s", "service running 1 of 1 desired"],
        ["t+0.0s", f"stopped task {old_id}: STOPPED"],
        ["t+0.0s", f"target {old_ip} (stopped task): healthy"],
        ["t+5.0s", "heartbeat HTTP 503"],
        ["t+5.0s", f"target {old_ip} (stopped task): deregistered"],
        ["t+15.0s", f"new task {new_id} ({new_ip}): RUNNING"],
        ["t+15.0s", f"target {new_ip} (new task {new_id}): not registered"],
        ["t+20.0s", f"target {new_ip} (new task {new_id}): healthy"],
        ["t+35.0s", "heartbeat HTTP 200"],
        ["t+35.0s", f"recovered: running 1 of 1 desired, new task {new_id} ({new_ip}) healthy, heartbeat HTTP 200"],
    ]
    assert lines[-1] == verdict
    assert time.slept == [5.0] * 7
    assert world.status_of(first) == "STOPPED"


def test_the_json_report_carries_the_timeline_and_the_recovery_time(moto_aws, monkeypatch, umami_http, tmp_path,
                                                                     capsys):
    world, first = build_world(monkeypatch)
    outputs = outputs_file(tmp_path, url_of(umami_http), world.target_group)

    code, out, _ = run(["--outputs", outputs, "--yes", "--poll-interval", "10", "--format", "json"], capsys,
                       FakeTime(recovery_script(world, first, umami_http)))

    report = json.loads(out)
    assert code == 0 and report["format"] == "umami-ops-drill" and report["exitCode"] == 0
    assert report["stopped"]["arn"] == first and report["stopReason"] == STOP_REASON
    assert report["recovered"] is True and report["recoverySeconds"] == 40.0 and report["passed"] is True
    assert report["replacement"]["arn"] in set(world.tasks) - {first}
    assert report["settings"] == {"maxRecoverySeconds": 300.0, "timeoutSeconds": 600.0, "pollIntervalSeconds": 10.0,
                                  "httpTimeoutSeconds": 5.0}
    assert [e["t"] for e in report["timeline"]] == sorted(e["t"] for e in report["timeline"])
    assert report["timeline"][-1]["event"].startswith("recovered: ")


def test_without_yes_it_prints_the_plan_and_stops_nothing(moto_aws, monkeypatch, umami_http, tmp_path, capsys):
    world, first = build_world(monkeypatch)
    outputs = outputs_file(tmp_path, url_of(umami_http), world.target_group)

    code, out, err = run(["--outputs", outputs], capsys)

    task_id = first.rsplit("/", 1)[-1]
    assert code == 2
    assert out.splitlines()[-1].startswith(f"plan: stop task {task_id} ({world.tasks[first]}) (the oldest of 1 "
                                           "running), then poll every 5 s for up to 600 s")
    assert error_line(err) == f"error: not run: nothing stopped; add --yes to stop task {task_id} and time the recovery"
    assert world.status_of(first) == "RUNNING"


def test_a_service_running_fewer_tasks_than_desired_is_refused(moto_aws, monkeypatch, umami_http, tmp_path, capsys):
    world, first = build_world(monkeypatch, running=0)
    outputs = outputs_file(tmp_path, url_of(umami_http), world.target_group)

    code, out, err = run(["--outputs", outputs, "--yes"], capsys)

    assert (code, out) == (2, "")
    assert error_line(err) == (f"error: drill refused, nothing stopped: service {SERVICE} is not at full strength "
                               "(running 0 of 1 desired, 1 pending); stopping a task now could leave it with none")
    assert world.status_of(first) == "RUNNING"


def test_an_unhealthy_heartbeat_before_the_drill_is_refused(moto_aws, monkeypatch, umami_http, tmp_path, capsys):
    world, first = build_world(monkeypatch)
    umami_http.status = 503

    code, _, err = run(["--outputs", outputs_file(tmp_path, url_of(umami_http), world.target_group), "--yes"], capsys)

    assert code == 2 and error_line(err) == (f"error: drill refused, nothing stopped: GET {url_of(umami_http)}"
                                             "/api/heartbeat answers HTTP 503, not HTTP 200")
    assert world.status_of(first) == "RUNNING"


@pytest.mark.parametrize("argv, reason", [
    (["--max-recovery", "0"], "--max-recovery 0: must be a number of seconds above 0"),
    (["--poll-interval", "soon"], "--poll-interval 'soon': not a number of seconds"),
    (["--max-recovery", "300", "--timeout", "60"], "--timeout 60 is below --max-recovery 300: the drill could never pass"),
])
def test_bad_timings_are_one_line_errors(argv, reason, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--outputs", "o.json", *argv])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(reason)


def test_outputs_without_a_service_are_refused(tmp_path, capsys):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"contractVersion": 1, "dbHost": "db", "dbPort": 5432, "dbName": "appdb",
                                "dbSchema": "umami", "dbRole": "umami_user", "dbSecretArn": "arn:x"}))
    code, _, err = run(["--outputs", str(path), "--yes"], capsys)
    assert code == 2 and error_line(err) == ("error: the outputs have no ecsClusterName, ecsServiceName, targetGroupArn, "
                                             "url: no ECS service to drill (a database-only stack?)")


# -- Stubber: the exact calls -----------------------------------------------------------

TARGET_GROUP = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/umami-tg/0123456789abcdef"
TASK_A = "arn:aws:ecs:eu-west-1:123456789012:task/umami-dev/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
TASK_B = "arn:aws:ecs:eu-west-1:123456789012:task/umami-dev/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
IPS = {TASK_A: "10.0.1.10", TASK_B: "10.0.1.11"}


def service(running: int, desired: int = 2, deployments: int = 1) -> dict:
    primary = {"id": "ecs-svc/1", "status": "PRIMARY", "rolloutState": "COMPLETED" if deployments == 1 else "IN_PROGRESS",
               "desiredCount": desired, "runningCount": running}
    active = [{"id": "ecs-svc/0", "status": "ACTIVE", "rolloutState": "COMPLETED"}] * (deployments - 1)
    return {"services": [{"serviceName": SERVICE, "status": "ACTIVE", "desiredCount": desired, "runningCount": running,
                          "pendingCount": 0, "deployments": [primary, *active]}], "failures": []}


def task(arn: str, status: str, started_minute: int) -> dict:
    return {"taskArn": arn, "lastStatus": status, "desiredStatus": "RUNNING" if status == "RUNNING" else "STOPPED",
            "startedAt": datetime(2025, 1, 1, 12, started_minute, tzinfo=timezone.utc),
            "attachments": [{"type": "ElasticNetworkInterface", "status": "ATTACHED",
                             "details": [{"name": "privateIPv4Address", "value": IPS[arn]}]}]}


def targets(*states: tuple[str, str]) -> dict:
    return {"TargetHealthDescriptions": [{"Target": {"Id": ip, "Port": 3000}, "TargetHealth": {"State": state}}
                                         for ip, state in states]}


@dataclass
class Stubbed:
    """Stubbed ECS and ELBv2 clients handed to ops (ops.core.aws.client), and every call made, in order."""

    ecs: Stubber
    elbv2: Stubber
    calls: list[str]

    def expect(self, stub: Stubber, operation: str, response: dict, params: dict) -> None:
        stub.add_response(operation, response, params)


@pytest.fixture
def stubbed(aws_credentials, monkeypatch) -> Stubbed:
    clients = {name: boto3.session.Session().client(name, region_name=REGION) for name in ("ecs", "elbv2")}
    calls: list[str] = []
    for client in clients.values():
        client.meta.events.register("before-call.*.*", lambda model, **_: calls.append(model.name))
    monkeypatch.setattr(ops.core.aws, "client", lambda name, region=None: clients[name])
    stubs = Stubbed(Stubber(clients["ecs"]), Stubber(clients["elbv2"]), calls)
    with stubs.ecs, stubs.elbv2:
        yield stubs
        stubs.ecs.assert_no_pending_responses()
        stubs.elbv2.assert_no_pending_responses()


DESCRIBE = {"cluster": CLUSTER, "services": [SERVICE]}
LIST = {"cluster": CLUSTER, "serviceName": SERVICE, "desiredStatus": "RUNNING"}
PREFLIGHT = ["DescribeServices", "ListTasks", "DescribeTasks", "DescribeTargetHealth"]
POLL = ["DescribeServices", "ListTasks", "DescribeTasks", "DescribeTargetHealth"]


def expect_preflight(s: Stubbed) -> None:
    s.expect(s.ecs, "describe_services", service(running=2), DESCRIBE)
    s.expect(s.ecs, "list_tasks", {"taskArns": [TASK_B, TASK_A]}, LIST)
    s.expect(s.ecs, "describe_tasks", {"tasks": [task(TASK_B, "RUNNING", 5), task(TASK_A, "RUNNING", 1)]},
             {"cluster": CLUSTER, "tasks": [TASK_B, TASK_A]})
    s.expect(s.elbv2, "describe_target_health", targets(("10.0.1.10", "healthy"), ("10.0.1.11", "healthy")),
             {"TargetGroupArn": TARGET_GROUP})


def test_a_drill_that_never_recovers_times_out_with_exit_1(stubbed, umami_http, tmp_path, capsys):
    expect_preflight(stubbed)
    # The oldest task (A) is stopped; ECS never starts a replacement, B keeps serving the heartbeat.
    stubbed.expect(stubbed.ecs, "stop_task", {"task": task(TASK_A, "DEACTIVATING", 1)},
                   {"cluster": CLUSTER, "task": TASK_A, "reason": STOP_REASON})
    for _ in range(3):  # polls at t=0, 5 and 10 (the timeout)
        stubbed.expect(stubbed.ecs, "describe_services", service(running=1), DESCRIBE)
        stubbed.expect(stubbed.ecs, "list_tasks", {"taskArns": [TASK_B]}, LIST)
        stubbed.expect(stubbed.ecs, "describe_tasks", {"tasks": [task(TASK_A, "STOPPED", 1), task(TASK_B, "RUNNING", 5)]},
                       {"cluster": CLUSTER, "tasks": [TASK_A, TASK_B]})
        stubbed.expect(stubbed.elbv2, "describe_target_health", targets(("10.0.1.10", "draining"), ("10.0.1.11", "healthy")),
                       {"TargetGroupArn": TARGET_GROUP})
    time = FakeTime([])

    code, out, _ = run(["--outputs", outputs_file(tmp_path, url_of(umami_http), TARGET_GROUP), "--yes",
                        "--max-recovery", "10", "--timeout", "10"], capsys, time)

    assert code == 1
    assert stubbed.calls == PREFLIGHT + ["StopTask"] + POLL * 3
    lines = out.splitlines()
    assert lines[1] == (f"before: running 2 of 2 desired; tasks bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb (10.0.1.11) healthy, "
                        f"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa (10.0.1.10) healthy; GET {url_of(umami_http)}/api/heartbeat: "
                        "HTTP 200")
    assert [line.split(None, 1) for line in lines[lines.index("timeline:") + 1:]] == [
        ["t+0.0s", f"stopped task aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa (10.0.1.10) (StopTask, reason: {STOP_REASON})"],
        ["t+0.0s", "heartbeat HTTP 200"],
        ["t+0.0s", "service running 1 of 2 desired"],
        ["t+0.0s", "stopped task aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: STOPPED"],
        ["t+0.0s", "target 10.0.1.10 (stopped task): draining"],
        ["t+10.0s", "timed out after 10 s"],
        ["FAIL:", "not recovered within --timeout 10 s (limit --max-recovery 10 s)"],
    ]
    assert time.slept == [5.0, 5.0]


@pytest.mark.parametrize("answer, reason", [
    (service(running=1), "service umami-dev is not at full strength (running 1 of 2 desired); stopping a task now "
                         "could leave it with none"),
    (service(running=2, deployments=2), "a deployment of umami-dev is in progress (2 deployments active); drill once "
                                        "it has completed"),
])
def test_a_service_not_at_rest_is_refused_after_one_call(stubbed, umami_http, tmp_path, capsys, answer, reason):
    stubbed.expect(stubbed.ecs, "describe_services", answer, DESCRIBE)

    code, out, err = run(["--outputs", outputs_file(tmp_path, url_of(umami_http), TARGET_GROUP), "--yes"], capsys)

    assert (code, out) == (2, "")
    assert error_line(err) == f"error: drill refused, nothing stopped: {reason}"
    assert stubbed.calls == ["DescribeServices"]  # never StopTask


def test_a_task_unhealthy_behind_the_load_balancer_is_refused(stubbed, umami_http, tmp_path, capsys):
    stubbed.expect(stubbed.ecs, "describe_services", service(running=2), DESCRIBE)
    stubbed.expect(stubbed.ecs, "list_tasks", {"taskArns": [TASK_A, TASK_B]}, LIST)
    stubbed.expect(stubbed.ecs, "describe_tasks", {"tasks": [task(TASK_A, "RUNNING", 1), task(TASK_B, "RUNNING", 5)]},
                   {"cluster": CLUSTER, "tasks": [TASK_A, TASK_B]})
    stubbed.expect(stubbed.elbv2, "describe_target_health", targets(("10.0.1.10", "healthy"), ("10.0.1.11", "unhealthy")),
                   {"TargetGroupArn": TARGET_GROUP})

    code, _, err = run(["--outputs", outputs_file(tmp_path, url_of(umami_http), TARGET_GROUP), "--yes"], capsys)

    assert code == 2 and error_line(err) == (
        "error: drill refused, nothing stopped: task bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb (10.0.1.11) is unhealthy in "
        f"target group {TARGET_GROUP}, not healthy")
    assert stubbed.calls == PREFLIGHT
