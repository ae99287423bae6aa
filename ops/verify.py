"""Prove, from the stack outputs, that Umami is isolated and the deployment is healthy.

    python -m ops.verify (--stack NAME | --outputs FILE) [--format text|json|markdown|junit]
                         [--fail-on critical|high|medium|low] [--only IDS] [--skip IDS]
                         [--db-host HOST --db-port PORT] [--url URL] [--no-aws]
                         [--http-timeout SECONDS]
    python -m ops.verify --list        # every check: id, family, severity, title
    python -m ops.verify --outputs FILE --only destroy   # before `pulumi destroy` (never run by default)

Exit 0: nothing at or above --fail-on (default high); 1: findings at or above it;
2: the verification could not run (one-line reason on stderr).

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
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Iterable
from urllib.parse import urlsplit

import psycopg

from ops import credentials
from ops.checks import ALL_CHECKS, DEFAULT_CHECKS, FAMILIES, Family
from ops.checks.base import CheckResult, NotApplicable, Severity, Status, result_from_findings
from ops.checks.context import Context, SecretSource
from ops.db import Target, connect, redact, redact_url
from ops import cli
from ops.cli import progress, run_command_line
from ops.errors import OpsError
from ops.outputs import StackOutputs, load
from ops.report import FORMATS, Report, render



# -- selection ----------------------------------------------------------------------

def select(only: Iterable[str] = (), skip: Iterable[str] = ()) -> set[str]:
    """Check ids to run. Items are check ids (ISO-020) or family names (probes); unknown ones are refused.
    Without --only: every check except the opt-in families' (destroy), which run only when named."""
    families = {f.name: {c.id for c in f.checks} for f in FAMILIES}

    def expand(items: Iterable[str], option: str) -> set[str]:
        ids: set[str] = set()
        for item in (i.strip() for i in items):
            if not item:
                continue
            if item.upper() in ALL_CHECKS:
                ids.add(item.upper())
            elif item.lower() in families:
                ids |= families[item.lower()]
            else:
                raise OpsError(f"{option} {item}: no such check id or family (families: {', '.join(families)})")
        return ids

    chosen = expand(only, "--only") or set(DEFAULT_CHECKS)
    return chosen - expand(skip, "--skip")


# -- running ------------------------------------------------------------------------

def _run_family(family: Family, ctx: Context, selected: set[str]) -> list[CheckResult]:
    wanted = [c for c in family.checks if c.id in selected]
    results = {c.id: CheckResult(c, family.name, Status.SKIPPED, reason="not selected (--only/--skip)")
               for c in family.checks if c.id not in selected}
    if wanted:
        try:
            data = family.load(ctx)
        except NotApplicable as why:
            for check in wanted:
                results[check.id] = CheckResult(check, family.name, Status.NOT_APPLICABLE, reason=str(why))
        else:
            ran_as = family.ran_as(ctx)
            for check in wanted:
                try:
                    results[check.id] = result_from_findings(check, family.name, check.evaluate(data), ran_as)
                except NotApplicable as why:
                    results[check.id] = CheckResult(check, family.name, Status.NOT_APPLICABLE, reason=str(why))
    return [results[c.id] for c in family.checks]


def run_verification(outputs: StackOutputs, *, umami: Target, admin: Target | None, include_aws: bool,
                     only: Iterable[str] = (), skip: Iterable[str] = (), secret: SecretSource | None = None,
                     umami_source: str = "", admin_source: str = "", http_timeout: float = 10.0,
                     probe_sample: int = 20, source: str = "", url: str | None = None,
                     secret_reason: str = "", tunnel: bool = False) -> Report:
    """Run the selected checks and return the report (render it with ops.report.render).

    `umami` is the umami role's login (probes, schema state); `admin` an optional
    admin/auditor login for the catalog audit (umami runs it otherwise). With
    `include_aws=False` (a rehearsal, --no-aws) the checks that need AWS are not
    applicable; the heartbeat and default login run against `url` when given.
    The secret checks run only on a `secret` document passed in (`secret_reason`
    says why there is none). `tunnel`: the database is reached through --db-host.
    Raises OpsError when something prevents the run (unreachable database, ...).
    """
    started = time.monotonic()
    selected = select(only, skip)
    ctx = Context(outputs=outputs, umami=umami, admin=admin, include_aws=include_aws, secret=secret,
                  umami_source=umami_source, admin_source=admin_source, http_timeout=http_timeout,
                  probe_sample=probe_sample, url=url, secret_reason=secret_reason, tunnel=tunnel)
    try:
        # An opt-in family not selected is left out of the report altogether.
        results = [r for family in FAMILIES if not family.opt_in or any(c.id in selected for c in family.checks)
                   for r in _run_family(family, ctx, selected)]
        report = Report(results=results, source=source or ("rehearsal outputs" if outputs.rehearsal else "stack outputs"),
                        target=f"role {outputs.database.role}, schema {outputs.database.schema} in "
                               f"{outputs.database.name} at {umami.host}:{umami.port}")
        _describe_sessions(report, ctx, results)
    except psycopg.Error as exc:
        reason = redact(str(exc)).strip().splitlines()
        raise OpsError(f"database error during verification: {reason[0] if reason else type(exc).__name__}") from None
    finally:
        ctx.close()
    report.duration_s = time.monotonic() - started
    return report


