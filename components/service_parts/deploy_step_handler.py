"""The deploy step's Lambda handler: run Umami's deploy task and fail when it fails.

Shipped on its own to AWS Lambda (Python 3.12, whose runtime provides boto3) by
components/service_parts/deploy_step.py. An `aws.lambda_.Invocation` calls it during `pulumi up`,
before the ECS service rolls: it starts the deploy task (migrations, then the admin rotation) with
the service's network settings, waits until the task has STOPPED, and returns a summary with the
tail of the task's log. It raises, so the invocation fails and `pulumi up` stops before the service
changes, when the task cannot start, its container exits with anything but 0, or it is still
running when Lambda's own timeout draws near (the task is left to finish; a migration cut off
halfway would block every later start).

The event is the invocation's input: {"cluster", "taskDefinition", "subnets", "securityGroups",
"containerName", "logGroup", "logStreamPrefix"}.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Callable

import boto3
from botocore.exceptions import ClientError

POLL_SECONDS = 10
# Stop waiting this long before Lambda's timeout (900 s), so the invocation reports instead of being killed.
MARGIN_SECONDS = 60
# A policy attached to a brand-new role can take this long to reach ECS: RunTask is retried meanwhile.
IAM_PROPAGATION_SECONDS = 60
LOG_TAIL_LINES = 50
LINE_LIMIT = 500
STARTED_BY = "pulumi-deploy-step"
EVENT_KEYS = ("cluster", "taskDefinition", "subnets", "securityGroups", "containerName", "logGroup",
              "logStreamPrefix")

# Anything secret-looking in a log line: URL credentials, bcrypt hashes, `password=...`-style
# assignments, AWS access key ids, private keys.
REDACTIONS = (
    (re.compile(r"(//[^:/@\s]*:)[^@\s]+@"), r"\1***@"),
    (re.compile(r"\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}"), "***"),
    (re.compile(r"(?i)(?<![a-z0-9])(password|passwd|pwd|secret|token|api[_-]?key|authorization)(\"?\s*[=:]\s*)"
                r"(\"[^\"]*\"|'[^']*'|[^\s,;&]+)"), r"\1\2***"),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "***"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*"), "***"),
)


class DeployStepFailed(Exception):
    """The deploy task failed or could not run; the message is what `pulumi up` shows."""


@dataclass(frozen=True)
class DeployTask:
    """What to run and where its log goes, from the invocation's input."""

    cluster: str
    task_definition: str
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    container_name: str
    log_group: str
    log_stream_prefix: str

    @classmethod
    def from_event(cls, event: Any) -> "DeployTask":
        if not isinstance(event, dict):
            raise DeployStepFailed("the invocation's input is not a JSON object")
        missing = [key for key in EVENT_KEYS if not event.get(key)]
        if missing:
            raise DeployStepFailed(f"the invocation's input lacks {', '.join(missing)}")
        return cls(cluster=event["cluster"], task_definition=event["taskDefinition"],
                   subnets=tuple(event["subnets"]), security_groups=tuple(event["securityGroups"]),
                   container_name=event["containerName"], log_group=event["logGroup"],
                   log_stream_prefix=event["logStreamPrefix"])

    def log_stream(self, task_arn: str) -> str:
        """The awslogs driver's stream name: PREFIX/CONTAINER/TASK-ID."""
        return f"{self.log_stream_prefix}/{self.container_name}/{task_arn.rsplit('/', 1)[-1]}"


