"""What a verification run works with: the outputs, the logins, and connections opened on demand.

Connections are opened only when a selected check needs them, read-only, with
statement and lock timeouts (ops.core.db.connect). The catalog audit runs as the
admin/auditor when one is available, on two of its sessions, otherwise as the umami
role itself on one (every catalog it reads is readable by any role). A statement that
fails leaves its connection usable for the next family: `recover()` rolls back what is
left open and drops a connection that broke, so the next use opens a new one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import psycopg
from psycopg.pq import TransactionStatus

from ops.verify.checks.base import NotApplicable
from ops.verify.checks.catalog import Catalog
from ops.verify.checks.deployment import Deployment, ServiceOutputs
from ops.core.db import Target, connect
from ops.core.errors import OpsError
from ops.core.outputs import StackOutputs


# Whether the current user sees the details (backend type, state, query, client) of a role's
# sessions in pg_stat_activity: PostgreSQL shows them to that role's members and pg_read_all_stats.
SESSION_DETAILS_SQL = """
SELECT pg_has_role('pg_read_all_stats', 'USAGE') OR pg_has_role(r.oid, 'USAGE')
FROM pg_roles r WHERE r.rolname = %(role)s
"""


class LoginUnavailable(Exception):
    """The umami role cannot log in while the audit can (NOLOGIN, an expired or wrong password):
    the checks that need that login cannot be answered, every other check still is."""


@dataclass(frozen=True)
class SecretSource:
    """The credentials document to check and where it came from (never printed)."""

    label: str
    document: Mapping[str, Any]


@dataclass
class Context:
    """One run's inputs and the connections opened for it (close() them at the end)."""

    outputs: StackOutputs
    umami: Target
    admin: Target | None
    include_aws: bool
    secret: SecretSource | None = None
    umami_source: str = ""
    admin_source: str = ""
    http_timeout: float = 10.0
    probe_sample: int = 20
    url: str | None = None  # --url: where Umami answers, instead of the outputs' url
    secret_reason: str = ""  # why there is no secret document to check
    tunnel: bool = False  # --db-host/--db-port: the database is reached through a tunnel
    _connections: dict[str, psycopg.Connection] = field(default_factory=dict)
    _catalog: Catalog | None = None
    _deployment: Deployment | None = None

    # -- connections -------------------------------------------------------------
    def _open(self, name: str, target: Target) -> psycopg.Connection:
        if name not in self._connections:
            conn = connect(target)
            conn.autocommit = True  # every unit of work opens its own (read-only) transaction
            self._connections[name] = conn
        return self._connections[name]

    @property
    def umami_conn(self) -> psycopg.Connection:
        if self.admin is None:
            return self._open("umami", self.umami)  # no other login: without this one nothing can run
        try:
            return self._open("umami", self.umami)
        except OpsError as exc:
            raise LoginUnavailable(f"{self.umami.user} cannot log in: {exc}") from None

    def recover(self) -> None:
        """After a failed statement: end any transaction left open, and drop a connection that
        broke (the next use opens a new one; if that fails, the run stops with OpsError)."""
        for name, conn in list(self._connections.items()):
            if not _back_to_idle(conn):
                conn.close()
                del self._connections[name]

    @property
    def catalog(self) -> Catalog:
        if self._catalog is not None and self._catalog.conn.closed:
            self._catalog.conn = self.audit_conn  # its connection broke: go on with a new one
        if self._catalog is None:
            db = self.outputs.database
            # A second session of the admin reads one of the two large catalogs meanwhile; umami's own
            # sessions are never doubled (its connection limit and the live-connection count).
            self._catalog = Catalog(self.audit_conn, schema=db.schema, umami_role=db.role,
                                    admin_role=db.admin_role or (self.admin.user if self.admin else None),
                                    app_roles=db.application_roles,
                                    second_session=self._second_audit_session if self.admin else None)
        return self._catalog

    def _second_audit_session(self) -> psycopg.Connection:
        return self._open("admin, second session", self.admin)

    @property
    def audit_conn(self) -> psycopg.Connection:
        """The admin/auditor's connection when there is one, else umami's."""
        return self._open("admin", self.admin) if self.admin else self.umami_conn

    def audit_sees_session_details(self, role: str) -> bool | None:
        """Whether the audit's login sees the details of `role`'s sessions (None: no such role)."""
        with self.audit_conn.transaction(force_rollback=True):
            row = self.audit_conn.execute(SESSION_DETAILS_SQL, {"role": role}).fetchone()
        return None if row is None else bool(row[0])

    @property
    def no_aws_reason(self) -> str | None:
        if self.include_aws:
            return None
        return "rehearsal: nothing is deployed on AWS" if self.outputs.rehearsal else "AWS checks not requested (--no-aws)"

    @property
    def deployment(self) -> Deployment:
        """The service's AWS answers and HTTP endpoints, shared by the families that need them."""
        if self._deployment is None:
            if self.outputs.rehearsal and not self.url:  # its outputs' url names no real service
                raise NotApplicable(f"{self.no_aws_reason} (pass --url to check Umami's endpoints)")
            service = ServiceOutputs.from_outputs(self.outputs, url=self.url)
            if not service.present:
                raise NotApplicable("the outputs describe no service (a database-only stack)")
            self._deployment = Deployment(service, self.outputs.aws_region, self.http_timeout,
                                          no_aws=self.no_aws_reason)
        return self._deployment

    @property
    def catalog_if_used(self) -> Catalog | None:
        """The catalog audit, when a selected check needed it (for the report's query count)."""
        return self._catalog

    def close(self) -> None:
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()

    # -- labels ------------------------------------------------------------------
    def audit_role(self) -> str:
        if self.admin:
            return f"{self.admin.user} (admin/auditor, {self.admin_source})" if self.admin_source else self.admin.user
        return f"{self.umami.user} (no admin login available)"

    def umami_role(self) -> str:
        return f"{self.umami.user} (real login, {self.umami_source})" if self.umami_source else self.umami.user

    @property
    def umami_version(self) -> str | None:
        """The deployed Umami version (output umamiVersion), None for a database-only stack."""
        service = self.outputs.service
        return service.umami_version if service and service.umami_version else None


def _back_to_idle(conn: psycopg.Connection) -> bool:
    """Whether `conn` is idle, after rolling back a transaction a failure left open."""
    if conn.closed:
        return False
    status = conn.info.transaction_status
    if status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
        try:
            conn.rollback()
        except psycopg.Error:
            return False
        return conn.info.transaction_status == TransactionStatus.IDLE
    return status == TransactionStatus.IDLE
