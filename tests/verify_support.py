"""Shared helpers for the ops.verify tests: logins, outputs, injections, Umami 3.1-like migrations.

The migrations here create all 17 tables of Umami 3.1 plus `_prisma_migrations`, as the
umami role and with unqualified names, the way Prisma applies Umami's SQL.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Iterable

import psycopg

from ops.verify.checks.base import Severity, Status
from ops.core.db import Target
from ops.core.outputs import StackOutputs, parse_outputs
from ops.verify.report import Report
from ops.verify.runner import run_verification

# Who runs an injected statement: the bootstrap superuser, the Aurora-like admin, umami, the application.
SUPERUSER, ADMIN, UMAMI, APP = "superuser", "admin", "umami", "app"


def cluster_login(rehearsed, user: str, password: str, host: str = "127.0.0.1") -> Target:
    """A verified-TLS login to the test cluster (plain text if the cluster has no TLS)."""
    ca = getattr(rehearsed.aurora.cluster, "ca_file", None)
    return Target(host, rehearsed.aurora.port, rehearsed.aurora.dbname, user, password,
                  "verify-full" if ca else "disable", sslrootcert=str(ca) if ca else None)


def umami_target(rehearsed) -> Target:
    return cluster_login(rehearsed, rehearsed.umami.user, rehearsed.umami.password)


def admin_target(rehearsed) -> Target:
    admin = rehearsed.aurora.admin
    return cluster_login(rehearsed, admin.user, admin.password)


def outputs_of(rehearsed, **changes) -> StackOutputs:
    data = dict(rehearsed.outputs)
    data.update(changes)
    return parse_outputs(data, "test outputs")


def verify(rehearsed, *, as_admin: bool = True, outputs: StackOutputs | None = None,
           only: Iterable[str] = (), skip: Iterable[str] = ()) -> Report:
    return run_verification(outputs or outputs_of(rehearsed), umami=umami_target(rehearsed),
                            admin=admin_target(rehearsed) if as_admin else None, include_aws=False,
                            only=only, skip=skip)


def failing(report: Report, at: Severity = Severity.LOW) -> dict[str, list[str]]:
    """Check id -> evidence of its findings at or above `at`."""
    found = {}
    for result in report.results:
        shown = [f"{f.severity.label} {f.subject}: {f.evidence}" for f in result.findings if f.severity >= at]
        if result.status == Status.FAIL and shown:
            found[result.check.id] = shown
    return found


def error_line(stderr: str) -> str:
    """The one-line reason of a run that could not happen (exit 2): progress lines aside, exactly one
    `error:` line and no traceback."""
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def connect_as(rehearsed, who: str, dbname: str | None = None) -> psycopg.Connection:
    aurora = rehearsed.aurora
    if who == SUPERUSER:
        return aurora.superuser_conn(dbname)
    creds = {ADMIN: aurora.admin, UMAMI: rehearsed.umami, APP: aurora.app}[who]
    return aurora.cluster.connect(creds.user, creds.password, dbname or aurora.dbname, autocommit=True)


def inject(rehearsed, steps: Iterable[tuple[str, str]]) -> None:
    """Run each (who, statement) in the application database; `who@db` targets another database."""
    for who, statement in steps:
        role, _, dbname = who.partition("@")
        with connect_as(rehearsed, role, dbname or None) as conn:
            conn.execute(statement)


class JsonHandler(BaseHTTPRequestHandler):
    """A local HTTP stand-in's base: answers with a JSON body of a known length."""

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def passfile_only(rehearsed, monkeypatch):
    """Credentials as the rehearsal leaves them: its passfile, nothing else."""
    for key in ("UMAMI_DB_PASSWORD", "UMAMI_ADMIN_DSN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PGPASSFILE", str(rehearsed.pgpass))
    return rehearsed
