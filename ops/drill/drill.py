"""The recovery drill itself: stop one task, then poll until ECS, the load balancer and Umami say the
service is whole again, writing down each change as it is first seen.

Recovered means, at one poll: the service runs its desired count, one of its RUNNING tasks is new
(not running before the stop) and its IP is healthy in the target group, and the heartbeat answers
HTTP 200. The recovery time is that poll's time since the StopTask call, so it is exact to within
the poll interval. The clock and the sleep are parameters, so tests can drive time themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ops.core.errors import OpsError
from ops.drill import heartbeat
from ops.drill.heartbeat import Heartbeat
from ops.drill.preflight import HEALTHY, Plan
from ops.drill.service import Service, ServiceState, Task

STOP_REASON = "ops.drill recovery drill: one task stopped on purpose to time its replacement"


@dataclass(frozen=True)
class Settings:
    max_recovery: float  # seconds; slower is a failed drill
    timeout: float  # seconds of polling before giving up
    poll_interval: float
    http_timeout: float


@dataclass(frozen=True)
class Event:
    at: float  # seconds since the StopTask call
    text: str


@dataclass
class Result:
    plan: Plan
    settings: Settings
    timeline: list[Event] = field(default_factory=list)
    recovered_after: float | None = None
    replacement: Task | None = None

    @property
    def passed(self) -> bool:
        return self.recovered_after is not None and self.recovered_after <= self.settings.max_recovery

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def verdict(self) -> str:
        limit = f"--max-recovery {self.settings.max_recovery:g} s"
        if self.recovered_after is None:
            return f"not recovered within --timeout {self.settings.timeout:g} s (limit {limit})"
        within = "within" if self.passed else "ABOVE"
        return f"recovered in {self.recovered_after:.1f} s, {within} {limit}"


@dataclass(frozen=True)
class Observation:
    """One poll: what ECS, the target group and the heartbeat said (`error`: a call that failed)."""

    state: ServiceState | None = None
    tasks: dict[str, Task] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=dict)
    beat: Heartbeat | None = None
    error: str | None = None


def observe(service: Service, plan: Plan, url: str, http_timeout: float) -> Observation:
    """The service, the stopped task and every task started since, their targets, and the heartbeat.
    An AWS error after the stop is noted and polling goes on: the drill is under way and must be timed."""
    beat = heartbeat.check(url, http_timeout)
    try:
        state = service.state()
        arns = [plan.victim.arn] + [a for a in service.running_task_arns() if a != plan.victim.arn]
        return Observation(state, service.tasks(arns), service.target_states(), beat)
    except OpsError as exc:
        return Observation(beat=beat, error=str(exc))


def _new_tasks(obs: Observation, plan: Plan) -> list[Task]:
    before = {t.arn for t in plan.running}
    return [t for arn, t in obs.tasks.items() if arn not in before]


def replacement(obs: Observation, plan: Plan) -> Task | None:
    """The new task that makes the service whole again at this poll, None while it is not."""
    if obs.error or obs.state is None or obs.state.running < obs.state.desired or not (obs.beat and obs.beat.ok):
        return None
    return next((t for t in _new_tasks(obs, plan)
                 if t.last_status == "RUNNING" and t.ip and obs.targets.get(t.ip) == HEALTHY), None)


def describe(obs: Observation, plan: Plan) -> dict[str, str]:
    """What this poll saw, by subject; the timeline records a subject whenever its text changes."""
    seen: dict[str, str] = {}
    if obs.beat is not None:
        seen["heartbeat"] = f"heartbeat {obs.beat.answer}"
    if obs.error:
        seen["error"] = f"poll failed: {obs.error}"
        return seen
    seen["service"] = f"service {obs.state.counts()}" if obs.state else "service not found"
    victim = obs.tasks.get(plan.victim.arn)
    seen["victim"] = f"stopped task {plan.victim.id}: {victim.last_status if victim else 'gone'}"
    if plan.victim.ip:
        seen[f"target {plan.victim.ip}"] = (f"target {plan.victim.ip} (stopped task): "
                                            f"{obs.targets.get(plan.victim.ip, 'deregistered')}")
    for task in _new_tasks(obs, plan):
        seen[f"task {task.arn}"] = f"new task {task.label()}: {task.last_status}"
        if task.ip:
            seen[f"target {task.ip}"] = f"target {task.ip} (new task {task.id}): {obs.targets.get(task.ip, 'not registered')}"
    return seen


def run(service: Service, plan: Plan, url: str, settings: Settings, *,
        clock: Callable[[], float], sleep: Callable[[float], None]) -> Result:
    """Stop the plan's task and time the recovery (see the module's docstring)."""
    result = Result(plan, settings)
    started = clock()
    service.stop(plan.victim.arn, STOP_REASON)
    result.timeline.append(Event(0.0, f"stopped task {plan.victim.label()} (StopTask, reason: {STOP_REASON})"))
    last: dict[str, str] = {}
    while True:
        at = clock() - started
        obs = observe(service, plan, url, settings.http_timeout)
        for subject, text in describe(obs, plan).items():
            if last.get(subject) != text:
                result.timeline.append(Event(at, text))
                last[subject] = text
        if "error" in last and not obs.error:
            del last["error"]  # the next failure is news again
        found = replacement(obs, plan)
        if found is not None:
            result.recovered_after, result.replacement = at, found
            result.timeline.append(Event(at, f"recovered: {obs.state.counts()}, new task {found.label()} "
                                             f"healthy, heartbeat {obs.beat.answer}"))
            return result
        if at >= settings.timeout:
            result.timeline.append(Event(at, f"timed out after {settings.timeout:g} s"))
            return result
        sleep(min(settings.poll_interval, settings.timeout - at))
