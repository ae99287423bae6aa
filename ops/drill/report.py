"""The drill's plan and its result, as text (a timeline, `t+seconds: event`) or JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ops.core import reporting
from ops.core.reporting import aligned, text
from ops.drill.drill import STOP_REASON, Result, Settings
from ops.drill.heartbeat import heartbeat_url
from ops.drill.preflight import Plan

FORMATS = ("text", "json")
JSON_FORMAT = "umami-ops-drill"
JSON_VERSION = 1


@dataclass(frozen=True)
class Subject:
    """The service the drill is about, as the outputs name it."""

    cluster: str
    service: str
    target_group: str
    url: str
    region: str | None


def _before(plan: Plan, subject: Subject) -> list[str]:
    tasks = ", ".join(f"{t.label()} {plan.targets.get(t.ip or '', '?')}" for t in plan.running)
    return [f"ops.drill: service {text(subject.service)} in cluster {text(subject.cluster)} "
            f"({text(subject.region or 'default region')})",
            f"before: {plan.state.counts()}; tasks {text(tasks)}; GET {text(heartbeat_url(subject.url))}: "
            f"{text(plan.heartbeat.answer)}"]


def _plan_line(plan: Plan, settings: Settings) -> str:
    return (f"plan: stop task {plan.victim.label()} (the oldest of {len(plan.running)} running), then poll every "
            f"{settings.poll_interval:g} s for up to {settings.timeout:g} s until ECS runs the desired count with a "
            f"new task, the target group reports it healthy and the heartbeat answers HTTP 200; "
            f"pass within {settings.max_recovery:g} s")


def render_plan_text(plan: Plan, subject: Subject, settings: Settings) -> str:
    return "\n".join(_before(plan, subject) + [text(_plan_line(plan, settings))]) + "\n"


def render_result_text(result: Result, subject: Subject) -> str:
    lines = _before(result.plan, subject) + ["timeline:"]
    lines += aligned([(f"t+{event.at:.1f}s", text(event.text)) for event in result.timeline], "r")
    lines.append(("PASS: " if result.passed else "FAIL: ") + result.verdict())
    return "\n".join(lines) + "\n"


def _task(task) -> dict[str, Any] | None:
    return None if task is None else {"arn": task.arn, "id": task.id, "ip": task.ip, "lastStatus": task.last_status}


def as_dict(plan: Plan, subject: Subject, settings: Settings, result: Result | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "cluster": subject.cluster, "service": subject.service, "targetGroup": subject.target_group,
        "heartbeatUrl": heartbeat_url(subject.url), "region": subject.region,
        "before": {"desired": plan.state.desired, "running": plan.state.running, "heartbeat": plan.heartbeat.answer,
                   "tasks": [_task(t) for t in plan.running]},
        "settings": {"maxRecoverySeconds": settings.max_recovery, "timeoutSeconds": settings.timeout,
                     "pollIntervalSeconds": settings.poll_interval, "httpTimeoutSeconds": settings.http_timeout},
        "stopped": _task(plan.victim) if result else None, "stopReason": STOP_REASON if result else None,
        "plannedStop": None if result else _task(plan.victim),
    }
    if result is not None:
        body.update({
            "timeline": [{"t": round(e.at, 3), "event": e.text} for e in result.timeline],
            "recovered": result.recovered_after is not None,
            "recoverySeconds": None if result.recovered_after is None else round(result.recovered_after, 3),
            "replacement": _task(result.replacement), "passed": result.passed, "verdict": result.verdict(),
            "exitCode": result.exit_code,
        })
    return reporting.envelope(JSON_FORMAT, JSON_VERSION, body)


def render(plan: Plan, subject: Subject, settings: Settings, result: Result | None, fmt: str) -> str:
    """The result of a drill that ran, or the plan of one that did not (no --yes)."""
    if fmt == "json":
        return reporting.dumps(as_dict(plan, subject, settings, result))
    return render_result_text(result, subject) if result else render_plan_text(plan, subject, settings)
