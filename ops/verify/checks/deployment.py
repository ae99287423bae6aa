"""The deployment on AWS: ECS service, task size and network, target health, Umami's
heartbeat, the default login, and recent logs.

boto3 clients use the standard retry mode (throttling is retried with backoff);
an AWS error that survives the retries, or an HTTP endpoint that cannot be
reached, stops the run (exit 2) rather than guessing. Without AWS (a rehearsal,
`--no-aws`) the checks that need it are not applicable, while the heartbeat and
the default login still run against a URL given with `--url`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ops.core import aws
from facts import FARGATE_SIZES, HEARTBEAT_PATH
from ops.verify.checks.base import Finding, NotApplicable, Severity, declare
from ops.verify.checks.http import HttpAnswer, http_request
from ops.core.errors import OpsError
from ops.core.outputs import StackOutputs

# The outputs of the contract's service group each field comes from (for messages); the first present wins.
OUTPUT_KEYS = {
    "cluster": ("ecsClusterArn", "ecsClusterName"),
    "service": ("ecsServiceName",),
    "target_group": ("targetGroupArn",),
    "url": ("url",),
    "log_group": ("logGroupName",),
}
DEFAULT_LOGIN = {"username": "admin", "password": "umami"}
RECENT_LOGS_SECONDS = 3600
DEFAULT_MAXIMUM_PERCENT = 200  # ECS's default for a rolling deployment


@dataclass(frozen=True)
class ServiceOutputs:
    cluster: str | None
    service: str | None
    target_group: str | None
    url: str | None
    log_group: str | None

    @classmethod
    def from_outputs(cls, outputs: StackOutputs, url: str | None = None) -> "ServiceOutputs":
        """The service part of the outputs; `url` (from --url) replaces the output url."""
        s = outputs.service
        if s is None:
            return cls(None, None, None, url, None)
        return cls(cluster=s.ecs_cluster_arn or s.ecs_cluster_name, service=s.ecs_service_name,
                   target_group=s.target_group_arn, url=url or s.url, log_group=s.log_group_name)

    @property
    def cluster_name(self) -> str | None:
        """The cluster's name (an ARN ends in cluster/NAME), as application autoscaling names it."""
        return self.cluster.rsplit("/", 1)[-1] if self.cluster else None

    @property
    def present(self) -> bool:
        return any((self.cluster, self.service, self.target_group, self.url, self.log_group))


