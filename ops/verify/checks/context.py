"""What a verification run works with: the outputs, the logins, and connections opened on demand.

Connections are opened only when a selected check needs them, read-only, with
statement and lock timeouts (ops.core.db.connect). The catalog audit runs as the
admin/auditor when one is available, otherwise as the umami role itself (every
catalog it reads is readable by any role).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import psycopg

from ops.verify.checks.base import NotApplicable
from ops.verify.checks.catalog import Catalog
from ops.verify.checks.deployment import Deployment, ServiceOutputs
from ops.core.db import Target, connect
from ops.core.outputs import StackOutputs


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
        return self._open("umami", self.umami)

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            db = self.outputs.database
            self._catalog = Catalog(self.audit_conn, schema=db.schema, umami_role=db.role,
                                    admin_role=db.admin_role or (self.admin.user if self.admin else None),
                                    app_roles=db.application_roles)
        return self._catalog

    @property
    def audit_conn(self) -> psycopg.Connection:
        """The admin/auditor's connection when there is one, else umami's."""
        return self._open("admin", self.admin) if self.admin else self.umami_conn

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
