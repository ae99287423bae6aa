"""The stack configuration: read once from `pulumi.Config`, typed, and validated
before any resource is declared.

Every problem is reported as one line naming the key, the value and what is
allowed, e.g. `umami:dbPort=70000 is not a port; use 1-65535`. All problems
are collected and raised together as a `ConfigError`, which Pulumi prints
without a traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pulumi

NAMESPACE = "umami"

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
RESERVED_SCHEMAS = ("public", "information_schema")
RESERVED_ROLES = ("postgres", "rdsadmin", "public")
SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@!-]+$")
KMS_KEY = re.compile(
    r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key/[0-9a-f-]{36}|alias/[A-Za-z0-9/_-]+)"
    r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|alias/[A-Za-z0-9/_-]+)$"
)
RDS_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,62}$")
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_$]*$")
HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
TAG_KEY = re.compile(r"^[\w .:/=+@-]{1,128}$")
ENVIRONMENT = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
RESERVED_TAG_KEYS = ("Project", "Component", "Environment", "ManagedBy")


class ConfigError(pulumi.RunError):
    """Invalid stack configuration; the message holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class DatabaseConfig:
    """Where the existing Aurora PostgreSQL is, and what to create in it."""

    host: str
    port: int
    name: str
    sslmode: str
    admin_secret_arn: str | None
    admin_username: str | None
    admin_password: pulumi.Output[str] | None
    schema: str
    role: str
    connection_limit: int
    statement_timeout_ms: int
    idle_in_transaction_timeout_ms: int
    drop_schema_cascade: bool
    application_roles: tuple[str, ...]
    cluster_identifier: str | None
    instance_identifiers: tuple[str, ...]
    max_connections: int


@dataclass(frozen=True)
class SecretsConfig:
    """Names and encryption of the Secrets Manager secrets."""

    db_secret_name: str
    app_secret_name: str
    kms_key_id: str | None
    recovery_window_days: int


@dataclass(frozen=True)
class StackConfig:
    environment: str
    database: DatabaseConfig
    secrets: SecretsConfig
    protect: bool
    extra_tags: Mapping[str, str] = field(default_factory=dict)


class Reader:
    """Typed getters over one config namespace that record problems instead of raising."""

    def __init__(self, config: pulumi.Config):
        self.config = config
        self.problems: list[str] = []

    def key(self, name: str) -> str:
        return f"{self.config.name}:{name}"

    def fail(self, name: str, value: Any, allowed: str) -> None:
        self.problems.append(f"{self.key(name)}={value} {allowed}")

    def raw(self, name: str) -> str | None:
        value = self.config.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def string(self, name: str, default: str | None = None, *, required: bool = False,
               check: Callable[[str], str | None] | None = None) -> str | None:
        value = self.raw(name)
        if value is None:
            if required:
                self.problems.append(f"{self.key(name)} is required")
            return default
        if check:
            problem = check(value)
            if problem:
                self.fail(name, value, problem)
        return value

    def integer(self, name: str, default: int, low: int, high: int, unit: str = "") -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            self.fail(name, value, f"is not a whole number; use {low}-{high}{unit}")
            return default
        if not low <= number <= high:
            self.fail(name, value, f"is out of range; use {low}-{high}{unit}")
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.fail(name, value, "is not a boolean; use true or false")
        return default

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.raw(name)
        if value is None:
            return default
        if value not in allowed:
            self.fail(name, value, f"is not allowed; use one of {', '.join(allowed)}")
        return value

    def object(self, name: str, kind: type, default: Any) -> Any:
        try:
            value = self.config.get_object(name)
        except Exception:  # noqa: BLE001 pulumi raises a bare JSON error here
            self.fail(name, self.config.get(name), f"is not valid JSON; use a {kind.__name__}")
            return default
        if value is None:
            return default
        if not isinstance(value, kind):
            self.fail(name, value, f"is not a {kind.__name__}")
            return default
        return value

    def secret(self, name: str) -> pulumi.Output[str] | None:
        if self.raw(name) is None:
            return None
        return self.config.require_secret(name)


# -- validators: each returns what is allowed, or None when the value is fine --

def identifier_problem(value: str) -> str | None:
    if len(value.encode()) > 63:
        return "is longer than 63 bytes; use a PostgreSQL identifier of 1-63 bytes"
    if not IDENTIFIER.match(value):
        return "is not a plain PostgreSQL identifier; use lowercase letters, digits and _ (not starting with a digit)"
    if value.startswith("pg_"):
        return "starts with pg_, which PostgreSQL reserves; choose another name"
    return None


def schema_problem(value: str) -> str | None:
    if value in RESERVED_SCHEMAS:
        return "is a shared schema; use a dedicated schema such as umami"
    return identifier_problem(value)


def role_problem(value: str) -> str | None:
    if value in RESERVED_ROLES or value.startswith("rds"):
        return "is a reserved role; use a dedicated role such as umami_user"
    return identifier_problem(value)


def rds_identifier_problem(value: str) -> str | None:
    if RDS_IDENTIFIER.match(value) and "--" not in value and not value.endswith("-"):
        return None
    return "is not an RDS identifier; use 1-63 letters, digits and hyphens, starting with a letter"


def host_problem(value: str) -> str | None:
    return None if HOSTNAME.match(value) else "is not a hostname; use the Aurora cluster endpoint"


def secret_arn_problem(value: str) -> str | None:
    return None if SECRET_ARN.match(value) else "is not a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)"


def kms_key_problem(value: str) -> str | None:
    return None if KMS_KEY.match(value) else "is not a KMS key id, key ARN or alias"


