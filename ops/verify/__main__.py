"""Prove, from the stack outputs, that Umami is isolated and the deployment is healthy.

    python -m ops.verify (--stack NAME | --outputs FILE) [--format text|json|markdown|junit|sql]
                         [--fail-on critical|high|medium|low] [--only IDS] [--skip IDS]
                         [--db-host HOST --db-port PORT] [--url URL] [--no-aws]
                         [--http-timeout SECONDS]
    python -m ops.verify --list        # every check: id, family, severity, title
    python -m ops.verify --outputs FILE --only destroy   # before `pulumi destroy` (never run by default)

Exit 0: nothing at or above --fail-on (default high); 1: findings at or above it;
2: the verification could not run (one-line reason on stderr). `--format sql`
writes a fix script instead of a report: one section for the admin, one for the
umami role, each a transaction; the exit code is the same.

Credentials: the umami role's from the secret named in the outputs, or
UMAMI_DB_PASSWORD; an admin/auditor from the admin secret the outputs name, or
UMAMI_ADMIN_DSN. With UMAMI_DB_PASSWORD set, Secrets Manager is not asked at all
(the secret checks are not applicable; the admin comes from UMAMI_ADMIN_DSN or
the audit runs as umami). For outputs written by `ops.rehearse` ("rehearsal": true)
passwords come from the rehearsal's passfile (or PGPASSFILE), and the
AWS checks are reported as not applicable. `--url` points the heartbeat and
default-login checks at another address (also for a rehearsal); `--no-aws` makes
no AWS call at all. Read-only against the database; probes that attempt a write
do so in a transaction that is rolled back.
"""

from __future__ import annotations

import argparse
import sys
from urllib.parse import urlsplit

from ops.core import cli
from ops.core.cli import progress, run_command_line
from ops.core.db import redact_url
from ops.core.errors import OpsError
from ops.core.outputs import load
from ops.verify.checks import FAMILIES
from ops.verify.checks.base import Severity
from ops.verify.report import FORMATS, render
from ops.verify.runner import resolve_logins, run_verification, select

# -- command line -------------------------------------------------------------------

def _ids(values: list[str]) -> list[str]:
    return [item for value in values for item in value.split(",")]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ops.verify", description=__doc__.split("\n\n")[0])
    cli.add_common_arguments(
        parser, example="python -m ops.verify --outputs .rehearsal/dev/outputs.json --format markdown",
        environment=("UMAMI_DB_PASSWORD", "UMAMI_ADMIN_DSN", "PGPASSFILE", "AWS_PROFILE, AWS_REGION, AWS_*",
                     "PULUMI_*"),
        exit_codes={0: "nothing at or above --fail-on (default high)", 1: "findings at or above --fail-on"})
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--stack", metavar="NAME", help="read `pulumi stack output --json --stack NAME`")
    source.add_argument("--outputs", metavar="FILE", help="a JSON file of the stack outputs (e.g. the rehearsal's)")
    parser.add_argument("--format", choices=FORMATS, default="text",
                        help="report format (default text); sql: a script of the findings' fixes")
    parser.add_argument("--fail-on", choices=[s.label for s in Severity if s > Severity.INFO], default="high",
                        help="exit 1 when a finding is at or above this severity (default high)")
    parser.add_argument("--only", action="append", default=[], metavar="IDS",
                        help="comma-separated check ids or family names to run")
    parser.add_argument("--skip", action="append", default=[], metavar="IDS",
                        help="comma-separated check ids or family names to leave out")
    parser.add_argument("--db-host", metavar="HOST", help="connect here instead of dbHost (an SSH/SSM tunnel)")
    parser.add_argument("--db-port", type=int, metavar="PORT", help="connect to this port instead of dbPort (a tunnel)")
    parser.add_argument("--url", help="check Umami's heartbeat and default login here (also for a rehearsal)")
    parser.add_argument("--no-aws", action="store_true",
                        help="make no AWS call (needs UMAMI_DB_PASSWORD); checks that need AWS are not applicable")
    parser.add_argument("--http-timeout", type=float, default=10.0, metavar="SECONDS",
                        help="bound on each whole HTTP exchange: connect, headers and body (default 10)")
    parser.add_argument("--list", action="store_true", help="print every check (id, family, severity, title) and exit")
    args = cli.parse_args(parser, argv)
    if not args.list and not (args.stack or args.outputs):
        parser.error("one of the arguments --stack --outputs is required")
    if args.http_timeout <= 0:
        parser.error(f"--http-timeout {args.http_timeout:g}: must be more than 0 seconds")
    return args


def _checked_url(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        parts = parts._replace(scheme="")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OpsError(f"--url {redact_url(url)}: not an http(s) URL (e.g. http://127.0.0.1:3000)")
    return url.rstrip("/")


def check_catalog() -> str:
    """Every check, one per line: id, family, the highest severity it reports, title; opt-in families'
    checks say how to run them (they are never part of the default run)."""
    return "".join(f"{check.id}  {family.name:<12} {check.severity.label:<9} {check.title}"
                   f"{f'  [only with --only {family.name}]' if family.opt_in else ''}\n"
                   for family in FAMILIES for check in family.checks)


def main(argv: list[str] | None = None) -> int:
    return run_command_line(run_command, parse_args(argv))


def run_command(args: argparse.Namespace) -> int:
    if args.list:
        sys.stdout.write(check_catalog())
        return 0
    fail_on = Severity.parse(args.fail_on)
    only, skip = _ids(args.only), _ids(args.skip)
    select(only, skip)  # refuse unknown ids before connecting anywhere
    url = _checked_url(args.url)
    outputs = load(args.stack, args.outputs)
    include_aws = not outputs.rehearsal and not args.no_aws
    logins = resolve_logins(outputs, args.db_host, args.db_port, aws=not args.no_aws)
    progress(f"verifying {outputs.database.role}/{outputs.database.schema} in {outputs.database.name} "
        f"({'rehearsal' if outputs.rehearsal else 'deployed stack'})")
    report = run_verification(outputs, umami=logins.umami, admin=logins.admin, include_aws=include_aws,
                              only=only, skip=skip, secret=logins.secret, umami_source=logins.umami_source,
                              admin_source=logins.admin_source, http_timeout=args.http_timeout,
                              source=f"stack {args.stack}" if args.stack else str(args.outputs), url=url,
                              secret_reason=logins.secret_reason, tunnel=bool(args.db_host or args.db_port))
    report.notes = logins.notes + report.notes
    report.admin_role = outputs.database.admin_role or (logins.admin.user if logins.admin else "")
    report.umami_role = outputs.database.role
    sys.stdout.write(render(report, args.format, fail_on))
    return report.exit_code(fail_on)


if __name__ == "__main__":
    sys.exit(main())
