"""The stack outputs: the contract between the Pulumi program and `ops`, defined once.

`OUTPUTS` describes every output (key, Python type, whether it may be absent, meaning),
grouped as the program exports them; `export` is what `__main__.py` exports through;
`parse` turns `pulumi stack output --json` (or the rehearsal's outputs.json) into the
typed, frozen `StackOutputs` that `ops` reads, and is the only place that reads an
output by its key. README's "Stack outputs" table lists the same rows
(tests/unit/test_contract.py checks it; `python -m contract` prints the table).

Standard library only: the program, `ops` and the policy pack all import it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping

from facts import DEFAULT_SSL_MODE, LIBPQ_SSL_MODES, SECRET_MASK

CONTRACT_VERSION = 1

# The groups, in export order. `stack`, `database` and `secrets` are exported by every stack;
# `service` and `monitoring` only when the stack runs the service (umami:deployService, the
# default); `rehearsal` only by the offline rehearsal (ops.rehearse), never by the program.
GROUPS = ("stack", "database", "secrets", "service", "monitoring", "rehearsal")
PROGRAM_GROUPS = GROUPS[:-1]

BUDGET_FIELDS = ("poolSize", "poolsPerTask", "maxTasks", "migrationConnections", "opsHeadroom", "total")


class ContractError(ValueError):
    """Outputs that do not satisfy the contract; the message is one line naming the source and key."""


@dataclass(frozen=True)
class Output:
    """One stack output."""

    key: str
    group: str
    type: Any            # the Python type of its value: str, int, bool, list[str] or dict[str, int]
    optional: bool       # may be absent: the program exports null for it (Pulumi drops null outputs)
    meaning: str         # one line, as in README's table
    required: bool = False  # ops refuses outputs without it (every other key was added within version 1)
    items: str = ""      # what a list holds, for error messages

    @property
    def type_name(self) -> str:
        return self.type.__name__ if isinstance(self.type, type) else str(self.type)


def _out(group: str, key: str, type_: Any, meaning: str, *, optional: bool = False, required: bool = False,
         items: str = "") -> Output:
    return Output(key, group, type_, optional, meaning, required, items)


OUTPUTS: tuple[Output, ...] = (
    _out("stack", "contractVersion", int, "`1`, the version of this contract", required=True),
    _out("stack", "environment", str, "environment name"),
    _out("stack", "awsRegion", str, "region of the stack"),

    _out("database", "dbHost", str, "the Aurora endpoint (writer)", required=True),
    _out("database", "dbPort", int, "its port", required=True),
    _out("database", "dbName", str, "the database", required=True),
    _out("database", "dbSslMode", str, "the libpq `sslmode` every client uses"),
    _out("database", "dbCaBundle", str,
         "the CA certificates (PEM) clients verify the server with; absent with `disable`", optional=True),
    _out("database", "dbReaderHost", str, "the reader endpoint, when configured", optional=True),
    _out("database", "dbPoolSize", int, "connections per Umami pool"),
    _out("database", "dbConnectionLimit", int, "the role's `CONNECTION LIMIT`"),
    _out("database", "dbConnectionBudget", dict[str, int],
         "`{poolSize, poolsPerTask, maxTasks, migrationConnections, opsHeadroom, total}`"),
    _out("database", "dbStatementTimeoutMs", int, "the role's `statement_timeout` in ms (0: none)"),
    _out("database", "dbIdleInTransactionTimeoutMs", int,
         "the role's `idle_in_transaction_session_timeout` in ms (0: none)"),
    _out("database", "dbSchema", str, "the umami schema", required=True),
    _out("database", "dbRole", str, "the umami role", required=True),
    _out("database", "dbAdminRole", str, "the admin role the provider uses (owner of the schema)"),
    _out("database", "dbDropSchemaCascade", bool,
         "`true` when a destroy drops the schema with its contents (`umami:dropSchemaCascade`); absent otherwise",
         optional=True),
    _out("database", "applicationRoles", list[str], "configured application roles (empty: discovered)",
         items="role names"),
    _out("database", "tenants", list[str], "declared tenant names (`umami:tenants`); each has schema and role "
         "`tenant_<name>`", items="tenant names"),
    _out("database", "tenantRegistry", str, "the tenant registry table, `schema.table`, when configured",
         optional=True),
    _out("database", "tenantServiceRole", str, "the role that may read the tenant registry, when configured",
         optional=True),
    _out("database", "auroraClusterIdentifier", str,
         "the Aurora cluster, set or taken from `dbHost`; for alarms and metrics", optional=True),
    _out("database", "auroraInstanceIdentifiers", list[str], "the Aurora instances, for alarms and metrics",
         items="instance identifiers"),
    _out("database", "dbMaxConnections", int, "Aurora's `max_connections`, for alarms and metrics"),

    _out("secrets", "dbSecretArn", str, "the credentials secret", required=True),
    _out("secrets", "dbSecretName", str, "its name"),
    _out("secrets", "appSecretArn", str, "the `APP_SECRET` secret"),
    _out("secrets", "adminSecretArn", str, "the admin secret, when configured", optional=True),
    _out("secrets", "umamiAdminSecretArn", str,
         "Umami's `admin` login `{username, password, passwordHash}`; absent for a database-only stack",
         optional=True),
    _out("secrets", "umamiAdminSecretName", str, "its name, `observability/umami-admin`", optional=True),

    _out("service", "ecsClusterName", str, "the cluster (created or existing)"),
    _out("service", "ecsClusterArn", str, "its ARN"),
    _out("service", "ecsServiceName", str, "`umami-ENV`"),
    _out("service", "taskDefinitionFamily", str, "`umami-ENV`"),
    _out("service", "targetGroupArn", str, "the target group"),
    _out("service", "targetGroupArnSuffix", str, "`targetgroup/NAME/ID`, CloudWatch's dimension"),
    _out("service", "loadBalancerArnSuffix", str, "`app/NAME/ID`, CloudWatch's dimension"),
    _out("service", "albDnsName", str, "the ALB's DNS name"),
    _out("service", "url", str, "`https://<domainName>` with a certificate, else `http://<albDnsName>`"),
    _out("service", "logGroupName", str, "`/ecs/umami-ENV`"),
    _out("service", "albSecurityGroupId", str, "the ALB's security group"),
    _out("service", "taskSecurityGroupId", str, "the tasks' security group"),
    _out("service", "umamiVersion", str,
         "e.g. `3.1.0`, from the image tag; absent for a digest-only or moving reference", optional=True),
    _out("service", "httpsWarning", str, "a sentence when no certificate is configured; absent otherwise",
         optional=True),
    _out("service", "retentionDays", int,
         "days of events the nightly retention job keeps (`umami:retentionDays`; 0: everything)"),
    _out("service", "retentionScheduleName", str,
         "the EventBridge Scheduler schedule of the retention job, `umami-ENV-retention`; absent when it is off",
         optional=True),

    _out("monitoring", "alarmNames", list[str], "the stack's alarm names", items="alarm names"),
    _out("monitoring", "alarmTopicArn", str, "the SNS topic"),
    _out("monitoring", "dashboardName", str, "`umami-ENV`"),

    _out("rehearsal", "rehearsal", bool, "`true`: written by the offline rehearsal"),
    _out("rehearsal", "rehearsalPassfile", str, "the rehearsal's libpq passfile"),
)
BY_KEY: dict[str, Output] = {o.key: o for o in OUTPUTS}
KEYS = tuple(BY_KEY)


def group_keys(group: str) -> tuple[str, ...]:
    if group not in GROUPS:
        raise ContractError(f"no output group {group!r} (groups: {', '.join(GROUPS)})")
    return tuple(o.key for o in OUTPUTS if o.group == group)


# -- the program's side ------------------------------------------------------------------------

def export(export_output: Callable[[str, Any], None], **groups: Mapping[str, Any] | None) -> None:
    """Export each group's values with `export_output` (pulumi.export).

    A group passed as None is not exported at all (a database-only stack has no service).
    Each group given must hold exactly its keys; an optional output's value may be None,
    which Pulumi drops, so the output is absent, as the contract says it may be.
    """
    for group, values in groups.items():
        if group not in PROGRAM_GROUPS:
            raise ContractError(f"the program exports no group {group!r} (groups: {', '.join(PROGRAM_GROUPS)})")
        if values is None:
            continue
        expected = group_keys(group)
        unknown = [k for k in values if k not in expected]
        missing = [k for k in expected if k not in values]
        if unknown or missing:
            raise ContractError(f"group {group}: " + "; ".join(
                part for part in (unknown and f"not in the contract: {', '.join(unknown)}",
                                  missing and f"missing: {', '.join(missing)}") if part))
        for key in expected:
            export_output(key, values[key])


# -- the typed outputs ops reads -------------------------------------------------------------

@dataclass(frozen=True)
class ConnectionBudget:
    """The connections the stack sized the role's CONNECTION LIMIT for (output dbConnectionBudget)."""

    pool_size: int
    pools_per_task: int
    max_tasks: int
    migration_connections: int
    ops_headroom: int
    total: int

    def as_output(self) -> dict[str, int]:
        return dict(zip(BUDGET_FIELDS, (getattr(self, f.name) for f in fields(self))))