def redact(line: str) -> str:
    for pattern, replacement in REDACTIONS:
        line = pattern.sub(replacement, line)
    return line if len(line) <= LINE_LIMIT else line[:LINE_LIMIT] + " ..."


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def start_task(ecs: Any, task: DeployTask, deadline: float, clock: Callable[[], float],
               sleep: Callable[[float], None]) -> str:
    """RunTask in the service's private subnets and security group; the started task's ARN."""
    give_up_denied = min(deadline, clock() + IAM_PROPAGATION_SECONDS)
    while True:
        try:
            response = ecs.run_task(
                cluster=task.cluster, taskDefinition=task.task_definition, launchType="FARGATE",
                platformVersion="LATEST", count=1, startedBy=STARTED_BY,
                networkConfiguration={"awsvpcConfiguration": {
                    "subnets": list(task.subnets), "securityGroups": list(task.security_groups),
                    "assignPublicIp": "DISABLED"}},
            )
            break
        except ClientError as error:
            if error_code(error) == "AccessDeniedException" and clock() + POLL_SECONDS < give_up_denied:
                sleep(POLL_SECONDS)
                continue
            raise DeployStepFailed(f"the deploy task could not start: {error_code(error)}: "
                                   f"{error.response.get('Error', {}).get('Message', '')}") from None
    failures = response.get("failures") or []
    tasks = response.get("tasks") or []
    if failures or not tasks:
        reasons = "; ".join(f"{f.get('reason', 'unknown')}" + (f" ({f['detail']})" if f.get("detail") else "")
                            for f in failures) or "RunTask started no task"
        raise DeployStepFailed(f"the deploy task could not start: {reasons}")
    return tasks[0]["taskArn"]


def wait_until_stopped(ecs: Any, logs: Any, task: DeployTask, task_arn: str, deadline: float,
                       clock: Callable[[], float], sleep: Callable[[float], None]) -> dict[str, Any]:
    """DescribeTasks until STOPPED; past the deadline, fail and leave the task running."""
    started, status = clock(), "PROVISIONING"
    while True:
        described = ecs.describe_tasks(cluster=task.cluster, tasks=[task_arn]).get("tasks") or []
        if described:  # right after RunTask the task may not be visible yet (failure MISSING)
            status = described[0].get("lastStatus", status)
            if status == "STOPPED":
                return described[0]
        if clock() + POLL_SECONDS > deadline:
            raise DeployStepFailed(
                f"the deploy task {task_arn} was still {status} after {int(clock() - started)} s; it keeps running "
                f"(a migration cut off halfway would block every start). Follow it in log group {task.log_group}, "
                f"stream {task.log_stream(task_arn)}, and run `pulumi up` again once it has stopped."
                + tail_text(log_tail(logs, task, task_arn)))
        sleep(POLL_SECONDS)


def log_tail(logs: Any, task: DeployTask, task_arn: str) -> list[str]:
    """The last LOG_TAIL_LINES lines the task logged, redacted."""
    try:
        events = logs.get_log_events(logGroupName=task.log_group, logStreamName=task.log_stream(task_arn),
                                     limit=LOG_TAIL_LINES, startFromHead=False).get("events", [])
    except ClientError as error:
        return [f"(no log events: {error_code(error)})"]
    lines = [redact(line) for event in events for line in str(event.get("message", "")).splitlines()]
    return lines[-LOG_TAIL_LINES:] or ["(no log events)"]


def tail_text(lines: list[str]) -> str:
    return "\nLast log lines:\n" + "\n".join(lines)


def run(task: DeployTask, ecs: Any, logs: Any, deadline: float, clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Run the deploy task to its end; a summary when its container exited 0, else DeployStepFailed."""
    task_arn = start_task(ecs, task, deadline, clock, sleep)
    stopped = wait_until_stopped(ecs, logs, task, task_arn, deadline, clock, sleep)
    container = next((c for c in stopped.get("containers", []) if c.get("name") == task.container_name), {})
    exit_code = container.get("exitCode")
    tail = log_tail(logs, task, task_arn)
    if exit_code == 0:
        return {"status": "succeeded", "taskArn": task_arn, "exitCode": 0, "logTail": tail}
    if exit_code is None:
        reasons = "; ".join(r for r in (stopped.get("stopCode"), stopped.get("stoppedReason"),
                                         container.get("reason")) if r)
        raise DeployStepFailed(f"the deploy task {task_arn} stopped before its container ran: "
                               f"{redact(reasons or 'no reason given')}" + tail_text(tail))
    raise DeployStepFailed(f"the deploy task {task_arn} failed: container {task.container_name} exited with "
                           f"{exit_code}; the service was not changed" + tail_text(tail))


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda's entry point."""
    task = DeployTask.from_event(event)
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - MARGIN_SECONDS
    return run(task, boto3.client("ecs"), boto3.client("logs"), deadline)