def secret_name_problem(value: str) -> str | None:
    if value.startswith("arn:"):
        return "is an ARN; use a secret name such as observability/umami-db-credentials"
    return None if SECRET_NAME.match(value) else "is not a valid secret name; use letters, digits and /_+=.@-"


def environment_problem(value: str) -> str | None:
    return None if ENVIRONMENT.match(value) else "is not an environment name; use lowercase letters, digits and - (max 32)"


def read_tags(reader: Reader) -> dict[str, str]:
    tags = reader.object("tags", dict, {})
    clean: dict[str, str] = {}
    for key, value in tags.items():
        if key in RESERVED_TAG_KEYS:
            reader.fail("tags", key, f"overrides a managed tag; {', '.join(RESERVED_TAG_KEYS)} are set by the stack")
        elif key.lower().startswith("aws:") or not TAG_KEY.match(key):
            reader.fail("tags", key, "is not a valid tag key (1-128 characters, not starting with aws:)")
        elif not isinstance(value, str) or len(value) > 256:
            reader.fail(f"tags.{key}", value, "is not a tag value; use a string of at most 256 characters")
        else:
            clean[key] = value
    return clean


def read_database(reader: Reader) -> DatabaseConfig:
    admin_secret_arn = reader.string("adminSecretArn", check=secret_arn_problem)
    admin_username = reader.string("adminUsername", check=identifier_problem)
    admin_password = reader.secret("adminPassword")
    if admin_secret_arn and (admin_username or admin_password):
        reader.problems.append(
            f"{reader.key('adminSecretArn')} and {reader.key('adminUsername')}/{reader.key('adminPassword')} "
            "are both set; use one source of admin credentials"
        )
    elif not admin_secret_arn and not (admin_username and admin_password):
        reader.problems.append(
            f"{reader.key('adminSecretArn')} or both {reader.key('adminUsername')} and "
            f"{reader.key('adminPassword')} (secret) are required"
        )
    role = reader.string("roleName", "umami_user", check=role_problem)
    if admin_username and role == admin_username:
        reader.fail("roleName", role, "is the admin role; use a dedicated role such as umami_user")
    app_roles = reader.object("applicationRoles", list, [])
    for app_role in app_roles:
        problem = identifier_problem(app_role) if isinstance(app_role, str) else "is not a role name"
        if problem:
            reader.fail("applicationRoles", app_role, problem)
        elif app_role == role:
            reader.fail("applicationRoles", app_role, "is the umami role itself; list only the application's roles")
    return DatabaseConfig(
        host=reader.string("dbHost", required=True, check=host_problem) or "",
        port=reader.integer("dbPort", 5432, 1, 65535),
        name=reader.string("dbName", required=True, check=identifier_problem) or "",
        sslmode=reader.choice("dbSslMode", "require", SSL_MODES),
        admin_secret_arn=admin_secret_arn,
        admin_username=admin_username,
        admin_password=admin_password,
        schema=reader.string("schemaName", "umami", check=schema_problem),
        role=role,
        connection_limit=reader.integer("connectionLimit", 10, 1, 500),
        statement_timeout_ms=reader.integer("statementTimeoutMs", 30_000, 0, 3_600_000, " ms"),
        idle_in_transaction_timeout_ms=reader.integer("idleInTransactionTimeoutMs", 60_000, 0, 3_600_000, " ms"),
        drop_schema_cascade=reader.boolean("dropSchemaCascade", False),
        application_roles=tuple(r for r in app_roles if isinstance(r, str)),
        cluster_identifier=reader.string("auroraClusterIdentifier", check=rds_identifier_problem),
        instance_identifiers=read_instance_identifiers(reader),
        max_connections=reader.integer("maxConnections", 1000, 20, 262_143),
    )


def read_instance_identifiers(reader: Reader) -> tuple[str, ...]:
    identifiers = reader.object("auroraInstanceIdentifiers", list, [])
    for identifier in identifiers:
        problem = rds_identifier_problem(identifier) if isinstance(identifier, str) else "is not an identifier"
        if problem:
            reader.fail("auroraInstanceIdentifiers", identifier, problem)
    return tuple(i for i in identifiers if isinstance(i, str))


def read_secrets(reader: Reader) -> SecretsConfig:
    db_name = reader.string("secretName", "observability/umami-db-credentials", check=secret_name_problem)
    app_name = reader.string("appSecretName", "observability/umami-app-secret", check=secret_name_problem)
    if db_name == app_name:
        reader.fail("appSecretName", app_name, f"equals {reader.key('secretName')}; the two secrets need distinct names")
    window = reader.integer("secretRecoveryWindowDays", 7, 0, 30, " days")
    if 0 < window < 7:
        reader.fail("secretRecoveryWindowDays", window, "is not allowed; use 0 (delete at once) or 7-30 days")
    return SecretsConfig(
        db_secret_name=db_name,
        app_secret_name=app_name,
        kms_key_id=reader.string("kmsKeyId", check=kms_key_problem),
        recovery_window_days=window,
    )


def load(config: pulumi.Config | None = None, stack: str | None = None) -> StackConfig:
    """Read and validate the whole stack configuration, or raise ConfigError."""
    reader = Reader(config or pulumi.Config(NAMESPACE))
    stack_name = stack or pulumi.get_stack()
    environment = reader.string("environment", stack_name, check=environment_problem)
    result = StackConfig(
        environment=environment,
        database=read_database(reader),
        secrets=read_secrets(reader),
        protect=reader.boolean("protectStatefulResources", True),
        extra_tags=read_tags(reader),
    )
    if reader.problems:
        raise ConfigError(reader.problems)
    return result
