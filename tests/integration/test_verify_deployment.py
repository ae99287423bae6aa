"""Deployment checks against moto (ECS, ELBv2, EC2, CloudWatch Logs) and a small HTTP
server on 127.0.0.1 standing in for Umami's /api/heartbeat and /api/auth/login."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import ThreadingHTTPServer

import boto3
import botocore.awsrequest
import pytest
from botocore.config import Config
from moto import mock_aws

import ops.core.aws
from ops.verify.checks.base import Severity, Status
from ops.core.db import Target
from ops.core.errors import OpsError
from ops.core.outputs import parse_outputs
from ops.verify.runner import run_verification
from tests.verify_support import JsonHandler, failing

REGION = "eu-west-1"
DEP_IDS = {f"DEP-00{i}" for i in range(1, 8)}


class UmamiStandIn(JsonHandler):
    """Answers like Umami: heartbeat 200 {"ok":true}; login 200 only for the default password
    while `default_password` is true (a fresh install), 401 otherwise (rotated)."""

    def do_GET(self):  # noqa: N802
        state = self.server.state
        time.sleep(state["delay"])
        if self.path == "/api/heartbeat":
            self._send(200, {"ok": True}) if state["healthy"] else self._send(503, {"error": "unavailable"})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self):  # noqa: N802
        state = self.server.state
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        state["logins"].append(body.get("username"))
        if self.path != "/api/auth/login":
            return self._send(404, {"error": "not found"})
        if state["default_password"] and body == {"username": "admin", "password": "umami"}:
            return self._send(200, {"token": "t0k3n", "user": {"id": "1", "username": "admin", "role": "admin"}})
        return self._send(401, {"error": "message.incorrect-username-password"})

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def umami_http():
    server = ThreadingHTTPServer(("127.0.0.1", 0), UmamiStandIn)
    server.state = {"healthy": True, "default_password": False, "delay": 0.0, "logins": []}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def aws_env(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "1")
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")  # the checks read no AMI; loading them is slow
    with mock_aws():
        yield


@dataclass
class World:
    """What exists on (moto's) AWS for one test."""

    outputs: dict


def build_world(url: str, *, cpu: str = "256", memory: str = "512", public: bool = False,
                targets: bool = True, log_events: bool = True) -> World:
    ec2 = boto3.client("ec2", REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    private = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    public_subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.2.0/24")["Subnet"]["SubnetId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=table, SubnetId=public_subnet)
    sg = ec2.create_security_group(GroupName="umami-task", Description="task", VpcId=vpc)["GroupId"]

    ecs = boto3.client("ecs", REGION)
    ecs.create_cluster(clusterName="umami-dev")
    ecs.register_task_definition(
        family="umami-dev", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu=cpu, memory=memory,
        containerDefinitions=[{"name": "umami", "image": "ghcr.io/umami-software/umami:3.1.0",
                               "portMappings": [{"containerPort": 3000}]}])
    ecs.create_service(
        cluster="umami-dev", serviceName="umami-dev", taskDefinition="umami-dev", desiredCount=1,
        launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {
            "subnets": [public_subnet if public else private], "securityGroups": [sg],
            "assignPublicIp": "ENABLED" if public else "DISABLED"}})

    elbv2 = boto3.client("elbv2", REGION)
    tg = elbv2.create_target_group(Name="umami-tg", Protocol="HTTP", Port=3000, VpcId=vpc, TargetType="ip",
                                   HealthCheckPath="/api/heartbeat")["TargetGroups"][0]["TargetGroupArn"]
    if targets:
        elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": "10.0.1.10", "Port": 3000}])

    logs = boto3.client("logs", REGION)
    logs.create_log_group(logGroupName="/ecs/umami-dev")
    if log_events:
        logs.create_log_stream(logGroupName="/ecs/umami-dev", logStreamName="umami/umami/1")
        logs.put_log_events(logGroupName="/ecs/umami-dev", logStreamName="umami/umami/1",
                            logEvents=[{"timestamp": int(time.time() * 1000), "message": "Listening on 3000"}])
    return World(outputs={
        "contractVersion": 1, "dbHost": "127.0.0.1", "dbPort": 5432, "dbName": "appdb", "dbSchema": "umami",
        "dbRole": "umami_user", "dbSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf",
        "awsRegion": REGION, "ecsClusterName": "umami-dev", "ecsServiceName": "umami-dev",
        "targetGroupArn": tg, "url": url, "logGroupName": "/ecs/umami-dev", "umamiVersion": "3.1.0",
    })


