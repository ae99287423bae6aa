"""python -m ops.metrics: snapshot before a deploy, diff (or check) after it.

    python -m ops.metrics snapshot --out before.json (--stack NAME | --outputs FILE) [--window 24h]
                                   [--samples 5 --sample-interval 1]
    python -m ops.metrics diff before.json after.json [--format text|json|markdown] [--plot diff.png]
    python -m ops.metrics check --baseline before.json (--stack NAME | --outputs FILE)

Before the first deploy there are no stack outputs: with UMAMI_ADMIN_DSN set and
neither --stack nor --outputs, the snapshot reads the database the DSN names
(add --aurora-cluster ID, and --schema/--role if the stack will not use the defaults).

Connections are sampled --samples times, --sample-interval seconds apart (default
5 samples 1 s apart); the report judges their peak: the application's against the
stories' +2, Umami's against its own connection budget from the outputs.

Exit codes: 0 within thresholds (or snapshot written), 1 a threshold broken,
2 could not run (bad input, database unreachable, CloudWatch required but skipped).
The report goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from typing import Any

from ops.core import cli
from ops.core.cli import run_command_line
from ops.core.errors import OpsError
from ops.metrics import snapshot, sources, thresholds
from ops.metrics.collect import SnapshotRequest, log, take_snapshot
from ops.metrics.connections import DEFAULT_INTERVAL_SECONDS, DEFAULT_SAMPLES, Sampling, parse_sampling
from ops.metrics.diff import Diff, compare
from ops.metrics.login import AUTO, CHOICES, UMAMI
from ops.metrics.metric_set import check_extra_metric
from ops.metrics.plot import PLOT_NEEDS, plot_available, write_plot
from ops.metrics.render import FORMATS, render
from ops.metrics.window import parse_window

DEFAULT_WINDOW = "24h"


def _add_source_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", metavar="NAME", help="read the outputs with `pulumi stack output --json --stack NAME`")
    parser.add_argument("--outputs", metavar="FILE", help="read the outputs from a JSON file instead")
    parser.add_argument("--schema", help="without outputs: the Umami schema the stack will create (default umami)")
    parser.add_argument("--role", help="without outputs: the Umami role the stack will create (default umami_user)")
    parser.add_argument("--aurora-cluster", metavar="ID", help="Aurora cluster identifier (overrides the outputs)")
    parser.add_argument("--aurora-instance", action="append", default=[], metavar="ID",
                        help="Aurora instance identifier, repeatable (overrides the outputs)")
    parser.add_argument("--region", help="AWS region of the cluster (overrides the outputs)")
    parser.add_argument("--metric", action="append", default=[], metavar="NAME",
                        help="an extra AWS/RDS metric per instance (repeatable)")
    parser.add_argument("--db-user", choices=CHOICES, default=AUTO,
                        help="connect as an admin, the umami role, or the admin when available (default)")
    parser.add_argument("--db-host", metavar="HOST", help="connect here instead of dbHost (an SSH/SSM tunnel)")
    parser.add_argument("--db-port", type=int, metavar="PORT", help="connect to this port instead of dbPort (a tunnel)")
    parser.add_argument("--host", dest="db_host", action=cli.deprecated_alias("--host", "--db-host"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--port", dest="db_port", type=int, action=cli.deprecated_alias("--port", "--db-port"),
                        help=argparse.SUPPRESS)


def _add_sampling_arguments(parser: argparse.ArgumentParser, baseline: bool = False) -> None:
    parser.add_argument("--samples", metavar="N", help="how many times to sample the connections (default "
                        + ("the baseline's" if baseline else str(DEFAULT_SAMPLES)) + ")")
    parser.add_argument("--sample-interval", metavar="SECONDS", help="seconds between samples (default "
                        + ("the baseline's" if baseline else f"{DEFAULT_INTERVAL_SECONDS:g}") + ")")


def _add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="text", help="report format (default text)")
    parser.add_argument("--plot", metavar="FILE.png", help="also draw a PNG comparing before and after")
    parser.add_argument("--thresholds", metavar="FILE", help="JSON file overriding the stories' limits")


ENVIRONMENT = ("UMAMI_ADMIN_DSN", "UMAMI_DB_PASSWORD", "AWS_PROFILE, AWS_REGION, AWS_*", "PULUMI_*")
EXIT_CODES = {0: "within thresholds (or snapshot written)", 1: "a threshold broken",
              2: "could not run: bad input, database unreachable, CloudWatch required but skipped"}
EXAMPLES = {
    "snapshot": "python -m ops.metrics snapshot --stack dev --out before.json",
    "diff": "python -m ops.metrics diff before.json after.json --format markdown",
    "check": "python -m ops.metrics check --baseline before.json --stack dev",
}


def _add_common(parser: argparse.ArgumentParser, command: str | None = None) -> None:
    cli.add_common_arguments(parser, example=EXAMPLES[command or "check"], top=command is None,
                             environment=() if command == "diff" else ENVIRONMENT, exit_codes=EXIT_CODES)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops.metrics", description=__doc__.split("\n\n")[0])
    _add_common(parser)
    commands = parser.add_subparsers(dest="command", required=True)

    snap = commands.add_parser("snapshot", help="snapshot the database and CloudWatch into a file")
    _add_common(snap, "snapshot")
    snap.add_argument("--out", required=True, metavar="FILE", help="where to write the snapshot")
    snap.add_argument("--window", default=DEFAULT_WINDOW, help="CloudWatch window ending now (default 24h)")
    _add_source_arguments(snap)
    _add_sampling_arguments(snap)
    snap.add_argument("--require-cloudwatch", action="store_true",
                      help="exit 2 when the CloudWatch part has to be skipped")

    diff = commands.add_parser("diff", help="compare two snapshots against the thresholds")
    _add_common(diff, "diff")
    diff.add_argument("before", metavar="BEFORE")
    diff.add_argument("after", metavar="AFTER")
    _add_report_arguments(diff)
    diff.add_argument("--require-cloudwatch", action="store_true",
                      help="exit 2 when either snapshot lacks the CloudWatch part")

    check = commands.add_parser("check", help="snapshot now and compare with a baseline")
    _add_common(check, "check")
    check.add_argument("--baseline", required=True, metavar="FILE", help="the snapshot taken before")
    check.add_argument("--out", metavar="FILE", help="also keep the new snapshot here")
    check.add_argument("--window", help="CloudWatch window (default: the baseline's)")
    _add_source_arguments(check)
    _add_sampling_arguments(check, baseline=True)
    _add_report_arguments(check)
    check.add_argument("--require-cloudwatch", action="store_true",
                       help="exit 2 when the CloudWatch part is skipped in either snapshot")
    return parser


def _request(args: argparse.Namespace, window: timedelta, extra: tuple[str, ...],
             sampling: Sampling) -> SnapshotRequest:
    outputs, predeploy = sources.resolve(sources.SourceOptions(
        stack=args.stack, outputs_file=args.outputs, schema=args.schema, role=args.role,
        aurora_cluster=args.aurora_cluster, aurora_instances=tuple(args.aurora_instance), region=args.region))
    if predeploy and args.db_user == UMAMI:
        raise OpsError("--db-user umami needs the stack's outputs (--stack or --outputs); "
                       "before the first deploy the snapshot connects as the admin")
    return SnapshotRequest(outputs=outputs, window=window, db_user=args.db_user, host=args.db_host, port=args.db_port,
                           extra_metrics=tuple(check_extra_metric(name) for name in extra), sampling=sampling)


def _require_cloudwatch(doc: dict[str, Any], name: str) -> None:
    if doc["cloudwatch"]["status"] != "collected":
        raise OpsError(f"CloudWatch part skipped in {name} and --require-cloudwatch is set: "
                       f"{doc['cloudwatch']['reason']}")


def _report(result: Diff, args: argparse.Namespace) -> int:
    if args.plot:  # first, so a plot that cannot be written fails before any report is printed
        width, height = write_plot(result, args.plot)
        log(f"plot written to {args.plot} ({width}x{height} px)")
    sys.stdout.write(render(result, args.format))
    return result.exit_code


def _load_thresholds(args: argparse.Namespace) -> thresholds.Thresholds:
    return thresholds.load(args.thresholds) if args.thresholds else thresholds.defaults()


def run_snapshot(args: argparse.Namespace) -> int:
    sampling = parse_sampling(args.samples, args.sample_interval)
    doc = take_snapshot(_request(args, parse_window(args.window), tuple(args.metric), sampling))
    if args.require_cloudwatch:
        _require_cloudwatch(doc, "the new snapshot")
    snapshot.write(doc, args.out)
    log(f"snapshot written to {args.out}")
    return 0


def run_diff(args: argparse.Namespace) -> int:
    limits = _load_thresholds(args)
    before, after = snapshot.load(args.before), snapshot.load(args.after)
    if args.require_cloudwatch:
        _require_cloudwatch(before, args.before)
        _require_cloudwatch(after, args.after)
    return _report(compare(before, after, limits, args.before, args.after), args)


def run_check(args: argparse.Namespace) -> int:
    limits = _load_thresholds(args)
    baseline = snapshot.load(args.baseline)
    if args.require_cloudwatch:
        _require_cloudwatch(baseline, args.baseline)
    window_text = args.window or (baseline["cloudwatch"]["window"] or {}).get("length") or DEFAULT_WINDOW
    extra = tuple(args.metric) or tuple(baseline["cloudwatch"].get("extraMetrics") or ())
    # The baseline's sampling, so both peaks are of the same window (a version-1 baseline had one instant).
    taken = {} if baseline.get("upgradedFrom") else baseline["database"]["connections"]["sampling"]
    sampling = parse_sampling(args.samples if args.samples is not None else taken.get("samples"),
                              args.sample_interval if args.sample_interval is not None
                              else taken.get("intervalSeconds"))
    now = take_snapshot(_request(args, parse_window(window_text), extra, sampling))
    if args.require_cloudwatch:
        _require_cloudwatch(now, "the new snapshot")
    if args.out:
        snapshot.write(now, args.out)
        log(f"snapshot written to {args.out}")
    return _report(compare(baseline, now, limits, args.baseline, args.out or "now"), args)


def main(argv: list[str] | None = None) -> int:
    args = cli.parse_args(build_parser(), argv)
    runners = {"snapshot": run_snapshot, "diff": run_diff, "check": run_check}
    if getattr(args, "plot", None) and not plot_available():  # before any snapshot is taken
        print(f"error: {PLOT_NEEDS}", file=sys.stderr)
        return 2
    return run_command_line(runners[args.command], args)


if __name__ == "__main__":
    sys.exit(main())
