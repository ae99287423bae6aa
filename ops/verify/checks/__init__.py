"""The checks of `ops.verify`, grouped in families that each load their data once.

| family       | runs as                 | data                                           |
| ------------ | ----------------------- | ---------------------------------------------- |
| roles        | admin/auditor or umami  | principals query                               |
| memberships  | admin/auditor or umami  | principals query                               |
| privileges   | admin/auditor or umami  | relation-ACL and object-ACL queries            |
| ownership    | admin/auditor or umami  | pg_shdepend query                              |
| defaults     | admin/auditor or umami  | default-privileges query                       |
| desired      | admin/auditor or umami  | the principals, object-ACL and default-        |
|              |                         | privileges queries, against privilege_model.py |
| reverse      | admin/auditor or umami  | the same principals and ACL queries            |
| residual     | admin/auditor or umami  | its own two: sessions and locks; function and  |
|              |                         | view bodies (what no grant can prevent)        |
| tenants      | admin/auditor or umami  | the principals and default-privileges queries, |
|              |                         | the registry, then at most 4 of its own: every |
|              |                         | principal against every isolated schema        |
| probes       | umami (real login)      | live attempts, rolled back                     |
| schema       | umami (real login)      | Umami's tables, _prisma_migrations, pgcrypto   |
| secret       | Secrets Manager + login | the credentials document                       |
| connections  | admin/auditor or umami, | the role's limit and sessions; ECS and         |
|              | AWS APIs, umami login   | autoscaling ceilings; a login at the reader    |
| deployment   | AWS APIs + HTTP         | ECS, ELBv2, EC2, CloudWatch Logs, Umami's API  |
| destroy      | admin/auditor or umami  | pg_depend, pg_shdepend: what a destroy reaches |
|              | (only with --only)      | outside the schema and role                    |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ops.verify.checks import (
    connections, defaults, deployment, desired, destroy, memberships, ownership, privileges, probes, residual, reverse,
    roles, schema_state, secret, tenants,
)
from ops.verify.checks.base import Check, NotApplicable
from ops.verify.checks.context import Context
from ops.core.db import redact_url


@dataclass(frozen=True)
class Family:
    """Checks that share one data source and run as the same role."""

    name: str
    title: str
    checks: tuple[Check, ...]
    load: Callable[[Context], Any]
    ran_as: Callable[[Context], str]
    opt_in: bool = False  # runs only when named in --only (never in the default run)


def _catalog(ctx: Context):
    return ctx.catalog


def _residual(ctx: Context) -> residual.ResidualData:
    # Its own queries, outside the catalog audit's count.
    return residual.load(ctx.audit_conn, ctx.outputs.database.schema, ctx.outputs.database.role)


def _tenants(ctx: Context) -> tenants.Matrix:
    db = ctx.outputs.database
    return tenants.load_matrix(ctx.catalog, tenants=db.tenants, registry=db.tenant_registry,
                               service_role=db.tenant_service_role)


def _probe_session(ctx: Context) -> probes.ProbeSession:
    app_roles = [r.name for r in ctx.catalog.principals.app_roles]
    return probes.ProbeSession(ctx.umami_conn, ctx.outputs.database.schema, app_roles, ctx.probe_sample)


def _schema_state(ctx: Context) -> schema_state.SchemaState:
    return schema_state.load_state(ctx.umami_conn, ctx.outputs.database.schema, ctx.umami_version)


def _secret(ctx: Context) -> secret.SecretData:
    if ctx.secret is None:
        raise NotApplicable("rehearsal: the secret lives in Secrets Manager, which a rehearsal does not reach"
                            if ctx.outputs.rehearsal else ctx.secret_reason or "no credentials secret to check")
    return secret.SecretData(source=ctx.secret.label, document=ctx.secret.document, outputs=ctx.outputs,
                             login_target=ctx.umami)


def _deployment(ctx: Context) -> deployment.Deployment:
    return ctx.deployment


def _connections(ctx: Context) -> connections.ConnectionData:
    return connections.ConnectionData(ctx)


def _destroy(ctx: Context) -> destroy.DestroyData:
    return destroy.DestroyData(ctx.audit_conn, ctx.outputs.database.schema, ctx.outputs.database.role,
                               ctx.outputs.database.admin_role or (ctx.admin.user if ctx.admin else None),
                               ctx.outputs.database.drop_schema_cascade)


def _audit(ctx: Context) -> str:
    return ctx.audit_role()


def _umami(ctx: Context) -> str:
    return ctx.umami_role()


def _secret_as(ctx: Context) -> str:
    return f"{ctx.secret.label} (login as its username)" if ctx.secret else "-"


def _aws_as(ctx: Context) -> str:
    http = f"HTTP to {redact_url(ctx.url)}" if ctx.url else "HTTP to the service URL"
    if not ctx.include_aws:
        return f"{http} (no AWS)"
    return f"AWS APIs in {ctx.outputs.aws_region or 'the default region'} and {http}"


def _connections_as(ctx: Context) -> str:
    aws = "" if not ctx.include_aws else "; the ECS service and its autoscaling target"
    reader = f"; {ctx.umami.user} at {ctx.outputs.database.reader_host}" if ctx.outputs.database.reader_host else ""
    return f"{ctx.audit_role()}{aws}{reader}"


FAMILIES: tuple[Family, ...] = (
    Family("roles", "Role attributes", roles.CHECKS, _catalog, _audit),
    Family("memberships", "Role memberships", memberships.CHECKS, _catalog, _audit),
    Family("privileges", "Privileges outside the schema", privileges.CHECKS, _catalog, _audit),
    Family("ownership", "Ownership", ownership.CHECKS, _catalog, _audit),
    Family("defaults", "Default privileges", defaults.CHECKS, _catalog, _audit),
    Family("desired", "Desired state: what the stack grants is there", desired.CHECKS, desired.load, _audit),
    Family("reverse", "Reverse isolation (application roles)", reverse.CHECKS, _catalog, _audit),
    Family("residual", "What no grant can prevent", residual.CHECKS, _residual, _audit),
    Family("tenants", "Cross-tenant isolation", tenants.CHECKS, _tenants, _audit),
    Family("probes", "Live probes", probes.CHECKS, _probe_session, _umami),
    Family("schema", "Umami schema state", schema_state.CHECKS, _schema_state, _umami),
    Family("secret", "Credentials secret", secret.CHECKS, _secret, _secret_as),
    Family("connections", "Connection budget", connections.CHECKS, _connections, _connections_as),
    Family("deployment", "Deployment", deployment.CHECKS, _deployment, _aws_as),
    Family("destroy", "What a destroy reaches outside the schema", destroy.CHECKS, _destroy, _audit, opt_in=True),
)

ALL_CHECKS: dict[str, tuple[Family, Check]] = {c.id: (f, c) for f in FAMILIES for c in f.checks}
# What a run without --only selects: every family but the opt-in ones (destroy).
DEFAULT_CHECKS = frozenset(c.id for f in FAMILIES if not f.opt_in for c in f.checks)
# The families answered from the catalogs alone (the benchmark times exactly these).
CATALOG_FAMILIES = tuple(f for f in FAMILIES if f.load is _catalog)