@dataclass(frozen=True)
class DatabaseOutputs:
    host: str
    port: int
    name: str
    schema: str
    role: str
    sslmode: str = DEFAULT_SSL_MODE
    ca_bundle: str | None = None  # PEM text of the CA that signs the server's certificate
    reader_host: str | None = None
    pool_size: int | None = None
    connection_limit: int | None = None
    connection_budget: ConnectionBudget | None = None
    statement_timeout_ms: int | None = None
    idle_in_transaction_timeout_ms: int | None = None
    admin_role: str | None = None
    drop_schema_cascade: bool | None = None  # None: not in the outputs (false by default)
    application_roles: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()  # declared tenant names: schema and role facts.tenant_schema/tenant_role(name)
    tenant_registry: str | None = None  # "schema.table" of the registry (id, name, schema_name, active)
    tenant_service_role: str | None = None
    aurora_cluster_identifier: str | None = None
    aurora_instance_identifiers: tuple[str, ...] = ()
    max_connections: int | None = None


@dataclass(frozen=True)
class SecretsOutputs:
    db_secret_arn: str
    db_secret_name: str | None = None
    app_secret_arn: str | None = None
    admin_secret_arn: str | None = None
    umami_admin_secret_arn: str | None = None
    umami_admin_secret_name: str | None = None