def url_of(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def verify_deployment(world: World, http_timeout: float = 5.0):
    outputs = parse_outputs(world.outputs, "test outputs")
    # Only the deployment family runs: no database connection is opened.
    return run_verification(outputs, umami=Target("127.0.0.1", 1, "appdb", "umami_user"), admin=None,
                            include_aws=True, only=["deployment"], http_timeout=http_timeout)


def test_healthy_deployment_passes(aws_env, umami_http):
    report = verify_deployment(build_world(url_of(umami_http)))
    statuses = {r.check.id: r.status for r in report.results if r.family == "deployment"}
    assert statuses == {cid: Status.PASS for cid in DEP_IDS}
    assert umami_http.state["logins"] == ["admin"]  # the default login was tried once, and rejected
    (result,) = [r for r in report.results if r.check.id == "DEP-001"]
    assert result.ran_as.startswith("AWS APIs in eu-west-1")


@pytest.mark.parametrize("check, build, server_state, severity", [
    pytest.param("DEP-002", {"cpu": "1024", "memory": "2048"}, {}, Severity.MEDIUM, id="DEP-002"),
    pytest.param("DEP-003", {"public": True}, {}, Severity.HIGH, id="DEP-003"),
    pytest.param("DEP-004", {"targets": False}, {}, Severity.HIGH, id="DEP-004"),
    pytest.param("DEP-005", {}, {"healthy": False}, Severity.HIGH, id="DEP-005"),
    pytest.param("DEP-006", {}, {"default_password": True}, Severity.CRITICAL, id="DEP-006"),
])
def test_each_deployment_problem_is_reported_alone(aws_env, umami_http, check, build, server_state, severity):
    umami_http.state.update(server_state)
    report = verify_deployment(build_world(url_of(umami_http), **build))
    found = failing(report)
    assert set(found) == {check}, found
    (result,) = [r for r in report.results if r.check.id == check]
    assert result.severity == severity


def test_service_not_running_is_reported(aws_env, umami_http, monkeypatch):
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "0")
    found = failing(verify_deployment(build_world(url_of(umami_http))))
    assert set(found) == {"DEP-001"}
    assert any("running 0 of desired 1" in e for e in found["DEP-001"])
    assert any("IN_PROGRESS" in e for e in found["DEP-001"])


def test_quiet_log_group_is_informational(aws_env, umami_http):
    report = verify_deployment(build_world(url_of(umami_http), log_events=False))
    assert failing(report, at=Severity.LOW) == {}
    (result,) = [r for r in report.results if r.check.id == "DEP-007"]
    assert result.status == Status.INFO and "no log events" in result.findings[0].evidence


def test_database_only_stack_has_no_deployment_checks(aws_env):
    outputs = {k: v for k, v in build_world("http://127.0.0.1:9").outputs.items()
               if k not in ("ecsClusterName", "ecsServiceName", "targetGroupArn", "url", "logGroupName")}
    report = verify_deployment(World(outputs))
    reasons = {r.reason for r in report.results if r.family == "deployment"}
    assert reasons == {"the outputs describe no service (a database-only stack)"}


def test_missing_cluster_stops_the_run(aws_env, umami_http):
    world = build_world(url_of(umami_http))
    world.outputs["ecsClusterName"] = "no-such-cluster"
    with pytest.raises(OpsError, match="ecs describe_services: ClusterNotFoundException"):
        verify_deployment(world)


def test_http_timeout_stops_the_run(aws_env, umami_http):
    umami_http.state["delay"] = 1.0
    with pytest.raises(OpsError, match=r"GET http://127.0.0.1:\d+/api/heartbeat: no complete answer within 0.2s"):
        verify_deployment(build_world(url_of(umami_http)), http_timeout=0.2)


def test_unreachable_service_stops_the_run(aws_env):
    with pytest.raises(OpsError, match="Connection refused"):
        verify_deployment(build_world("http://127.0.0.1:9"))


def test_throttling_is_retried_then_stops_the_run(aws_env, umami_http, monkeypatch):
    calls = []

    def throttle(request, **_):
        calls.append(request.url)
        return botocore.awsrequest.AWSResponse(
            request.url, 400, {"Content-Type": "application/x-amz-json-1.1"},
            _RawBody(b'{"__type":"ThrottlingException","message":"Rate exceeded"}'))

    real_client = ops.core.aws.client

    def throttled_client(service, region=None):
        client = real_client(service, region)
        client.meta.events.register_first("before-send.ecs.DescribeServices", throttle)
        return client

    world = build_world(url_of(umami_http))
    monkeypatch.setattr(ops.core.aws, "RETRY_CONFIG", Config(retries={"mode": "standard", "max_attempts": 2}))
    monkeypatch.setattr(ops.core.aws, "client", throttled_client)
    with pytest.raises(OpsError, match="ecs describe_services: ThrottlingException: Rate exceeded"):
        verify_deployment(world)
    assert len(calls) == 3  # the first attempt and two retries (standard mode, max_attempts=2)


class _RawBody:
    """The raw stream botocore reads a response body from."""

    def __init__(self, data: bytes):
        self.data = data

    def stream(self, **_):
        yield self.data
