"""Before anything is stopped: the service must be at full strength and settled, every running task
healthy behind the load balancer and the heartbeat answering; otherwise the drill is refused
(one line, exit 2), because stopping a task then could leave Umami with none, and the recovery
could not be told apart from the trouble already there."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from ops.core.errors import OpsError
from ops.drill import heartbeat
from ops.drill.heartbeat import Heartbeat
from ops.drill.service import Service, ServiceState, Task

HEALTHY = "healthy"
_LATEST = datetime.max.replace(tzinfo=timezone.utc)  # a task without startedAt sorts last


@dataclass(frozen=True)
class Plan:
    """What was found before the drill, and the one task it stops."""

    state: ServiceState
    running: tuple[Task, ...]  # every task running before the drill, the victim included
    victim: Task
    targets: dict[str, str]  # target id (IP) -> health state, before the drill
    heartbeat: Heartbeat


def refused(reason: str) -> OpsError:
    return OpsError(f"drill refused, nothing stopped: {reason}")


def _settled(service: Service, state: ServiceState | None) -> ServiceState:
    if state is None:
        raise refused(f"service {service.service} not found in cluster {service.cluster}")
    if state.status != "ACTIVE":
        raise refused(f"service {state.name} is {state.status}, not ACTIVE")
    if state.desired < 1:
        raise refused(f"service {state.name} desires no task: there is nothing to recover")
    if state.running < state.desired or state.pending:
        raise refused(f"service {state.name} is not at full strength ({state.counts()}); "
                      "stopping a task now could leave it with none")
    progress = state.deployment_in_progress()
    if progress:
        raise refused(f"a deployment of {state.name} is in progress ({progress}); drill once it has completed")
    return state


def prepare(service: Service, url: str, http_timeout: float) -> Plan:
    """Check the service before the drill and choose the task to stop: the oldest running one."""
    state = _settled(service, service.state())
    arns = service.running_task_arns()
    running = [t for t in service.tasks(arns).values() if t.last_status == "RUNNING"] if arns else []
    if not running:
        raise refused(f"ECS lists no RUNNING task of {state.name} to stop")
    targets = service.target_states()
    for task in running:
        if task.ip is None:
            raise refused(f"task {task.id} has no private IP (not an awsvpc task?): its target cannot be followed")
        if targets.get(task.ip) != HEALTHY:
            raise refused(f"task {task.label()} is {targets.get(task.ip, 'not registered')} in target group "
                          f"{service.target_group}, not {HEALTHY}")
    beat = heartbeat.check(url, http_timeout)
    if not beat.ok:
        raise refused(f"GET {heartbeat.heartbeat_url(url)} answers {beat.answer}, not HTTP 200")
    victim = min(running, key=lambda t: (t.started_at or _LATEST, t.arn))
    return Plan(state=state, running=tuple(running), victim=victim, targets=targets, heartbeat=beat)
