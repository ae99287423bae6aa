"""The stack outputs: the contract between the Pulumi program and ops.

They come from `pulumi stack output --json --stack NAME` or from a JSON file of
the same shape (the rehearsal writes one). See README, "Stack outputs".
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops.db import SSL_MODES
from ops.errors import OpsError
from ops.jsonfile import read_json

CONTRACT_VERSION = 1
REQUIRED_KEYS = ("contractVersion", "dbHost", "dbPort", "dbName", "dbSchema", "dbRole", "dbSecretArn")
DEFAULT_SSL_MODE = "verify-full"  # what the stack defaults to; older outputs without dbSslMode get it too
BUDGET_KEYS = {"poolSize": "pool_size", "poolsPerTask": "pools_per_task", "maxTasks": "max_tasks",
               "migrationConnections": "migration_connections", "opsHeadroom": "ops_headroom", "total": "total"}


@dataclass(frozen=True)
class ConnectionBudget:
    """The connections the stack sized the role's CONNECTION LIMIT for (output dbConnectionBudget)."""

    pool_size: int
    pools_per_task: int
    max_tasks: int
    migration_connections: int
    ops_headroom: int
    total: int


@dataclass(frozen=True)
class StackOutputs:
    """Typed view of the outputs; `raw` keeps every key for optional parts (service, metrics)."""

    contract_version: int
    db_host: str
    db_port: int
    db_name: str
    db_schema: str
    db_role: str
    db_secret_arn: str
    db_secret_name: str | None = None
    db_admin_role: str | None = None
    db_sslmode: str = DEFAULT_SSL_MODE
    db_ca_bundle: str | None = None  # PEM text of the CA that signs the server's certificate
    db_reader_host: str | None = None
    db_connection_limit: int | None = None
    db_pool_size: int | None = None
    db_connection_budget: ConnectionBudget | None = None
    admin_secret_arn: str | None = None
    app_secret_arn: str | None = None
    application_roles: tuple[str, ...] = ()
    umami_version: str | None = None
    rehearsal: bool = False
    raw: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)


def _optional_int(data: dict, key: str, source: str, minimum: int = 0) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not re.fullmatch(r"-?\d+", str(value).strip()):
        raise OpsError(f"{source}: {key}={value!r} is not a whole number")
    if int(value) < minimum:
        raise OpsError(f"{source}: {key}={value!r} is below {minimum}")
    return int(value)


def _budget(data: dict, source: str) -> ConnectionBudget | None:
    value = data.get("dbConnectionBudget")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise OpsError(f"{source}: dbConnectionBudget must be an object with {', '.join(BUDGET_KEYS)}")
    missing = [key for key in BUDGET_KEYS if key not in value]
    if missing:
        raise OpsError(f"{source}: dbConnectionBudget lacks {', '.join(missing)}")
    return ConnectionBudget(**{name: _optional_int(value, key, f"{source}: dbConnectionBudget")
                               for key, name in BUDGET_KEYS.items()})


def _optional_str(data: dict, key: str, source: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise OpsError(f"{source}: {key} must be a string, not {type(value).__name__}")
    return value


def parse_outputs(data: Any, source: str) -> StackOutputs:
    if not isinstance(data, dict):
        raise OpsError(f"{source}: stack outputs must be a JSON object")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise OpsError(f"{source}: missing output(s) {', '.join(missing)} (is this an Umami stack?)")
    version = data["contractVersion"]
    if version != CONTRACT_VERSION:
        raise OpsError(f"{source}: contractVersion={version!r}, this ops package reads version {CONTRACT_VERSION}")
    for key in REQUIRED_KEYS[1:]:
        if data[key] == "[secret]":
            raise OpsError(f"{source}: output {key} is a secret; it must be exported in plain text")
    try:
        port = int(data["dbPort"])
    except (TypeError, ValueError):
        raise OpsError(f"{source}: dbPort={data['dbPort']!r} is not a port number") from None
    sslmode = data.get("dbSslMode") or DEFAULT_SSL_MODE
    if sslmode not in SSL_MODES:
        raise OpsError(f"{source}: dbSslMode={sslmode!r} is not a libpq sslmode ({', '.join(SSL_MODES)})")
    ca_bundle = _optional_str(data, "dbCaBundle", source)
    if ca_bundle is not None and "-----BEGIN CERTIFICATE-----" not in ca_bundle:
        raise OpsError(f"{source}: dbCaBundle holds no PEM certificate")
    roles = data.get("applicationRoles") or []
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise OpsError(f"{source}: applicationRoles must be a list of role names")
    return StackOutputs(
        contract_version=version,
        db_host=str(data["dbHost"]),
        db_port=port,
        db_name=str(data["dbName"]),
        db_schema=str(data["dbSchema"]),
        db_role=str(data["dbRole"]),
        db_secret_arn=str(data["dbSecretArn"]),
        db_secret_name=data.get("dbSecretName"),
        db_admin_role=data.get("dbAdminRole"),
        db_sslmode=sslmode,
        db_ca_bundle=ca_bundle,
        db_reader_host=_optional_str(data, "dbReaderHost", source),
        db_connection_limit=_optional_int(data, "dbConnectionLimit", source, minimum=-1),
        db_pool_size=_optional_int(data, "dbPoolSize", source, minimum=1),
        db_connection_budget=_budget(data, source),
        admin_secret_arn=data.get("adminSecretArn") or None,
        app_secret_arn=data.get("appSecretArn"),
        application_roles=tuple(roles),
        umami_version=data.get("umamiVersion"),
        rehearsal=bool(data.get("rehearsal", False)),
        raw=dict(data),
    )


def load_outputs_file(path: str | Path) -> StackOutputs:
    return parse_outputs(read_json(path, "outputs file"), str(path))


def load_stack_outputs(stack: str) -> StackOutputs:
    if shutil.which("pulumi") is None:
        raise OpsError("the pulumi CLI is not installed; pass --outputs FILE (pulumi stack output --json > FILE)")
    result = subprocess.run(
        ["pulumi", "stack", "output", "--json", "--stack", stack],
        capture_output=True, text=True, timeout=120,
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["unknown error"]
        raise OpsError(f"pulumi stack output --stack {stack} failed: {lines[-1]}")
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise OpsError(f"pulumi stack output --stack {stack} did not print JSON") from None
    return parse_outputs(data, f"stack {stack}")


def load(stack: str | None, outputs_file: str | None) -> StackOutputs:
    """Outputs from exactly one of --stack / --outputs."""
    if bool(stack) == bool(outputs_file):
        raise OpsError("pass exactly one of --stack NAME or --outputs FILE")
    return load_outputs_file(outputs_file) if outputs_file else load_stack_outputs(stack)
