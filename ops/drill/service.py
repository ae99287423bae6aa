"""The ECS service and its target group as the drill sees them: four reads and one StopTask.

Every AWS error that survives botocore's standard retries becomes one line (an OpsError).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ops.core import aws
from ops.core.errors import OpsError


@dataclass(frozen=True)
class ServiceState:
    """DescribeServices' answer, the parts the drill judges."""

    name: str
    status: str
    desired: int
    running: int
    pending: int
    deployments: tuple[dict[str, Any], ...]

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> "ServiceState":
        return cls(name=raw.get("serviceName", "?"), status=raw.get("status", "?"),
                   desired=int(raw.get("desiredCount", 0)), running=int(raw.get("runningCount", 0)),
                   pending=int(raw.get("pendingCount", 0)), deployments=tuple(raw.get("deployments") or ()))

    def deployment_in_progress(self) -> str | None:
        """Why a deployment is under way (or its last one did not complete), None when settled."""
        if len(self.deployments) > 1:
            return f"{len(self.deployments)} deployments active"
        rollout = next((d.get("rolloutState") for d in self.deployments if d.get("status") == "PRIMARY"), None)
        if rollout and rollout != "COMPLETED":
            return f"the primary deployment is {rollout}"
        return None

    def counts(self) -> str:
        pending = f", {self.pending} pending" if self.pending else ""
        return f"running {self.running} of {self.desired} desired{pending}"


@dataclass(frozen=True)
class Task:
    """DescribeTasks' answer for one task."""

    arn: str
    last_status: str
    desired_status: str
    ip: str | None
    started_at: datetime | None

    @property
    def id(self) -> str:
        return self.arn.rsplit("/", 1)[-1]

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> "Task":
        return cls(arn=raw["taskArn"], last_status=raw.get("lastStatus", "?"),
                   desired_status=raw.get("desiredStatus", "?"), ip=_private_ip(raw), started_at=raw.get("startedAt"))

    def label(self) -> str:
        return f"{self.id} ({self.ip})" if self.ip else self.id


def _private_ip(raw: dict[str, Any]) -> str | None:
    """The task's address in awsvpc mode: its ENI attachment, else its containers' interfaces."""
    for attachment in raw.get("attachments") or []:
        if attachment.get("type") == "ElasticNetworkInterface":
            for detail in attachment.get("details") or []:
                if detail.get("name") == "privateIPv4Address" and detail.get("value"):
                    return detail["value"]
    for container in raw.get("containers") or []:
        for interface in container.get("networkInterfaces") or []:
            if interface.get("privateIpv4Address"):
                return interface["privateIpv4Address"]
    return None


class Service:
    """One ECS service in one cluster, and the target group its tasks register in."""

    def __init__(self, cluster: str, service: str, target_group: str, region: str | None):
        self.cluster, self.service, self.target_group = cluster, service, target_group
        self._ecs = aws.client("ecs", region)
        self._elbv2 = aws.client("elbv2", region)

    @staticmethod
    def _call(client: Any, operation: str, **params: Any) -> dict[str, Any]:
        try:
            return getattr(client, operation)(**params)
        except Exception as exc:  # noqa: BLE001 botocore raises many types; all become one line
            raise OpsError(f"{client.meta.service_model.service_name} {operation}: {aws.describe_error(exc)}") from None

    def state(self) -> ServiceState | None:
        answer = self._call(self._ecs, "describe_services", cluster=self.cluster, services=[self.service])
        services = answer.get("services") or []
        return ServiceState.parse(services[0]) if services else None

    def running_task_arns(self) -> list[str]:
        """The tasks ECS wants running for the service (desiredStatus RUNNING), every page."""
        arns: list[str] = []
        params: dict[str, Any] = {"cluster": self.cluster, "serviceName": self.service, "desiredStatus": "RUNNING"}
        while True:
            answer = self._call(self._ecs, "list_tasks", **params)
            arns += answer.get("taskArns") or []
            if not answer.get("nextToken"):
                return arns
            params["nextToken"] = answer["nextToken"]

    def tasks(self, arns: list[str]) -> dict[str, Task]:
        """ARN -> task (DescribeTasks takes at most 100 at a time)."""
        found: dict[str, Task] = {}
        for start in range(0, len(arns), 100):
            answer = self._call(self._ecs, "describe_tasks", cluster=self.cluster, tasks=arns[start:start + 100])
            found.update((task.arn, task) for task in map(Task.parse, answer.get("tasks") or []))
        return found

    def stop(self, arn: str, reason: str) -> None:
        self._call(self._ecs, "stop_task", cluster=self.cluster, task=arn, reason=reason)

    def target_states(self) -> dict[str, str]:
        """Target id (a task's IP) -> its health state in the target group."""
        answer = self._call(self._elbv2, "describe_target_health", TargetGroupArn=self.target_group)
        return {d["Target"]["Id"]: d.get("TargetHealth", {}).get("State", "unknown")
                for d in answer.get("TargetHealthDescriptions") or []}
