"""The rehearsal's closing proof, with real logins as the umami role.

1. The role can work in its schema: with only the role's own search_path it
   creates a table with a UUID default, inserts and reads a row (rolled back);
   so can every tenant role in its own schema.
2. Everything `python -m ops.verify` checks in the database (the catalog audit,
   the live probes, the schema state) and the credentials document the stack
   would store; the AWS checks are reported as not applicable.

The last line claims only what those checks confirmed, and names what no grant
closes (the residual family) and what PUBLIC keeps by default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import psycopg

from facts import SECRET_VERSION, tenant_role, tenant_schema
from ops.core.db import Target, one_line
from ops.core.errors import OpsError
from ops.core.outputs import parse_outputs
from ops.rehearse.stack import stored_logins
from ops.verify.runner import run_verification
from ops.verify.checks import residual
from ops.verify.checks.base import Severity, Status
from ops.verify.checks.context import SecretSource
from ops.verify.report import render


# What each isolation family confirms once every one of its checks ran and none failed at low.
CONFIRMED_BY = {
    "roles": "{role} has no SUPERUSER, CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS",
    "memberships": "no role membership",
    "privileges": "no privilege outside schema {schema}",
    "ownership": "owns nothing outside it",
    "defaults": "no default privileges cross it",
    "reverse": "no application role reaches into it",
    "probes": "its live attempts to cross it were refused",
}


@dataclass
class ProbeResult:
    name: str
    passed: bool
    evidence: str


def probe_work_in_schema(umami: Target, schema: str) -> ProbeResult:
    """As the role, with nothing but its own settings: create, insert, read; always rolled back."""
    name = "work in own schema"
    try:
        with psycopg.connect(umami.conninfo()) as conn, conn.transaction(force_rollback=True):
            path = conn.execute("SHOW search_path").fetchone()[0]
            conn.execute("CREATE TABLE rehearsal_probe (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), note text)")
            conn.execute("INSERT INTO rehearsal_probe (note) VALUES ('ok')")
            where = conn.execute("SELECT relnamespace::regnamespace::text FROM pg_class "
                                 "WHERE oid = 'rehearsal_probe'::regclass").fetchone()[0]
            count = conn.execute("SELECT count(*) FROM rehearsal_probe").fetchone()[0]
    except psycopg.OperationalError as exc:
        raise OpsError(f"cannot log in as {umami.describe()}: {one_line(exc)}") from None
    except psycopg.Error as exc:
        return ProbeResult(name, False, f"SQLSTATE {exc.sqlstate}: {str(exc).splitlines()[0]}")
    return ProbeResult(name, where == schema and count == 1,
                       f"search_path={path}; table created in {where}; {count} row")


def stored_credentials(run) -> dict:
    """The credentials document the stack would store in Secrets Manager (the JSON secret with
    DATABASE_URL; Umami's admin login is JSON too)."""
    documents = [json.loads(r.inputs["secretString"]) for r in run.by_type(SECRET_VERSION)
                 if str(r.inputs.get("secretString", "")).startswith("{")]
    documents = [d for d in documents if "DATABASE_URL" in d]
    if len(documents) != 1:
        raise OpsError(f"expected one credentials document in the program, found {len(documents)}")
    return documents[0]


def check_rehearsal(result) -> int:
    """Print the closing proof of a finished rehearsal; 0 when the roles work and isolation holds."""
    admin = result.db.admin
    outputs = parse_outputs(result.outputs, str(result.outputs_path))
    # Same server and TLS rules (sslmode, CA, every DSN parameter) as the admin's login.
    # The role's own `password` input is a SCRAM verifier: log in with the generated password.
    umami = replace(admin, user=outputs.database.role, password=result.role_password, passfile=None)
    probe = probe_work_in_schema(umami, outputs.database.schema)
    print(f"as {umami.describe()} (real login, search_path from the role):")
    print(f"  {'PASS' if probe.passed else 'FAIL'}  {probe.name}: {probe.evidence}")
    tenant_probes = probe_tenants(result, outputs)
    report = run_verification(outputs, umami=umami, admin=admin, include_aws=False,
                              secret=SecretSource("the credentials document the stack stores",
                                                  stored_credentials(result.run)),
                              umami_source="rehearsal", admin_source="rehearsal")
    print(render(report, "text", Severity.LOW), end="")
    unconfirmed = _not_run(report)
    isolated = report.exit_code(Severity.LOW) == 0 and not unconfirmed
    works = probe.passed and all(p.passed for p in tenant_probes)
    if works and isolated:
        print(closing_line(outputs.database.role, outputs.database.schema))
    elif unconfirmed:
        print(f"isolation NOT confirmed: {', '.join(unconfirmed)} did not run")
    elif not works:
        print("isolation NOT confirmed: a role cannot work in its own schema (see above)")
    else:
        print("isolation NOT confirmed: see the findings above")
    return 0 if works and isolated else 1


def probe_tenants(result, outputs) -> list[ProbeResult]:
    """Each tenant role, logged in with its stored password, works in its own schema (printed)."""
    if not outputs.database.tenants:
        return []
    logins = stored_logins(result.run)
    print(f"as each of the {len(outputs.database.tenants)} tenant roles (real logins):")
    probes = []
    for tenant in outputs.database.tenants:
        role = tenant_role(tenant)
        login = replace(result.db.admin, user=role, password=logins.get(role), passfile=None)
        probe = probe_work_in_schema(login, tenant_schema(tenant))
        print(f"  {'PASS' if probe.passed else 'FAIL'}  {role}: {probe.name}: {probe.evidence}")
        probes.append(probe)
    return probes


def _not_run(report) -> list[str]:
    """The isolation families (and the residual one) with a check that did not run."""
    ran = (Status.PASS, Status.INFO, Status.FAIL)
    return [family for family in (*CONFIRMED_BY, "residual")
            if any(r.status not in ran for r in report.results if r.family == family)
            or not any(r.family == family for r in report.results)]


def closing_line(role: str, schema: str) -> str:
    """`isolation confirmed: <what the checks proved>; <what no grant closes>`."""
    proved = ", ".join(claim.format(role=role, schema=schema) for claim in CONFIRMED_BY.values())
    return f"isolation confirmed: {proved}; {residual.closing_summary()}"
