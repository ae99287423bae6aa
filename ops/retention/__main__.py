"""Show what the nightly retention job would delete: rows per table, their age and the storage they hold.

    python -m ops.retention (--stack NAME | --outputs FILE) --dry-run [--days N] [--format text|json]
                            [--db-host HOST --db-port PORT]
    python -m ops.retention (--stack NAME | --outputs FILE) --apply [--days N] [--batch N]

The statements are the job's own (driver/retention.json, run by driver/retention.mjs in ECS). The
cut-off is now minus the outputs' retentionDays (`--days` overrides it; 0: retention is off).
Deleting is the scheduled job's work: without --dry-run the command refuses, unless --apply asks it to
run the same deletion now, in the same batches, as the umami role.

Credentials: the umami role's password from the secret named in the outputs, or UMAMI_DB_PASSWORD;
for outputs written by `ops.rehearse`, the rehearsal's passfile (or PGPASSFILE).
"""

from __future__ import annotations

import argparse
import sys

import psycopg

from ops.core import cli, credentials
from ops.core.cli import progress, run_command_line
from ops.core.db import connect, one_line
from ops.core.errors import OpsError
from ops.core.outputs import StackOutputs, load
from ops.retention.job import forecast, purge
from ops.retention.plan import load_plan
from ops.retention.report import FORMATS, render

REFUSED = "deleting runs as the scheduled job; use --dry-run here (or --apply to delete now)"
# One batch stays far below the role's statement_timeout; a dry run's counts scan whole tables.
STATEMENT_TIMEOUT_MS = 30_000


def _whole(minimum: int):
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"{number} is below {minimum}")
        return number
    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ops.retention", description=__doc__.split("\n\n")[0])
    cli.add_common_arguments(
        parser, example="python -m ops.retention --outputs .rehearsal/dev/outputs.json --dry-run",
        environment=("UMAMI_DB_PASSWORD", "PGPASSFILE", "AWS_PROFILE, AWS_REGION, AWS_*", "PULUMI_*"),
        exit_codes={0: "done: the dry run's report, or the deletion's", 1: "not used by this command"})
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--stack", metavar="NAME", help="read `pulumi stack output --json --stack NAME`")
    source.add_argument("--outputs", metavar="FILE", help="a JSON file of the stack outputs (e.g. the rehearsal's)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="count what the next run would delete; delete nothing")
    mode.add_argument("--apply", action="store_true", help="delete now, as the scheduled job would")
    parser.add_argument("--days", type=_whole(0), metavar="N", help="keep N days instead of the outputs' retentionDays")
    parser.add_argument("--batch", type=_whole(1), metavar="N",
                        help="rows per DELETE with --apply (default: the plan's batch, as the job)")
    parser.add_argument("--format", choices=FORMATS, default="text", help="report format (default text)")
    parser.add_argument("--db-host", metavar="HOST", help="connect here instead of dbHost (an SSH/SSM tunnel)")
    parser.add_argument("--db-port", type=int, metavar="PORT", help="connect to this port instead of dbPort (a tunnel)")
    return cli.parse_args(parser, argv)


def retention_days(outputs: StackOutputs, days: int | None) -> int:
    """--days, else the outputs' retentionDays."""
    if days is not None:
        return days
    kept = outputs.service.retention_days if outputs.service else None
    if kept is None:
        raise OpsError("the outputs carry no retentionDays (a database-only stack, or deployed before retention); "
                       "pass --days N")
    return kept


def run_command(args: argparse.Namespace) -> int:
    if not (args.dry_run or args.apply):
        raise OpsError(REFUSED)
    if args.batch is not None and not args.apply:
        raise OpsError("--batch sizes the deletes of --apply; a dry run deletes nothing")
    plan = load_plan()
    outputs = load(args.stack, args.outputs)
    days = retention_days(outputs, args.days)
    schema = outputs.database.schema
    target, _ = credentials.umami_target(outputs, host=args.db_host, port=args.db_port)
    described = f"{target.describe()}, schema {schema}"
    progress(f"retention {'dry run' if args.dry_run else 'deletion'} in {described}: keeping {days} days")
    try:
        with connect(target, read_only=args.dry_run, statement_timeout_ms=STATEMENT_TIMEOUT_MS) as conn:
            if args.dry_run:
                run = forecast(conn, plan, schema, days)
            else:
                conn.autocommit = True
                run = purge(conn, plan, schema, days, args.batch or plan.batch, report=lambda t: progress(
                    f"  {schema}.{t.table}: deleted {t.deleted:,} in {t.batches} batch{'' if t.batches == 1 else 'es'}"))
    except psycopg.Error as exc:
        raise OpsError(f"database error during the retention {'dry run' if args.dry_run else 'deletion'}: "
                       f"{one_line(exc)}") from None
    sys.stdout.write(render(run, args.format, described))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command_line(run_command, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