@dataclass
class Deployment:
    """Answers from AWS and from Umami's endpoints, each fetched once."""

    outputs: ServiceOutputs
    region: str | None
    http_timeout: float
    calls: list[str] = field(default_factory=list)
    no_aws: str | None = None  # why AWS is not asked (a rehearsal, --no-aws); None: it is

    clients: dict[str, Any] = field(default_factory=dict)

    def _call(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        if self.no_aws:
            raise NotApplicable(self.no_aws)
        self.calls.append(f"{service}:{operation}")
        if service not in self.clients:  # creating a client loads its service model: once per run
            self.clients[service] = aws.client(service, self.region)
        try:
            return getattr(self.clients[service], operation)(**params)
        except OpsError:
            raise
        except Exception as exc:  # noqa: BLE001 botocore raises many types; all become one line
            raise OpsError(f"{service} {operation}: {aws.describe_error(exc)}") from None

    def need(self, name: str) -> str:
        if self.no_aws and name != "url":  # everything but the URL is asked of AWS
            raise NotApplicable(self.no_aws)
        value = getattr(self.outputs, name)
        if not value:
            keys = " or ".join(OUTPUT_KEYS[name])
            raise NotApplicable(f"the outputs have no {keys}")
        return value

    @cached_property
    def service(self) -> dict[str, Any] | None:
        answer = self._call("ecs", "describe_services", cluster=self.need("cluster"), services=[self.need("service")])
        services = answer.get("services") or []
        return services[0] if services else None

    @cached_property
    def task_definition(self) -> dict[str, Any] | None:
        if not self.service or not self.service.get("taskDefinition"):
            return None
        answer = self._call("ecs", "describe_task_definition", taskDefinition=self.service["taskDefinition"])
        return answer.get("taskDefinition")

    def public_subnets(self, subnet_ids: list[str]) -> dict[str, str]:
        """Subnet id -> why it is public (a default route to an internet gateway, or public IPs on launch)."""
        public: dict[str, str] = {}
        subnets = self._call("ec2", "describe_subnets", SubnetIds=subnet_ids).get("Subnets", [])
        for subnet in subnets:
            sid = subnet["SubnetId"]
            tables = self._call("ec2", "describe_route_tables",
                                Filters=[{"Name": "association.subnet-id", "Values": [sid]}]).get("RouteTables", [])
            if not tables:  # no explicit association: the VPC's main route table applies
                tables = self._call("ec2", "describe_route_tables", Filters=[
                    {"Name": "vpc-id", "Values": [subnet["VpcId"]]},
                    {"Name": "association.main", "Values": ["true"]}]).get("RouteTables", [])
            for table in tables:
                for route in table.get("Routes", []):
                    if route.get("DestinationCidrBlock") == "0.0.0.0/0" and str(route.get("GatewayId", "")).startswith("igw-"):
                        public[sid] = f"route table {table['RouteTableId']} sends 0.0.0.0/0 to {route['GatewayId']}"
        return public

    @cached_property
    def target_health(self) -> list[dict[str, Any]]:
        answer = self._call("elbv2", "describe_target_health", TargetGroupArn=self.need("target_group"))
        return answer.get("TargetHealthDescriptions", [])

    @cached_property
    def scalable_target(self) -> dict[str, Any] | None:
        """The service's application-autoscaling target (its MaxCapacity), None without autoscaling."""
        self.need("cluster")
        resource = f"service/{self.outputs.cluster_name}/{self.need('service')}"
        answer = self._call("application-autoscaling", "describe_scalable_targets", ServiceNamespace="ecs",
                            ResourceIds=[resource], ScalableDimension="ecs:service:DesiredCount")
        targets = answer.get("ScalableTargets") or []
        return targets[0] if targets else None

    @cached_property
    def heartbeat(self) -> HttpAnswer:
        return http_request(self.need("url").rstrip("/") + HEARTBEAT_PATH, timeout=self.http_timeout)

    @cached_property
    def default_login(self) -> HttpAnswer:
        return http_request(self.need("url").rstrip("/") + "/api/auth/login", timeout=self.http_timeout,
                            payload=DEFAULT_LOGIN)

    @cached_property
    def last_log_event(self) -> int | None:
        answer = self._call("logs", "describe_log_streams", logGroupName=self.need("log_group"),
                            orderBy="LastEventTime", descending=True, limit=1)
        streams = answer.get("logStreams", [])
        return streams[0].get("lastEventTimestamp") if streams else None


def _service(d: Deployment) -> dict[str, Any]:
    service = d.service
    if service is None:
        raise NotApplicable(f"service {d.outputs.service} not found in cluster {d.outputs.cluster} (see DEP-001)")
    return service


def service_steady(d: Deployment) -> list[Finding]:
    if d.service is None:
        return [Finding(Severity.HIGH, f"service {d.outputs.service}", f"not found in cluster {d.outputs.cluster}")]
    s = d.service
    findings = []
    if s.get("status") != "ACTIVE":
        findings.append(Finding(Severity.HIGH, s["serviceName"], f"status {s.get('status')}"))
    running, desired = s.get("runningCount", 0), s.get("desiredCount", 0)
    if desired < 1 or running != desired:
        findings.append(Finding(Severity.HIGH, s["serviceName"], f"running {running} of desired {desired}"))
    primary = next((x for x in s.get("deployments", []) if x.get("status") == "PRIMARY"), None)
    if primary is None or primary.get("rolloutState") != "COMPLETED":
        state = primary.get("rolloutState") if primary else "no PRIMARY deployment"
        findings.append(Finding(Severity.HIGH, s["serviceName"], f"latest deployment {state}"))
    return findings


def task_size(d: Deployment) -> list[Finding]:
    _service(d)
    td = d.task_definition
    if td is None:
        return [Finding(Severity.MEDIUM, "task definition", "the service names no readable task definition")]
    try:
        size = (int(td.get("cpu")), int(td.get("memory")))
    except (TypeError, ValueError):
        return [Finding(Severity.MEDIUM, td.get("family", "task definition"),
                        f"cpu={td.get('cpu')!r} memory={td.get('memory')!r} are not task-level sizes")]
    if size not in FARGATE_SIZES:
        return [Finding(Severity.MEDIUM, td.get("family", "task definition"),
                        f"cpu {size[0]} / memory {size[1]} MB is outside 0.25-0.5 vCPU / 512-1024 MB")]
    return []


def private_network(d: Deployment) -> list[Finding]:
    s = _service(d)
    vpc = (s.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}
    findings = []
    if vpc.get("assignPublicIp") != "DISABLED":
        findings.append(Finding(Severity.HIGH, s["serviceName"], f"assignPublicIp={vpc.get('assignPublicIp')!r}"))
    subnets = vpc.get("subnets") or []
    if not subnets:
        findings.append(Finding(Severity.HIGH, s["serviceName"], "no awsvpc subnets configured"))
    for sid, why in sorted(d.public_subnets(subnets).items()):
        findings.append(Finding(Severity.HIGH, sid, f"public subnet: {why}"))
    return findings


def healthy_targets(d: Deployment) -> list[Finding]:
    states = [t.get("TargetHealth", {}).get("State", "unknown") for t in d.target_health]
    if "healthy" not in states:
        summary = ", ".join(sorted(set(states))) or "no registered targets"
        return [Finding(Severity.HIGH, d.outputs.target_group, f"no healthy target ({summary})")]
    return []


def heartbeat_ok(d: Deployment) -> list[Finding]:
    answer = d.heartbeat
    try:
        body = json.loads(answer.body or b"null")
    except ValueError:
        body = None
    if answer.status != 200 or body != {"ok": True}:
        shown = answer.body[:80].decode("utf-8", "replace")
        return [Finding(Severity.HIGH, f"GET {HEARTBEAT_PATH}", f"HTTP {answer.status} {shown!r}, expected 200 {{\"ok\":true}}")]
    return []


def default_login_rejected(d: Deployment) -> list[Finding]:
    answer = d.default_login
    if answer.status == 200:
        return [Finding(Severity.CRITICAL, "POST /api/auth/login",
                        "the default login admin/umami is ACCEPTED: anyone can take over Umami")]
    if answer.status in (400, 401, 403):
        return []
    return [Finding(Severity.MEDIUM, "POST /api/auth/login", f"HTTP {answer.status}: could not confirm the default "
                                                            "login is rejected")]


def logs_recent(d: Deployment) -> list[Finding]:
    last = d.last_log_event
    if last is None:
        return [Finding(Severity.INFO, d.outputs.log_group, "no log events yet")]
    age = time.time() - last / 1000
    if age > RECENT_LOGS_SECONDS:
        return [Finding(Severity.INFO, d.outputs.log_group, f"last event {age / 3600:.1f} h ago")]
    return []


CHECKS = declare("deployment", {  # titles, severities, remediations: checks.toml
    "DEP-001": service_steady, "DEP-002": task_size, "DEP-003": private_network, "DEP-004": healthy_targets,
    "DEP-005": heartbeat_ok, "DEP-006": default_login_rejected, "DEP-007": logs_recent,
}, HEARTBEAT_PATH=HEARTBEAT_PATH)
