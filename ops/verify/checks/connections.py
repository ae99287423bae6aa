"""The umami role's connection budget: live use, the limit against the service's ceiling,
and the reader endpoint.

Umami 3.1 opens a node-postgres pool of up to `poolSize` connections per client (two
clients with a replica URL), and a rolling deployment or a scale-out runs more tasks
at once than usual. When the role's CONNECTION LIMIT is below what those tasks open,
the next deployment fails with SQLSTATE 53300 "too many connections for role".
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from types import MappingProxyType

import psycopg

from ops.verify.checks.base import Finding, NotApplicable, Severity, declare
from ops.verify.checks.context import Context
from ops.verify.checks.deployment import DEFAULT_MAXIMUM_PERCENT
from ops.core.db import APPLICATION_NAME, connect, one_line
from ops.core.errors import OpsError
from ops.core.outputs import ConnectionBudget

WARN_SHARE = 0.8
# The stack's defaults, for outputs written before dbConnectionBudget existed.
DEFAULT_POOL_SIZE = 10  # node-postgres' pg.Pool max, which Umami 3.1 does not change
MIGRATION_CONNECTIONS = 1  # Prisma's migration engine at container start
OPS_HEADROOM = 3  # ops.verify / ops.metrics as the umami role

USAGE_SQL = """
SELECT r.rolconnlimit,
       count(a.pid) FILTER (WHERE a.application_name IS DISTINCT FROM %(ops)s) AS umami_sessions,
       count(a.pid) FILTER (WHERE a.application_name = %(ops)s) AS ops_sessions
FROM pg_roles r
-- backend_type is NULL for sessions the auditor may not inspect: count them (fail closed), as ops.metrics does.
LEFT JOIN pg_stat_activity a ON a.usesysid = r.oid AND (a.backend_type IS NULL OR a.backend_type = 'client backend')
WHERE r.rolname = %(role)s
GROUP BY r.rolconnlimit
"""


@dataclass(frozen=True)
class RoleUsage:
    role: str
    limit: int  # -1: no limit
    umami_sessions: int  # every session of the role except ops' own
    ops_sessions: int


@dataclass(frozen=True)
class TaskCeiling:
    """The most tasks the service can run at once."""

    max_capacity: int
    capacity_source: str
    maximum_percent: int

    @property
    def tasks(self) -> int:
        # ECS rounds maximumPercent of the desired count down; never fewer than the capacity itself.
        return max(self.max_capacity, self.max_capacity * self.maximum_percent // 100)

    def describe(self) -> str:
        return f"{self.capacity_source} {self.max_capacity} x maximumPercent {self.maximum_percent} %"


class ConnectionData:
    """The family's answers, each fetched when a selected check first needs it."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.outputs = ctx.outputs

    @cached_property
    def usage(self) -> RoleUsage:
        with self.ctx.audit_conn.transaction(force_rollback=True):
            row = self.ctx.audit_conn.execute(USAGE_SQL, {"ops": APPLICATION_NAME,
                                                          "role": self.outputs.database.role}).fetchone()
        if row is None:
            raise NotApplicable(f"role {self.outputs.database.role} does not exist")
        return RoleUsage(self.outputs.database.role, row[0], row[1], row[2])

    @cached_property
    def ceiling(self) -> TaskCeiling:
        if self.ctx.no_aws_reason:
            raise NotApplicable(self.ctx.no_aws_reason)
        deployment = self.ctx.deployment
        service = deployment.service
        if service is None:
            raise NotApplicable(f"service {deployment.outputs.service} not found (see DEP-001)")
        target = deployment.scalable_target
        if target is not None:
            capacity, source = int(target["MaxCapacity"]), "autoscaling max"
        else:
            capacity, source = int(service.get("desiredCount") or 1), "desired count (no autoscaling)"
        percent = (service.get("deploymentConfiguration") or {}).get("maximumPercent") or DEFAULT_MAXIMUM_PERCENT
        return TaskCeiling(capacity, source, int(percent))

    @property
    def budget(self) -> ConnectionBudget:
        """The stack's budget from the outputs, else the stack's defaults."""
        if self.outputs.database.connection_budget:
            return self.outputs.database.connection_budget
        pool = self.outputs.database.pool_size or DEFAULT_POOL_SIZE
        pools = 2 if self.outputs.database.reader_host else 1
        return ConnectionBudget(pool, pools, 0, MIGRATION_CONNECTIONS, OPS_HEADROOM, 0)


