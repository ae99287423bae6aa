"""Umami's Prisma migrations, read and resolved as the umami role (which owns `_prisma_migrations`).

    python -m ops.migrate status  (--stack NAME | --outputs FILE) [--db-host HOST --db-port PORT] [--format text|json]
    python -m ops.migrate resolve (--rolled-back NAME | --applied NAME) (--stack NAME | --outputs FILE) [...]

`status` lists every migration with its started, finished and rolled-back times and
applied steps, and each failed one with Prisma's logs and the way out of Prisma's P3009.
`resolve` does what `prisma migrate resolve` does, in one transaction, and only for a
failed migration (anything else is refused and nothing changes).

Credentials: the umami role's from the secret named in the outputs, or UMAMI_DB_PASSWORD;
for rehearsal outputs the rehearsal's passfile (or PGPASSFILE). The admin is never used:
it cannot read the table.
"""

from __future__ import annotations

import argparse
import sys

from ops.core import cli, credentials
from ops.core.cli import progress, run_command_line
from ops.core.db import connect
from ops.core.errors import OpsError
from ops.core.outputs import load
from ops.migrate import history
from ops.migrate.report import FORMATS, Where, render_resolve, render_status, source_args, status_exit_code
from ops.migrate.resolve import Outcome, resolve

ENVIRONMENT = ("UMAMI_DB_PASSWORD", "PGPASSFILE", "AWS_PROFILE, AWS_REGION, AWS_*", "PULUMI_*")
EXAMPLES = {
    None: "python -m ops.migrate status --outputs .rehearsal/dev/outputs.json",
    "status": "python -m ops.migrate status --stack dev --format json",
    "resolve": "python -m ops.migrate resolve --rolled-back 20240101000000_init --stack dev",
}
EXIT_CODES = {
    None: {0: "status: no failed migration; resolve: done", 1: "status: a failed migration blocks Umami's start (P3009)",
           2: "could not run or refused: bad input, unreachable database, no such failed migration (one line on stderr)"},
    "status": {0: "no failed migration", 1: "a failed migration blocks Umami's start (P3009)"},
    "resolve": {0: "resolved", 1: "never (a refusal is exit 2)",
                2: "refused or could not run: the migration is unknown or not failed, the table is missing or "
                   "not Prisma's, Prisma's lock is held (one line on stderr; nothing changed)"},
}


def _add_common(parser: argparse.ArgumentParser, command: str | None = None) -> None:
    cli.add_common_arguments(parser, example=EXAMPLES[command], environment=ENVIRONMENT,
                             exit_codes=EXIT_CODES[command], top=command is None)


def _add_source_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--stack", metavar="NAME", help="read `pulumi stack output --json --stack NAME`")
    source.add_argument("--outputs", metavar="FILE", help="a JSON file of the stack outputs (e.g. the rehearsal's)")
    parser.add_argument("--db-host", metavar="HOST", help="connect here instead of dbHost (an SSH/SSM tunnel)")
    parser.add_argument("--db-port", type=int, metavar="PORT", help="connect to this port instead of dbPort (a tunnel)")
    parser.add_argument("--format", choices=FORMATS, default="text", help="report format (default text)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops.migrate", description=__doc__.split("\n\n")[0])
    _add_common(parser)
    commands = parser.add_subparsers(dest="command", required=True)

    status = commands.add_parser("status", help="every migration; the failed ones with Prisma's logs")
    _add_common(status, "status")
    _add_source_arguments(status)

    fix = commands.add_parser("resolve", help="mark a failed migration rolled back or applied, as Prisma does")
    _add_common(fix, "resolve")
    outcome = fix.add_mutually_exclusive_group(required=True)
    outcome.add_argument("--rolled-back", metavar="NAME",
                         help="its changes are not in the database: the next deploy step applies it again")
    outcome.add_argument("--applied", metavar="NAME",
                         help="its changes are all in the database: the next deploy step skips it")
    _add_source_arguments(fix)
    return parser


def _login(args: argparse.Namespace):
    """The outputs, the umami role's login and where it points (for the report)."""
    outputs = load(args.stack, args.outputs)
    target, source = credentials.umami_target(outputs, host=args.db_host, port=args.db_port)
    where = Where(database=f"{target.dbname} at {target.host}:{target.port}", role=target.user,
                  login=f"{target.user} ({source})",
                  source_args=source_args(args.stack, args.outputs, args.db_host, args.db_port))
    return outputs.database.schema, target, where


def run_status(args: argparse.Namespace) -> int:
    schema, target, where = _login(args)
    progress(f"reading {history.qualified(schema)} as {where.login}")
    with connect(target) as conn:
        hist = history.load(conn, schema)
    sys.stdout.write(render_status(hist, where, args.format))
    return status_exit_code(hist)


def run_resolve(args: argparse.Namespace) -> int:
    outcome, name = (Outcome.APPLIED, args.applied) if args.applied is not None else (Outcome.ROLLED_BACK,
                                                                                      args.rolled_back)
    if not name.strip():
        raise OpsError(f"--{outcome.value}: a migration name is required (see `python -m ops.migrate status`)")
    schema, target, where = _login(args)
    progress(f"resolving {name} as {outcome.value} in {history.qualified(schema)} as {where.login}")
    with connect(target, read_only=False) as conn:
        resolution = resolve(conn, schema, name, outcome)
    sys.stdout.write(render_resolve(resolution, where, args.format))
    return 0


def run_command(args: argparse.Namespace) -> int:
    return run_status(args) if args.command == "status" else run_resolve(args)


def main(argv: list[str] | None = None) -> int:
    return run_command_line(run_command, cli.parse_args(build_parser(), argv))


if __name__ == "__main__":
    sys.exit(main())
