"""The runner behind `python -m ops.verify`: select the checks, run them family by family against
the stack outputs, and resolve who logs in (the command line is `ops.verify.__main__`).

Findings, not aborts: a family whose data, or a check whose answer, fails in the database
(permission denied, an undefined column, a timeout) or comes back in a shape the check does
not expect fails that check alone, at its declared severity, and every other family still
runs. Only a login that cannot be made at all stops the run (OpsError, exit 2).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Iterable

import psycopg

from ops.core import credentials
from ops.core.db import Target, connect, one_line, redact
from ops.core.errors import OpsError
from ops.core.outputs import StackOutputs
from ops.verify.checks import ALL_CHECKS, DEFAULT_CHECKS, FAMILIES, Family
from ops.verify.checks import connections
from ops.verify.checks.base import Check, CheckResult, Finding, NotApplicable, Status, result_from_findings
from ops.verify.checks.context import Context, LoginUnavailable, SecretSource
from ops.verify.report import Report


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

# What makes a check unanswerable rather than the run impossible: the database refused or failed a
# statement, or a row did not have the shape the check reads. (OpsError, no login at all, still stops.)
UNANSWERABLE = (psycopg.Error, LookupError, TypeError, ValueError, LoginUnavailable)


def _unanswered(check: Check, family: Family, exc: Exception, ran_as: str | None) -> CheckResult:
    """Fail closed: what could not be proven is not passed, at the severity the check declares."""
    if isinstance(exc, psycopg.Error):
        primary = exc.diag.message_primary  # the server's message without libpq's LINE/caret context
        reason = redact(primary) if primary else one_line(exc)
    elif isinstance(exc, LoginUnavailable):
        reason = redact(one_line(exc))
    else:
        reason = f"{type(exc).__name__}: {one_line(exc)}"
    finding = Finding(check.severity, family.title, f"could not be answered: {reason}")
    return CheckResult(check, family.name, Status.FAIL, [finding], ran_as=ran_as)


def _run_family(family: Family, ctx: Context, selected: set[str]) -> list[CheckResult]:
    started = time.monotonic()
    wanted = [c for c in family.checks if c.id in selected]
    results = {c.id: CheckResult(c, family.name, Status.SKIPPED, reason="not selected (--only/--skip)")
               for c in family.checks if c.id not in selected}
    if wanted:
        try:
            data = family.load(ctx)
        except NotApplicable as why:
            for check in wanted:
                results[check.id] = CheckResult(check, family.name, Status.NOT_APPLICABLE, reason=str(why))
        except UNANSWERABLE as exc:
            ctx.recover()
            for check in wanted:
                results[check.id] = _unanswered(check, family, exc, family.ran_as(ctx))
        else:
            ran_as = family.ran_as(ctx)
            for check in wanted:
                try:
                    results[check.id] = result_from_findings(check, family.name, check.evaluate(data), ran_as)
                except NotApplicable as why:
                    results[check.id] = CheckResult(check, family.name, Status.NOT_APPLICABLE, reason=str(why))
                except UNANSWERABLE as exc:
                    ctx.recover()
                    results[check.id] = _unanswered(check, family, exc, ran_as)
    share = (time.monotonic() - started) / max(len(wanted), 1)  # the family's time, shared out (JUnit's `time`)
    for check in wanted:
        results[check.id].duration_s = share
    return [results[c.id] for c in family.checks]


def run_verification(outputs: StackOutputs, *, umami: Target, admin: Target | None, include_aws: bool,
                     only: Iterable[str] = (), skip: Iterable[str] = (), secret: SecretSource | None = None,
                     umami_source: str = "", admin_source: str = "", http_timeout: float = 10.0,
                     probe_sample: int = 20, source: str = "", url: str | None = None,
                     secret_reason: str = "", tunnel: bool = False) -> Report:
    """Run the selected checks and return the report (render it with ops.verify.report.render).

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
        report.notes += _weaker_checks(ctx, results)
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
                "discovered: every login role except umami, the admin and pg_*/rds* roles, whoever audits"
                if p.app_roles_discovered else "from the outputs' applicationRoles")
            report.notes += [f"applicationRoles names {name}, which does not exist" for name in p.missing_app_roles]


def _weaker_checks(ctx: Context, results: list[CheckResult]) -> list[str]:
    """Checks the auditor's own view of the database made weaker, and why (read from the database)."""
    notes = []
    role, auditor = ctx.outputs.database.role, (ctx.admin or ctx.umami).user
    live = next((r for r in results if r.check.evaluate is connections.live_connections
                 and r.status in (Status.PASS, Status.INFO, Status.FAIL)), None)
    if live is not None:
        try:
            sees = ctx.audit_sees_session_details(role)
        except psycopg.Error as exc:
            ctx.recover()
            notes.append(f"{live.check.id} may be weaker: could not tell whether {auditor} sees the "
                         f"details of {role}'s sessions ({one_line(exc)})")
        else:
            if sees is False:
                notes.append(f"{live.check.id} is weaker: {auditor} is neither {role} (or a member of it) "
                             f"nor a member of pg_read_all_stats, so pg_stat_activity hides the backend type, "
                             f"application and client of {role}'s sessions from it: every one is counted as "
                             f"Umami's (ops' own sessions included); audit as the admin (rds_superuser includes "
                             f"pg_read_all_stats) or as {role} to tell them apart")
    return notes


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