@dataclass(frozen=True)
class ServiceOutputs:
    """The service group; fields are None when absent (outputs may carry only part of it)."""

    ecs_cluster_name: str | None = None
    ecs_cluster_arn: str | None = None
    ecs_service_name: str | None = None
    task_definition_family: str | None = None
    target_group_arn: str | None = None
    target_group_arn_suffix: str | None = None
    load_balancer_arn_suffix: str | None = None
    alb_dns_name: str | None = None
    url: str | None = None
    log_group_name: str | None = None
    alb_security_group_id: str | None = None
    task_security_group_id: str | None = None
    umami_version: str | None = None
    https_warning: str | None = None
    retention_days: int | None = None
    retention_schedule_name: str | None = None


@dataclass(frozen=True)
class MonitoringOutputs:
    alarm_names: tuple[str, ...] = ()
    alarm_topic_arn: str | None = None
    dashboard_name: str | None = None


@dataclass(frozen=True)
class StackOutputs:
    """The parsed outputs; `service` and `monitoring` are None for a database-only stack."""

    contract_version: int
    database: DatabaseOutputs
    secrets: SecretsOutputs
    environment: str | None = None
    aws_region: str | None = None
    service: ServiceOutputs | None = None
    monitoring: MonitoringOutputs | None = None
    rehearsal: bool = False
    rehearsal_passfile: str | None = None


# Output key -> (the dataclass of its group, its field there); contractVersion and the
# stack and rehearsal keys are fields of StackOutputs itself.
_FIELDS = {
    "contractVersion": "contract_version", "environment": "environment", "awsRegion": "aws_region",
    "dbHost": "host", "dbPort": "port", "dbName": "name", "dbSslMode": "sslmode", "dbCaBundle": "ca_bundle",
    "dbReaderHost": "reader_host", "dbPoolSize": "pool_size", "dbConnectionLimit": "connection_limit",
    "dbConnectionBudget": "connection_budget", "dbStatementTimeoutMs": "statement_timeout_ms",
    "dbIdleInTransactionTimeoutMs": "idle_in_transaction_timeout_ms", "dbSchema": "schema", "dbRole": "role",
    "dbAdminRole": "admin_role", "dbDropSchemaCascade": "drop_schema_cascade",
    "applicationRoles": "application_roles", "tenants": "tenants", "tenantRegistry": "tenant_registry",
    "tenantServiceRole": "tenant_service_role", "auroraClusterIdentifier": "aurora_cluster_identifier",
    "auroraInstanceIdentifiers": "aurora_instance_identifiers", "dbMaxConnections": "max_connections",
    "dbSecretArn": "db_secret_arn", "dbSecretName": "db_secret_name", "appSecretArn": "app_secret_arn",
    "adminSecretArn": "admin_secret_arn", "umamiAdminSecretArn": "umami_admin_secret_arn",
    "umamiAdminSecretName": "umami_admin_secret_name",
    "ecsClusterName": "ecs_cluster_name", "ecsClusterArn": "ecs_cluster_arn", "ecsServiceName": "ecs_service_name",
    "taskDefinitionFamily": "task_definition_family", "targetGroupArn": "target_group_arn",
    "targetGroupArnSuffix": "target_group_arn_suffix", "loadBalancerArnSuffix": "load_balancer_arn_suffix",
    "albDnsName": "alb_dns_name", "url": "url", "logGroupName": "log_group_name",
    "albSecurityGroupId": "alb_security_group_id", "taskSecurityGroupId": "task_security_group_id",
    "umamiVersion": "umami_version", "httpsWarning": "https_warning",
    "retentionDays": "retention_days", "retentionScheduleName": "retention_schedule_name",
    "alarmNames": "alarm_names", "alarmTopicArn": "alarm_topic_arn", "dashboardName": "dashboard_name",
    "rehearsal": "rehearsal", "rehearsalPassfile": "rehearsal_passfile",
}
assert set(_FIELDS) == set(KEYS), "every output has a field"