def live_connections(data: ConnectionData) -> list[Finding]:
    usage = data.usage
    if usage.limit < 0:
        raise NotApplicable(f"{usage.role} has no CONNECTION LIMIT (ISO-006 reports that)")
    held = f"{usage.umami_sessions} of its {usage.limit} connections"
    ops = f"; ops sessions besides: {usage.ops_sessions}" if usage.ops_sessions else ""
    if usage.umami_sessions >= usage.limit:
        return [Finding(Severity.HIGH, usage.role, f"holds {held} (100 %): its next connection fails with "
                                                   f"SQLSTATE 53300 (too many connections for role){ops}")]
    if usage.umami_sessions >= WARN_SHARE * usage.limit:
        share = 100 * usage.umami_sessions / usage.limit
        return [Finding(Severity.MEDIUM, usage.role, f"holds {held} ({share:.0f} %, warning at "
                                                     f"{WARN_SHARE:.0%}){ops}")]
    return []


def limit_covers_ceiling(data: ConnectionData) -> list[Finding]:
    ceiling = data.ceiling  # AWS first: not applicable in a rehearsal, whatever the role
    usage = data.usage
    if usage.limit < 0:
        raise NotApplicable(f"{usage.role} has no CONNECTION LIMIT (ISO-006 reports that)")
    b = data.budget
    needed = b.pool_size * b.pools_per_task * ceiling.tasks + b.migration_connections + b.ops_headroom
    arithmetic = (f"pool {b.pool_size} x {b.pools_per_task} pool(s) per task x {ceiling.tasks} tasks "
                  f"({ceiling.describe()}) + {b.migration_connections} migration + {b.ops_headroom} ops = {needed}")
    findings = []
    if usage.limit < needed:
        findings.append(Finding(Severity.HIGH, usage.role, f"CONNECTION LIMIT {usage.limit} < {arithmetic}: the next "
                                "rolling deployment or scale-out fails with SQLSTATE 53300"))
    if b.max_tasks and b.max_tasks < ceiling.tasks:
        findings.append(Finding(Severity.MEDIUM, "dbConnectionBudget",
                                f"the stack budgeted {b.max_tasks} tasks at once, the service can run {ceiling.tasks}"))
    return findings  # a limit other than the stack's dbConnectionLimit is DES-004's finding


def reader_accepts_login(data: ConnectionData) -> list[Finding]:
    host = data.outputs.database.reader_host
    if not host:
        raise NotApplicable("no dbReaderHost: Umami has no replica URL")
    if data.ctx.tunnel:
        raise NotApplicable("--db-host/--db-port reach the writer only; check the reader from inside the VPC")
    umami = data.ctx.umami
    params = MappingProxyType({k: v for k, v in umami.params.items() if k != "hostaddr"})
    reader = replace(umami, host=host, params=params)  # same login, same TLS rules
    try:
        with connect(reader) as conn:
            found = conn.execute("SELECT to_regnamespace(%s) IS NOT NULL",
                                 (data.outputs.database.schema,)).fetchone()[0]
    except OpsError as exc:
        return [Finding(Severity.HIGH, f"reader {host}", f"the umami login is refused: {exc}")]
    except psycopg.Error as exc:
        return [Finding(Severity.HIGH, f"reader {host}", f"query failed: {one_line(exc)}")]
    if not found:
        return [Finding(Severity.HIGH, f"reader {host}",
                        f"schema {data.outputs.database.schema} does not exist there: "
                        "is this a reader of the same cluster?")]
    return []


CHECKS = declare("connections", {  # titles, severities, remediations: checks.toml
    "CON-001": live_connections, "CON-002": limit_covers_ceiling, "CON-003": reader_accepts_login,
})