def _describe_sessions(report: Report, ctx: Context, results: list[CheckResult]) -> None:
    """Which checks ran as whom, and the application roles the reverse checks used."""
    families_by_session: dict[str, list[str]] = {}
    for family in FAMILIES:
        ran = next((r.ran_as for r in results if r.family == family.name and r.ran_as), None)
        if ran:
            families_by_session.setdefault(ran, []).append(family.name)
    report.sessions = {", ".join(names): who for who, names in families_by_session.items()}
    catalog = ctx.catalog_if_used
    if catalog is not None:
        report.audit_queries = catalog.queries
        p = catalog.principals_if_loaded
        if p is not None:
            report.application_roles = [r.name for r in p.app_roles]
            report.application_roles_origin = (
                "discovered: every login role except umami, the admin/auditor and pg_*/rds* roles"
                if p.app_roles_discovered else "from the outputs' applicationRoles")
            report.notes += [f"applicationRoles names {name}, which does not exist" for name in p.missing_app_roles]


# -- credentials --------------------------------------------------------------------

@dataclass
class Logins:
    """Who the run logs in as, the secret document to check, and notes for the report."""

    umami: Target
    umami_source: str
    admin: Target | None = None
    admin_source: str = ""
    secret: SecretSource | None = None
    secret_reason: str = ""
    notes: list[str] = field(default_factory=list)


def resolve_logins(outputs: StackOutputs, host: str | None, port: int | None, *, aws: bool = True) -> Logins:
    """The umami login, an optional admin login, and the secret document (read once).

    With UMAMI_DB_PASSWORD set (or `aws=False`) Secrets Manager is never asked: the
    secret checks are then not applicable and the admin comes from UMAMI_ADMIN_DSN only.
    """
    env_password = bool(os.environ.get(credentials.ENV_UMAMI_PASSWORD))
    if outputs.rehearsal or env_password or not aws:
        if not (outputs.rehearsal or env_password):
            raise OpsError(f"--no-aws needs {credentials.ENV_UMAMI_PASSWORD}: the umami password is otherwise "
                           f"read from Secrets Manager ({outputs.secrets.db_secret_arn})")
        read_secrets, document, secret = False, None, None
        why = f"the umami password comes from {credentials.ENV_UMAMI_PASSWORD}" if env_password else "--no-aws"
        secret_reason = "" if outputs.rehearsal else f"{why}: Secrets Manager is not read"
    else:
        read_secrets, secret_reason, why = True, "", ""
        document = credentials.read_secret_json(outputs.secrets.db_secret_arn, outputs.aws_region)
        secret = SecretSource(label=f"secret {outputs.secrets.db_secret_name or outputs.secrets.db_secret_arn}",
                              document=document.values)
    umami, umami_source = credentials.umami_target(outputs, host=host, port=port, secret=document)
    logins = Logins(umami=umami, umami_source=umami_source, secret=secret, secret_reason=secret_reason)
    found = credentials.admin_target(outputs, host=host, port=port, read_secrets=read_secrets)
    if found is None:
        if outputs.secrets.admin_secret_arn and secret_reason:
            logins.notes.append(f"the admin secret is not read ({why}); the catalog audit runs as the admin "
                                f"with {credentials.ENV_ADMIN_DSN}")
        return logins
    admin, admin_source = found
    if outputs.rehearsal and not os.environ.get(credentials.ENV_ADMIN_DSN):
        # The rehearsal's passfile may lack the admin (--dsn without a password); umami audits then.
        try:
            connect(admin).close()
        except OpsError as exc:
            logins.notes.append(f"no admin login ({exc}); the catalog audit ran as {umami.user}")
            return logins
    logins.admin, logins.admin_source = admin, admin_source
    return logins


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
    parser.add_argument("--format", choices=FORMATS, default="text", help="report format (default text)")
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
    sys.stdout.write(render(report, args.format, fail_on))
    return report.exit_code(fail_on)


if __name__ == "__main__":
    sys.exit(main())
