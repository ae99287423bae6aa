"""The recovery drill: stop one running Umami task and time how long ECS takes to make the service whole.

    python -m ops.drill (--stack NAME | --outputs FILE) [--yes] [--max-recovery 300] [--timeout SECONDS]
                        [--poll-interval 5] [--http-timeout 5] [--format text|json]

First, read-only, it checks the service: ACTIVE, running its desired count with nothing pending,
no deployment in progress, every task healthy in the target group and GET /api/heartbeat = 200;
anything else refuses the drill (exit 2, nothing stopped). Without --yes it stops there: it prints
the plan (which task it would stop) and exits 2, so a drill that did not happen never reads as a
passed one. With --yes it stops that one task (StopTask, with a reason naming the drill) and polls
until ECS runs the desired count again with a new task, the target group reports the new task's IP
healthy and the heartbeat answers 200. It prints the timeline (t+seconds: event) and the recovery
time: exit 0 within --max-recovery, 1 above it or when --timeout passes first.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable

from ops.core import cli
from ops.core.cli import progress, run_command_line
from ops.core.errors import OpsError
from ops.core.outputs import StackOutputs, load
from ops.drill import drill, preflight
from ops.drill.drill import Settings
from ops.drill.report import FORMATS, Subject, render
from ops.drill.service import Service

DEFAULT_MAX_RECOVERY = 300.0
DEFAULT_POLL_INTERVAL = 5.0
DEFAULT_HTTP_TIMEOUT = 5.0
TIMEOUT_FACTOR = 2  # default --timeout: twice --max-recovery, so a slow recovery is still measured
EXIT_CODES = {0: "recovered within --max-recovery", 1: "recovered above --max-recovery, or not within --timeout",
              2: "refused or could not run: the service is not at full strength or is deploying, no --yes, "
                 "bad input, AWS unreachable (one line on stderr; nothing stopped)"}


def _seconds(option: str) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            seconds = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} {value!r}: not a number of seconds") from None
        if not seconds > 0 or seconds == float("inf"):
            raise argparse.ArgumentTypeError(f"{option} {value}: must be a number of seconds above 0")
        return seconds
    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ops.drill", description=__doc__.split("\n\n")[0])
    cli.add_common_arguments(parser, example="python -m ops.drill --stack dev --yes",
                             environment=("AWS_PROFILE, AWS_REGION, AWS_*", "PULUMI_*"), exit_codes=EXIT_CODES)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--stack", metavar="NAME", help="read `pulumi stack output --json --stack NAME`")
    source.add_argument("--outputs", metavar="FILE", help="a JSON file of the stack outputs")
    parser.add_argument("--yes", action="store_true",
                        help="really stop a task; without it the checks run and the plan is printed (exit 2)")
    parser.add_argument("--max-recovery", type=_seconds("--max-recovery"), default=DEFAULT_MAX_RECOVERY,
                        metavar="SECONDS", help=f"a slower recovery fails the drill (default {DEFAULT_MAX_RECOVERY:g})")
    parser.add_argument("--timeout", type=_seconds("--timeout"), metavar="SECONDS",
                        help=f"stop polling after this long (default {TIMEOUT_FACTOR} x --max-recovery)")
    parser.add_argument("--poll-interval", type=_seconds("--poll-interval"), default=DEFAULT_POLL_INTERVAL,
                        metavar="SECONDS", help=f"seconds between polls (default {DEFAULT_POLL_INTERVAL:g})")
    parser.add_argument("--http-timeout", type=_seconds("--http-timeout"), default=DEFAULT_HTTP_TIMEOUT,
                        metavar="SECONDS", help=f"bound on each heartbeat request (default {DEFAULT_HTTP_TIMEOUT:g})")
    parser.add_argument("--format", choices=FORMATS, default="text", help="report format (default text)")
    args = cli.parse_args(parser, argv)
    args.timeout = args.timeout or TIMEOUT_FACTOR * args.max_recovery
    if args.timeout < args.max_recovery:
        parser.error(f"--timeout {args.timeout:g} is below --max-recovery {args.max_recovery:g}: "
                     "the drill could never pass")
    return args


def subject_of(outputs: StackOutputs) -> Subject:
    """The service the outputs name; a database-only stack (or old outputs) has none to drill."""
    s = outputs.service
    found = {"ecsClusterName": s and (s.ecs_cluster_arn or s.ecs_cluster_name), "ecsServiceName": s and s.ecs_service_name,
             "targetGroupArn": s and s.target_group_arn, "url": s and s.url}
    missing = [key for key, value in found.items() if not value]
    if missing:
        raise OpsError(f"the outputs have no {', '.join(missing)}: no ECS service to drill (a database-only stack?)")
    return Subject(cluster=found["ecsClusterName"], service=found["ecsServiceName"],
                   target_group=found["targetGroupArn"], url=found["url"], region=outputs.aws_region)


def run_command(args: argparse.Namespace, clock: Callable[[], float], sleep: Callable[[float], None]) -> int:
    outputs = load(args.stack, args.outputs)
    if outputs.rehearsal:
        raise OpsError("these are rehearsal outputs: a rehearsal runs no ECS service to drill")
    subject = subject_of(outputs)
    settings = Settings(max_recovery=args.max_recovery, timeout=args.timeout, poll_interval=args.poll_interval,
                        http_timeout=args.http_timeout)
    service = Service(subject.cluster, subject.service, subject.target_group, subject.region)
    progress(f"checking service {subject.service} in cluster {subject.cluster} before the drill")
    plan = preflight.prepare(service, subject.url, settings.http_timeout)
    if not args.yes:
        sys.stdout.write(render(plan, subject, settings, None, args.format))
        raise OpsError(f"not run: nothing stopped; add --yes to stop task {plan.victim.id} and time the recovery")
    progress(f"stopping task {plan.victim.label()}; polling every {settings.poll_interval:g} s")
    result = drill.run(service, plan, subject.url, settings, clock=clock, sleep=sleep)
    sys.stdout.write(render(plan, subject, settings, result, args.format))
    return result.exit_code


def main(argv: list[str] | None = None, *, clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep) -> int:
    """`clock` and `sleep` drive the polling; tests pass their own to run a drill in no time."""
    return run_command_line(lambda args: run_command(args, clock, sleep), parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
