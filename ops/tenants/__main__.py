"""The tenant registry, kept as the admin: the table the stack's tenants are listed in.

    python -m ops.tenants registry (--stack NAME | --outputs FILE) [--apply] [--db-host HOST --db-port PORT]

Without --apply it prints the statements that would bring `umami:tenantRegistry` in step with the
outputs' `tenants` (run in a transaction that is rolled back: exactly what --apply runs) and exits 1
when there are any; --apply runs them in one transaction. Idempotent: a registry in step needs no
statement. Credentials: the admin secret the outputs name, UMAMI_ADMIN_DSN, or for rehearsal
outputs the rehearsal's passfile.
"""

from __future__ import annotations

import argparse
import sys

from ops.core import cli, credentials
from ops.core.cli import progress, run_command_line
from ops.core.db import connect
from ops.core.errors import OpsError
from ops.core.outputs import load
from ops.tenants import registry as tenant_registry

ENVIRONMENT = ("UMAMI_ADMIN_DSN", "PGPASSFILE", "AWS_PROFILE, AWS_REGION, AWS_*", "PULUMI_*")
EXAMPLE = "python -m ops.tenants registry --stack dev --apply"
EXIT_CODES = {0: "the registry is in step with the stack (or --apply brought it there)",
              1: "without --apply: statements are pending (printed; nothing changed)",
              2: "could not run or refused: no registry configured, no admin login, its schema or service role "
                 "missing, a table by its name that is not a registry (one line on stderr; nothing changed)"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops.tenants", description=__doc__.split("\n\n")[0])
    cli.add_common_arguments(parser, example=EXAMPLE, environment=ENVIRONMENT, exit_codes=EXIT_CODES)
    commands = parser.add_subparsers(dest="command", required=True)
    sync = commands.add_parser("registry", help="create the tenant registry and keep its rows and ACL in step")
    cli.add_common_arguments(sync, example=EXAMPLE, environment=ENVIRONMENT, exit_codes=EXIT_CODES, top=False)
    source = sync.add_mutually_exclusive_group(required=True)
    source.add_argument("--stack", metavar="NAME", help="read `pulumi stack output --json --stack NAME`")
    source.add_argument("--outputs", metavar="FILE", help="a JSON file of the stack outputs (e.g. the rehearsal's)")
    sync.add_argument("--apply", action="store_true", help="run the statements (default: print them, change nothing)")
    sync.add_argument("--db-host", metavar="HOST", help="connect here instead of dbHost (an SSH/SSM tunnel)")
    sync.add_argument("--db-port", type=int, metavar="PORT", help="connect to this port instead of dbPort (a tunnel)")
    return parser


def run_registry(args: argparse.Namespace) -> int:
    outputs = load(args.stack, args.outputs)
    registry = tenant_registry.Registry.of(outputs)
    if registry is None:
        raise OpsError("the stack configures no tenant registry (umami:tenantRegistry and umami:tenantServiceRole)")
    found = credentials.admin_target(outputs, host=args.db_host, port=args.db_port)
    if found is None:
        raise OpsError(f"the registry is kept as the admin: the outputs name no admin secret; set "
                       f"{credentials.ENV_ADMIN_DSN}")
    admin, source = found
    progress(f"{'keeping' if args.apply else 'checking'} tenant registry {registry.name} as {admin.user} ({source})")
    with connect(admin, read_only=False) as conn:
        outcome = tenant_registry.sync(conn, registry, outputs.database.tenants, apply=args.apply)
    sys.stdout.write(f"tenant registry {registry.name} in {admin.describe()}:\n" + "\n".join(outcome.lines()) + "\n")
    return 1 if outcome.statements and not outcome.applied else 0


def main(argv: list[str] | None = None) -> int:
    return run_command_line(run_registry, cli.parse_args(build_parser(), argv))


if __name__ == "__main__":
    sys.exit(main())