# The minimum for each integer output (dbConnectionLimit -1: no limit).
_MINIMUM = {"dbPort": 1, "dbPoolSize": 1, "dbConnectionLimit": -1}


def _whole(value: Any, key: str, source: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not re.fullmatch(r"-?\d+", str(value).strip()):
        raise ContractError(f"{source}: {key}={value!r} is not a whole number")
    if int(value) < minimum:
        raise ContractError(f"{source}: {key}={value!r} is below {minimum}")
    return int(value)


def _budget(value: Any, source: str) -> ConnectionBudget:
    if not isinstance(value, dict):
        raise ContractError(f"{source}: dbConnectionBudget must be an object with {', '.join(BUDGET_FIELDS)}")
    missing = [key for key in BUDGET_FIELDS if key not in value]
    if missing:
        raise ContractError(f"{source}: dbConnectionBudget lacks {', '.join(missing)}")
    return ConnectionBudget(*(_whole(value[key], key, f"{source}: dbConnectionBudget") for key in BUDGET_FIELDS))


def _value(output: Output, value: Any, source: str) -> Any:
    """The typed value of one present, non-null output."""
    key = output.key
    if isinstance(value, str) and value == SECRET_MASK:
        raise ContractError(f"{source}: output {key} is a secret; it must be exported in plain text")
    if key == "dbConnectionBudget":
        return _budget(value, source)
    if output.type is int:
        return _whole(value, key, source, _MINIMUM.get(key, 0))
    if output.type is bool:
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if not isinstance(value, bool):
            raise ContractError(f"{source}: {key}={value!r} is not true or false")
        return value
    if output.type == list[str]:
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            raise ContractError(f"{source}: {key}={value!r} must be a list of {output.items or 'strings'}")
        return tuple(value)
    if not isinstance(value, str):
        raise ContractError(f"{source}: {key} must be a string, not {type(value).__name__}")
    return value if value or output.required else None


def parse(data: Any, source: str) -> StackOutputs:
    """Validate `data` (the outputs as JSON) against the contract; raise ContractError naming source and key.

    Absent and null outputs read as None (Pulumi drops null outputs); keys outside the contract are ignored.
    """
    if not isinstance(data, dict):
        raise ContractError(f"{source}: stack outputs must be a JSON object")
    missing = [o.key for o in OUTPUTS if o.required and o.key not in data]
    if missing:
        raise ContractError(f"{source}: missing output(s) {', '.join(missing)} (is this an Umami stack?)")
    version = data["contractVersion"]
    if version != CONTRACT_VERSION:
        raise ContractError(f"{source}: contractVersion={version!r}, "
                            f"this ops package reads version {CONTRACT_VERSION}")
    values: dict[str, dict[str, Any]] = {group: {} for group in GROUPS}
    for output in OUTPUTS:
        value = data.get(output.key)
        if value is None:
            if output.required:
                raise ContractError(f"{source}: output {output.key} is null")
            continue
        typed = _value(output, value, source)
        if typed is not None:
            values[output.group][_FIELDS[output.key]] = typed
    database = values["database"]
    database["sslmode"] = database.get("sslmode") or DEFAULT_SSL_MODE
    if database["sslmode"] not in LIBPQ_SSL_MODES:
        raise ContractError(f"{source}: dbSslMode={database['sslmode']!r} is not a libpq sslmode "
                            f"({', '.join(LIBPQ_SSL_MODES)})")
    if "-----BEGIN CERTIFICATE-----" not in database.get("ca_bundle", "-----BEGIN CERTIFICATE-----"):
        raise ContractError(f"{source}: dbCaBundle holds no PEM certificate")
    service, monitoring = values["service"], values["monitoring"]
    return StackOutputs(
        database=DatabaseOutputs(**database),
        secrets=SecretsOutputs(**values["secrets"]),
        service=ServiceOutputs(**service) if service else None,
        monitoring=MonitoringOutputs(**monitoring) if monitoring else None,
        **values["stack"], **values["rehearsal"],
    )


# -- the README table --------------------------------------------------------------------------

def table_rows() -> list[tuple[str, str, str, str]]:
    """(output, type, may be absent, meaning) for each output, as README's table shows them."""
    def absent(output: Output) -> str:
        if output.group == "rehearsal":
            return "rehearsal only"
        if output.optional:
            return "yes"
        return "database-only stack" if output.group in ("service", "monitoring") else "no"
    return [(f"`{o.key}`", f"`{o.type_name}`", absent(o), o.meaning) for o in OUTPUTS]


TABLE_HEADER = ("output", "type", "absent", "meaning")


def markdown_table() -> str:
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + " --- |" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
