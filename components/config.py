"""The stack configuration: read once from `pulumi.Config`, typed, and validated
before any resource is declared.

Every problem is reported as one line naming the key, the value and what is
allowed, e.g. `umami:dbPort=70000 is not a port; use 1-65535`. All problems
are collected and raised together as a `ConfigError`, which Pulumi prints
without a traceback. A key this module does not read (KNOWN_KEYS) is a problem
naming the nearest known key; a YAML null or an empty value is a problem, never
"unset"; values are shown with control characters escaped and cut after
MAX_SHOWN characters; secret values are never shown.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pulumi

from components import tls
from components.autoscaling import MAX_TASKS
from facts import CONFIG_NAMESPACE as NAMESPACE
from facts import DEFAULT_ROLE, DEFAULT_SCHEMA, DEFAULT_SSL_MODE, FARGATE_SIZES, REQUIRED_TAGS, SECRET_MASK

# Every `umami:` key this module reads, in one place. `Reader` refuses to read a key that is not
# listed (tests/unit/test_config_keys.py also checks the list against the source both ways), and
# `load` rejects a configured key that is not listed, naming the nearest one.
KNOWN_KEYS = (
    # stack
    "environment", "deployService", "protectStatefulResources", "tags",
    # database
    "dbHost", "dbPort", "dbName", "dbSslMode", "allowUnencryptedDatabase", "dbCaCertificate", "dbReaderHost",
    "dbPoolSize", "adminSecretArn", "adminUsername", "adminPassword", "schemaName", "roleName",
    "applicationRoles", "connectionLimit", "statementTimeoutMs", "idleInTransactionTimeoutMs",
    "dropSchemaCascade", "auroraClusterIdentifier", "auroraInstanceIdentifiers", "maxConnections",
    # secrets
    "secretName", "appSecretName", "kmsKeyId", "secretRecoveryWindowDays",
    # network
    "vpcId", "privateSubnetIds", "publicSubnetIds", "auroraSecurityGroupId", "albInternal", "albIngressCidrs",
    "adminCidrs", "publicPaths", "certificateArn", "domainName", "sslPolicy",
    # service
    "image", "allowMovingImageTag", "cpu", "memory", "cpuArchitecture", "logRetentionDays",
    "healthCheckGracePeriodSeconds", "enableExecuteCommand", "existingClusterArn",
    "serviceDiscoveryNamespace", "serviceDiscoveryNamespaceId",
    # monitoring
    "alarmEmail", "responseTimeAlarmMs", "target5xxAlarmCount",
)

# PostgreSQL 15's reserved key words: pg_get_keywords() catcode R ("reserved") and T ("reserved (can be
# function or type name)"), i.e. src/include/parser/kwlist.h RESERVED_KEYWORD and TYPE_FUNC_NAME_KEYWORD
# (PostgreSQL 15 documentation, Appendix C, "SQL Key Words"). None of them is a plain identifier; they
# work only quoted, and not every client quotes a schema or role name, so they are refused.
# tests/integration/test_config_keywords.py compares the list with a real server's pg_get_keywords().
RESERVED_KEYWORDS = frozenset("""
    all analyse analyze and any array as asc asymmetric both case cast check collate column constraint
    create current_catalog current_date current_role current_time current_timestamp current_user default
    deferrable desc distinct do else end except false fetch for foreign from grant group having in
    initially intersect into lateral leading limit localtime localtimestamp not null offset on only or
    order placing primary references returning select session_user some symmetric table then to
    trailing true union unique user using variadic when where window with
    authorization binary collation concurrently cross current_schema freeze full ilike inner is isnull
    join left like natural notnull outer overlaps right similar tablesample verbose
""".split())
# Role names PostgreSQL's grammar refuses even quoted (gram.y, RoleSpec / RoleId: "role name \"none\"
# is reserved", "role name \"public\" is reserved").
RESERVED_ROLE_NAMES = ("none", "public")
MAX_SHOWN = 120  # characters of a value shown in an error line (a whole ACM or ECS ARN fits)

SSL_MODES = tls.SSL_MODES
RESERVED_SCHEMAS = ("public", "information_schema")
RESERVED_ROLES = ("postgres", "rdsadmin", *RESERVED_ROLE_NAMES)
SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@!-]+$")
KMS_KEY = re.compile(
    r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key/[0-9a-f-]{36}|alias/[A-Za-z0-9/_-]+)"
    r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|alias/[A-Za-z0-9/_-]+)$"
)
RDS_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,62}$")
# An Aurora cluster (or reader) endpoint names its cluster: <id>.cluster-[ro-]<hash>.<region>.rds.amazonaws.com
AURORA_CLUSTER_ENDPOINT = re.compile(
    r"^(?P<id>[A-Za-z][A-Za-z0-9-]{0,62})\.cluster-(?:ro-)?[a-z0-9]+\.[a-z0-9-]+\.rds\.amazonaws\.com(?:\.cn)?$",
    re.IGNORECASE)
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_$]*$")
HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
TAG_KEY = re.compile(r"^[\w .:/=+@-]{1,128}$")
ENVIRONMENT = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
RESERVED_TAG_KEYS = REQUIRED_TAGS  # the stack sets them; configured extras may not override them

# -- service and monitoring (ECS Fargate behind an ALB) --
VPC_ID = re.compile(r"^vpc-([0-9a-f]{8}|[0-9a-f]{17})$")
SUBNET_ID = re.compile(r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$")
SECURITY_GROUP_ID = re.compile(r"^sg-([0-9a-f]{8}|[0-9a-f]{17})$")
CERTIFICATE_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$")
ECS_CLUSTER_ARN = re.compile(r"^arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:cluster/(?P<name>[A-Za-z0-9_-]{1,255})$")
NAMESPACE_ID = re.compile(r"^ns-[a-z0-9]{16}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
URL_PATH = re.compile(r"^/[A-Za-z0-9._~/*?-]{0,127}$")
# TLS 1.2+ policies only: the TLS 1.3 family from 1-2 upwards, and the TLS-1-2 / FS-1-2 families.
SSL_POLICY = re.compile(r"^ELBSecurityPolicy-(TLS13-1-[23]-[A-Za-z0-9-]+|TLS-1-2-[A-Za-z0-9-]+|FS-1-2-[A-Za-z0-9-]+)$")
# An OCI image reference: [registry[:port]/]path[:tag][@sha256:digest].
IMAGE_REFERENCE = re.compile(
    r"^(?P<name>(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
# Umami's release tags: 3.1.0, v2.19.0, postgresql-v2.19.0 (a suffix such as -arm64 from a mirror is kept).
VERSION_TAG = re.compile(r"^(?:postgresql-)?v?(?P<version>(?P<major>\d+)\.\d+\.\d+)(?:[-+.][0-9A-Za-z.-]+)?$")
DEFAULT_IMAGE = "ghcr.io/umami-software/umami:3.1.0"
# The story's Fargate sizes as memory choices per cpu: {256: (512, 1024), 512: (1024,)}.
MEMORY_BY_CPU = {cpu: tuple(m for c, m in FARGATE_SIZES if c == cpu) for cpu, _ in FARGATE_SIZES}
CPU_ARCHITECTURES = ("ARM64", "X86_64")
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
                      1096, 1827, 2192, 2557, 2922, 3288, 3653)
DEFAULT_PUBLIC_PATHS = ("/script.js", "/api/send")
DEFAULT_SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
MAX_ADMIN_CIDRS = 25  # five per listener rule (the ALB's limit of condition values), at most five rules

# -- the connection budget of the umami role --
# The ECS service's rolling deployment ceiling (components/service.py): old and new tasks run side by side.
DEPLOYMENT_MAXIMUM_PERCENT = 200
DEFAULT_POOL_SIZE = 10        # pg.Pool's default max: what one Umami 3.1 process opens per pool
MIGRATION_CONNECTIONS = 1     # `prisma migrate deploy` at task start holds one connection
OPS_HEADROOM = 3              # ops.verify / ops.metrics / a DBA's session as the role
MAX_CONNECTION_LIMIT = 500


def show(value: Any, limit: int = MAX_SHOWN) -> str:
    """`value` as an error line may show it: control and other invisible characters escaped like
    repr does (\\x07, \\u200b), and cut after `limit` characters with "…"."""
    text = value if isinstance(value, str) else str(value)
    shown: list[str] = []
    length = 0
    for char in text:
        piece = _escaped(char)
        if length + len(piece) > limit:
            return "".join(shown) + "…"
        shown.append(piece)
        length += len(piece)
    return "".join(shown)


def _escaped(char: str) -> str:
    """`char`, or its repr-style escape when it is a control, format or line-separating character."""
    if unicodedata.category(char)[0] != "C" and unicodedata.category(char) not in ("Zl", "Zp"):
        return char
    code = ord(char)
    if code < 0x100:
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, f"\\x{code:02x}")
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def one_line(problem: str) -> str:
    """A problem line with any control character escaped (values are also cut in `Reader.fail`)."""
    return show(problem, limit=10_000)


class ConfigError(pulumi.RunError):
    """Invalid stack configuration; the message holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = [one_line(problem) for problem in problems]
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class ConnectionBudget:
    """The most connections Umami's role can need at once; the default CONNECTION LIMIT.

    pool size x pools per task (a second one with a reader URL) x tasks running at once
    (autoscaling's maximum x the deployment's maximum percent, or 1 for a database-only stack)
    + Prisma's migration connection + headroom for ops.
    """

    pool_size: int
    pools_per_task: int
    max_tasks: int
    service_max_tasks: int | None  # autoscaling's maximum; None for a database-only stack
    migration_connections: int = MIGRATION_CONNECTIONS
    ops_headroom: int = OPS_HEADROOM

    @classmethod
    def of(cls, pool_size: int, reader: bool, deploy_service: bool) -> "ConnectionBudget":
        return cls(pool_size=pool_size, pools_per_task=2 if reader else 1,
                   max_tasks=MAX_TASKS * DEPLOYMENT_MAXIMUM_PERCENT // 100 if deploy_service else 1,
                   service_max_tasks=MAX_TASKS if deploy_service else None)

    @property
    def total(self) -> int:
        return self.pool_size * self.pools_per_task * self.max_tasks + self.migration_connections + self.ops_headroom

    def arithmetic(self) -> str:
        """e.g. `44 = pool 10 x 1 pool x 4 tasks (2 max x 200 %) + 1 migration + 3 ops`."""
        pools = "1 pool" if self.pools_per_task == 1 else f"{self.pools_per_task} pools (writer + reader)"
        if self.service_max_tasks is None:
            tasks = f"{self.max_tasks} task (database-only stack)"
        else:
            tasks = f"{self.max_tasks} tasks ({self.service_max_tasks} max x {DEPLOYMENT_MAXIMUM_PERCENT} %)"
        return (f"{self.total} = pool {self.pool_size} x {pools} x {tasks} + {self.migration_connections} "
                f"migration + {self.ops_headroom} ops")

    def as_output(self) -> dict[str, int]:
        """The `dbConnectionBudget` stack output."""
        return {"poolSize": self.pool_size, "poolsPerTask": self.pools_per_task, "maxTasks": self.max_tasks,
                "migrationConnections": self.migration_connections, "opsHeadroom": self.ops_headroom,
                "total": self.total}


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
    ca_certificate: str              # umami:dbCaCertificate as configured: rds or a path
    ca_bundle_pem: str | None        # the CA's certificates as PEM text; None with disable
    ca_file: str | None              # absolute local path of that CA file (the provider's sslrootcert)
    allow_unencrypted: bool
    pool_size: int                   # connections per Umami pool
    reader_host: str | None          # Aurora reader endpoint: DATABASE_REPLICA_URL
    connection_budget: ConnectionBudget

    @property
    def verifies(self) -> bool:
        """verify-ca / verify-full: clients check the server's certificate against the CA."""
        return self.sslmode in tls.VERIFYING_MODES


@dataclass(frozen=True)
class SecretsConfig:
    """Names and encryption of the Secrets Manager secrets."""

    db_secret_name: str
    app_secret_name: str
    kms_key_id: str | None
    recovery_window_days: int


@dataclass(frozen=True)
class NetworkConfig:
    """Where the service runs and who may reach it: VPC, subnets, load balancer exposure, TLS."""

    vpc_id: str
    private_subnet_ids: tuple[str, ...]
    public_subnet_ids: tuple[str, ...]
    aurora_security_group_id: str
    alb_internal: bool
    alb_ingress_cidrs: tuple[str, ...]
    admin_cidrs: tuple[str, ...]
    public_paths: tuple[str, ...]
    certificate_arn: str | None
    domain_name: str | None
    ssl_policy: str

    @property
    def alb_subnet_ids(self) -> tuple[str, ...]:
        """An internal ALB lives in the private subnets, an internet-facing one in the public subnets."""
        return self.private_subnet_ids if self.alb_internal else self.public_subnet_ids


@dataclass(frozen=True)
class ServiceConfig:
    """The Umami container and its ECS service."""

    image: str
    umami_version: str | None
    cpu: int
    memory: int
    cpu_architecture: str
    log_retention_days: int
    health_check_grace_period_seconds: int
    enable_execute_command: bool
    existing_cluster_arn: str | None
    service_discovery_namespace: str | None
    service_discovery_namespace_id: str | None

    @property
    def existing_cluster_name(self) -> str | None:
        if self.existing_cluster_arn is None:
            return None
        return ECS_CLUSTER_ARN.match(self.existing_cluster_arn).group("name")


@dataclass(frozen=True)
class MonitoringConfig:
    """Alarm thresholds (the story's for Aurora) and where alarms are sent."""

    alarm_email: str | None
    response_time_alarm_seconds: float
    target_5xx_alarm_count: int
    ecs_cpu_alarm_percent: int = 85
    ecs_memory_alarm_percent: int = 85
    aurora_cpu_alarm_percent: int = 70
    aurora_connections_alarm_ratio: float = 0.8


@dataclass(frozen=True)
class StackConfig:
    environment: str
    database: DatabaseConfig
    secrets: SecretsConfig
    protect: bool
    extra_tags: Mapping[str, str] = field(default_factory=dict)
    # None when umami:deployService=false (a database-only stack).
    network: NetworkConfig | None = None
    service: ServiceConfig | None = None
    monitoring: MonitoringConfig | None = None


class Reader:
    """Typed getters over one config namespace that record problems instead of raising.

    Only keys of KNOWN_KEYS can be read. A key set to a YAML null (which reaches the program as
    "null" offline and as "" from the CLI) or to an empty string is a problem, never "unset".
    """

    def __init__(self, config: pulumi.Config):
        self.config = config
        self.problems: list[str] = []
        self.nulls: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.config.name}:{name}"

    def is_secret(self, name: str) -> bool:
        key = self.key(name)
        return pulumi.runtime.is_config_secret(key) or key in pulumi.runtime.get_config_secret_keys_env()

    def fail(self, name: str, value: Any, allowed: str) -> None:
        shown = SECRET_MASK if self.is_secret(name) else show(value)
        self.problems.append(f"{show(self.key(name))}={shown} {allowed}")

    def get(self, name: str) -> str | None:
        """The value as configured; reading a key missing from KNOWN_KEYS is a programming error."""
        if name not in KNOWN_KEYS:
            raise KeyError(f"{self.key(name)} is read but not listed in components.config.KNOWN_KEYS")
        return self.config.get(name)

    def raw(self, name: str) -> str | None:
        """The value stripped, or None when unset; a null or empty value is reported (once) as a problem."""
        value = self.get(name)
        if value is None:
            return None
        if value.strip() in ("", "null"):
            if name not in self.nulls:
                self.nulls.add(name)
                self.fail(name, value.strip() or '""', "is null or empty; set a value, or remove the key "
                          "to use the default")
            return None
        return value.strip()

    def missing(self, name: str) -> None:
        """A required key is absent (a null or empty one was reported already)."""
        if name not in self.nulls:
            self.problems.append(f"{self.key(name)} is required")

    def string(self, name: str, default: str | None = None, *, required: bool = False,
               check: Callable[[str], str | None] | None = None) -> str | None:
        value = self.raw(name)
        if value is None:
            if required:
                self.missing(name)
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
        if self.raw(name) is None:
            return default
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


def keyword_problem(value: str, example: str) -> str | None:
    if value in RESERVED_KEYWORDS:
        return f"is a reserved SQL key word in PostgreSQL; use a dedicated name such as {example}"
    return None


def schema_problem(value: str) -> str | None:
    if value in RESERVED_SCHEMAS:
        return f"is a shared schema; use a dedicated schema such as {DEFAULT_SCHEMA}"
    return identifier_problem(value) or keyword_problem(value, DEFAULT_SCHEMA)


def role_problem(value: str) -> str | None:
    if value in RESERVED_ROLES or value.startswith("rds"):
        return f"is a reserved role; use a dedicated role such as {DEFAULT_ROLE}"
    return identifier_problem(value) or keyword_problem(value, DEFAULT_ROLE)


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
            reader.fail(f"tags.{show(key, 40)}", value, "is not a tag value; use a string of at most 256 characters")
        else:
            clean[key] = value
    return clean


def read_sslmode(reader: Reader) -> tuple[str, bool]:
    """dbSslMode, one of the modes every client of the stack honours; disable only when allowed."""
    mode = reader.raw("dbSslMode") or DEFAULT_SSL_MODE
    allow_plain = reader.boolean("allowUnencryptedDatabase", False)
    if mode in ("allow", "prefer"):
        reader.fail("dbSslMode", mode, "is not supported: Umami's driver (node-postgres) never falls back to an "
                    f"unencrypted connection; use one of {', '.join(SSL_MODES)}")
    elif mode not in SSL_MODES:
        reader.fail("dbSslMode", mode, f"is not allowed; use one of {', '.join(SSL_MODES)}")
    elif mode == "disable" and not allow_plain:
        reader.fail("dbSslMode", mode, "sends the database password and data unencrypted; use verify-full, "
                    f"or set {reader.key('allowUnencryptedDatabase')}=true to accept that")
    return mode, allow_plain


def read_ca(reader: Reader, sslmode: str) -> tuple[str, tls.CaBundle | None]:
    """dbCaCertificate resolved to its certificates (none with disable, where it is ignored)."""
    value = reader.raw("dbCaCertificate") or tls.RDS
    if not tls.uses_ca(sslmode) or sslmode not in SSL_MODES:
        return value, None
    try:
        return value, tls.resolve_ca(value, pulumi.Config("aws").get("region"))
    except tls.CaProblem as problem:
        reader.fail("dbCaCertificate", value, str(problem))
        return value, None


def reader_host_problem(value: str) -> str | None:
    return None if HOSTNAME.match(value) else "is not a hostname; use the Aurora reader endpoint (NAME.cluster-ro-...)"


def read_connection_limit(reader: Reader, budget: ConnectionBudget) -> int:
    """connectionLimit: the budget by default; an explicit value may exceed it, never fall below it."""
    if reader.raw("connectionLimit") is None:
        return budget.total
    reported = len(reader.problems)
    limit = reader.integer("connectionLimit", budget.total, 1, MAX_CONNECTION_LIMIT)
    if len(reader.problems) == reported and limit < budget.total:
        reader.fail("connectionLimit", limit, f"is below the connection budget {budget.arithmetic()}; "
                    f"raise it or lower {reader.key('dbPoolSize')}")
    return limit


def derived_cluster_identifier(host: str) -> str | None:
    """The cluster identifier an Aurora cluster (or reader) endpoint names, else None."""
    match = AURORA_CLUSTER_ENDPOINT.match(host)
    if not match or rds_identifier_problem(match.group("id")):
        return None
    return match.group("id").lower()


def read_database(reader: Reader, deploy_service: bool = True) -> DatabaseConfig:
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
    role = reader.string("roleName", DEFAULT_ROLE, check=role_problem)
    if admin_username and role == admin_username:
        reader.fail("roleName", role, f"is the admin role; use a dedicated role such as {DEFAULT_ROLE}")
    app_roles = reader.object("applicationRoles", list, [])
    for app_role in app_roles:
        problem = identifier_problem(app_role) if isinstance(app_role, str) else "is not a role name"
        if problem:
            reader.fail("applicationRoles", app_role, problem)
        elif app_role == role:
            reader.fail("applicationRoles", app_role, "is the umami role itself; list only the application's roles")
    host = reader.string("dbHost", required=True, check=host_problem) or ""
    sslmode, allow_unencrypted = read_sslmode(reader)
    ca_certificate, ca = read_ca(reader, sslmode)
    reader_host = reader.string("dbReaderHost", check=reader_host_problem)
    if reader_host and reader_host.lower() == host.lower():
        reader.fail("dbReaderHost", reader_host, f"is {reader.key('dbHost')}; use the reader endpoint "
                    "(NAME.cluster-ro-...) or leave it unset")
    pool_size = reader.integer("dbPoolSize", DEFAULT_POOL_SIZE, 1, 100, " connections")
    budget = ConnectionBudget.of(pool_size, reader=bool(reader_host), deploy_service=deploy_service)
    cluster_identifier = reader.string("auroraClusterIdentifier", check=rds_identifier_problem)
    return DatabaseConfig(
        host=host,
        port=reader.integer("dbPort", 5432, 1, 65535),
        name=reader.string("dbName", required=True, check=identifier_problem) or "",
        sslmode=sslmode,
        admin_secret_arn=admin_secret_arn,
        admin_username=admin_username,
        admin_password=admin_password,
        schema=reader.string("schemaName", DEFAULT_SCHEMA, check=schema_problem),
        role=role,
        connection_limit=read_connection_limit(reader, budget),
        statement_timeout_ms=reader.integer("statementTimeoutMs", 30_000, 0, 3_600_000, " ms"),
        idle_in_transaction_timeout_ms=reader.integer("idleInTransactionTimeoutMs", 60_000, 0, 3_600_000, " ms"),
        drop_schema_cascade=reader.boolean("dropSchemaCascade", False),
        application_roles=tuple(r for r in app_roles if isinstance(r, str)),
        # Unset: taken from a cluster endpoint, so the Aurora alarms exist by default.
        cluster_identifier=cluster_identifier or derived_cluster_identifier(host),
        instance_identifiers=read_instance_identifiers(reader),
        max_connections=reader.integer("maxConnections", 1000, 20, 262_143),
        ca_certificate=ca_certificate,
        ca_bundle_pem=ca.pem if ca else None,
        ca_file=ca.path if ca else None,
        allow_unencrypted=allow_unencrypted,
        pool_size=pool_size,
        reader_host=reader_host,
        connection_budget=budget,
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


def pattern_problem(pattern: re.Pattern[str], allowed: str) -> Callable[[str], str | None]:
    """A validator that accepts what `pattern` matches and otherwise says what is allowed."""
    return lambda value: None if pattern.match(value) else allowed


def first_problem(*checks: Callable[[str], str | None]) -> Callable[[str], str | None]:
    """A validator reporting the first problem any of `checks` finds."""
    return lambda value: next((p for p in (check(value) for check in checks) if p), None)


def cidr_problem(value: str) -> str | None:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as error:
        if "host bits set" in str(error):
            return "has host bits set; use the network address (e.g. 10.0.0.0/16)"
        return "is not a CIDR block (e.g. 203.0.113.0/24)"
    return None if "/" in value else "is not a CIDR block; add the prefix length (e.g. /32)"


def read_list(reader: Reader, name: str, check: Callable[[str], str | None], *, default: list[str] | None = None,
              minimum: int = 0, maximum: int = 100, what: str = "entries") -> tuple[str, ...]:
    """A list of strings: each checked, no duplicates, between `minimum` and `maximum` long."""
    if reader.raw(name) is None:
        if default is None:
            reader.missing(name)
        return tuple(default or ())
    values = reader.object(name, list, None)
    if values is None:  # not a JSON list: already reported
        return tuple(default or ())
    clean: list[str] = []
    for value in values:
        problem = check(value) if isinstance(value, str) else f"is not a string; list {what}"
        if problem:
            reader.fail(name, value, problem)
        elif value in clean:
            reader.fail(name, value, f"is listed twice; list each of the {what} once")
        else:
            clean.append(value)
    if not values and minimum:
        reader.fail(name, "[]", f"is empty; list {minimum} or more {what}")
    elif len(values) < minimum:
        reader.fail(name, ",".join(map(str, values)), f"has {len(values)} {'entry' if len(values) == 1 else 'entries'}; list {minimum} or more {what}"
                    + (" (the load balancer spans two Availability Zones)" if minimum == 2 else ""))
    elif len(values) > maximum:
        reader.fail(name, f"[{len(values)} entries]", f"is too long; list at most {maximum} {what}")
    return tuple(clean)


def read_image(reader: Reader) -> tuple[str, str | None]:
    """The container image and the Umami version its tag names (None for a digest-only or moving tag)."""
    image = reader.string("image", DEFAULT_IMAGE)
    match = IMAGE_REFERENCE.match(image)
    if not match:
        reader.fail("image", image, "is not an image reference; use REGISTRY/REPOSITORY:TAG or REPOSITORY@sha256:DIGEST")
        return image, None
    tag, digest = match.group("tag"), match.group("digest")
    version = VERSION_TAG.match(tag) if tag else None
    if version and int(version.group("major")) < 2:
        reader.fail("image", image, "is Umami 1.x, which this stack does not support; use 2.x or 3.x (e.g. 3.1.0)")
    allow_moving = reader.boolean("allowMovingImageTag", False)
    if not digest and not version and not allow_moving:
        reader.fail("image", image, f"uses the moving tag {tag or 'latest (implicit)'}; pin a version such as "
                    f"{DEFAULT_IMAGE} or a digest @sha256:..., or set {reader.key('allowMovingImageTag')}=true")
    return image, version.group("version") if version else None


def read_size(reader: Reader) -> tuple[int, int]:
    """Task CPU units and memory MiB, only as the story's Fargate combinations."""
    cpu = reader.integer("cpu", 256, 1, 16384)
    memory = reader.integer("memory", 512, 1, 122880)
    if cpu not in MEMORY_BY_CPU:
        reader.fail("cpu", cpu, "is not a Fargate size in the story's range; use 256 (memory 512 or 1024) or 512 (memory 1024)")
    elif memory not in MEMORY_BY_CPU[cpu]:
        allowed = " or ".join(str(m) for m in MEMORY_BY_CPU[cpu])
        reader.fail("memory", memory, f"is not a Fargate size for cpu {cpu} in the story's range; use {allowed}")
    return cpu, memory


def region_problem(arn: str | None) -> str | None:
    """An ARN in another region than the stack's `aws:region` cannot be used by the ALB or ECS."""
    stack_region = pulumi.Config("aws").get("region")
    arn_region = arn.split(":")[3] if arn and arn.count(":") >= 5 else None
    if stack_region and arn_region and arn_region != stack_region:
        return f"is in {arn_region} but the stack deploys to {stack_region} (aws:region); use a resource in {stack_region}"
    return None


def read_network(reader: Reader) -> NetworkConfig:
    subnet = pattern_problem(SUBNET_ID, "is not a subnet id (subnet-0123abcd...)")
    internal = reader.boolean("albInternal", False)
    private = read_list(reader, "privateSubnetIds", subnet, minimum=2 if internal else 1, what="subnet ids")
    public = read_list(reader, "publicSubnetIds", subnet, default=[] if internal else None,
                       minimum=0 if internal else 2, what="subnet ids")
    for subnet_id in set(private) & set(public):
        reader.fail("publicSubnetIds", subnet_id, f"is also in {reader.key('privateSubnetIds')}; "
                    "tasks and an internet-facing load balancer need separate subnets")
    admin_cidrs = read_list(reader, "adminCidrs", cidr_problem, default=[], maximum=MAX_ADMIN_CIDRS, what="CIDR blocks")
    for cidr in admin_cidrs:
        if ipaddress.ip_network(cidr).prefixlen == 0:
            reader.fail("adminCidrs", cidr, "lets everyone in; list your office or VPN ranges, or leave adminCidrs unset")
    certificate_arn = reader.string("certificateArn", check=first_problem(pattern_problem(
        CERTIFICATE_ARN, "is not an ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/UUID)"), region_problem))
    domain_name = reader.string("domainName", check=lambda v: None if "." in v and HOSTNAME.match(v)
                                else "is not a DNS name; use the name the certificate covers (e.g. analytics.example.com)")
    if certificate_arn and not domain_name:
        reader.problems.append(f"{reader.key('domainName')} is required with {reader.key('certificateArn')}: "
                               "the name the certificate covers, pointed (CNAME/alias) at the load balancer")
    return NetworkConfig(
        vpc_id=reader.string("vpcId", required=True, check=pattern_problem(VPC_ID, "is not a VPC id (vpc-0123abcd...)")) or "",
        private_subnet_ids=private,
        public_subnet_ids=public,
        aurora_security_group_id=reader.string("auroraSecurityGroupId", required=True, check=pattern_problem(
            SECURITY_GROUP_ID, "is not a security group id (sg-0123abcd...)")) or "",
        alb_internal=internal,
        alb_ingress_cidrs=read_list(reader, "albIngressCidrs", cidr_problem, default=["0.0.0.0/0"], minimum=1,
                                    maximum=50, what="CIDR blocks"),
        admin_cidrs=admin_cidrs,
        public_paths=read_list(reader, "publicPaths", pattern_problem(URL_PATH, "is not a URL path (e.g. /script.js)"),
                               default=list(DEFAULT_PUBLIC_PATHS), minimum=1, maximum=5, what="paths"),
        certificate_arn=certificate_arn,
        domain_name=domain_name,
        ssl_policy=reader.string("sslPolicy", DEFAULT_SSL_POLICY, check=pattern_problem(
            SSL_POLICY, f"is not a TLS 1.2+ ALB security policy; use e.g. {DEFAULT_SSL_POLICY}")),
    )


def read_service(reader: Reader) -> ServiceConfig:
    image, version = read_image(reader)
    cpu, memory = read_size(reader)
    reported = len(reader.problems)
    retention = reader.integer("logRetentionDays", 30, 1, 3653, " days")
    if len(reader.problems) == reported and retention not in LOG_RETENTION_DAYS:
        reader.fail("logRetentionDays", retention, "is not a CloudWatch retention; use one of "
                    + ", ".join(map(str, LOG_RETENTION_DAYS)))
    namespace = reader.string("serviceDiscoveryNamespace", check=lambda v: None if HOSTNAME.match(v)
                              else "is not a DNS namespace name (e.g. umami.internal)")
    namespace_id = reader.string("serviceDiscoveryNamespaceId", check=pattern_problem(
        NAMESPACE_ID, "is not a Cloud Map namespace id (ns-...)"))
    if namespace and namespace_id:
        reader.problems.append(f"{reader.key('serviceDiscoveryNamespace')} and {reader.key('serviceDiscoveryNamespaceId')} "
                               "are both set; create a namespace or use an existing one, not both")
    return ServiceConfig(
        image=image,
        umami_version=version,
        cpu=cpu,
        memory=memory,
        cpu_architecture=reader.choice("cpuArchitecture", "ARM64", CPU_ARCHITECTURES),
        log_retention_days=retention,
        # Long enough for the first start's migrations (DESIGN: a failed one blocks every later start).
        health_check_grace_period_seconds=reader.integer("healthCheckGracePeriodSeconds", 300, 60, 3600, " seconds"),
        enable_execute_command=reader.boolean("enableExecuteCommand", False),
        existing_cluster_arn=reader.string("existingClusterArn", check=first_problem(pattern_problem(
            ECS_CLUSTER_ARN, "is not an ECS cluster ARN (arn:aws:ecs:REGION:ACCOUNT:cluster/NAME)"), region_problem)),
        service_discovery_namespace=namespace,
        service_discovery_namespace_id=namespace_id,
    )


def read_monitoring(reader: Reader) -> MonitoringConfig:
    return MonitoringConfig(
        alarm_email=reader.string("alarmEmail", check=pattern_problem(EMAIL, "is not an e-mail address")),
        response_time_alarm_seconds=reader.integer("responseTimeAlarmMs", 2000, 100, 60_000, " ms") / 1000,
        target_5xx_alarm_count=reader.integer("target5xxAlarmCount", 10, 1, 100_000),
    )


def configured_keys(namespace: str = NAMESPACE) -> list[str]:
    """The keys of `namespace` the stack sets, without the namespace: from the config the program was
    given (set_all_config, as under mocks) and from PULUMI_CONFIG (how the language host passes it)."""
    prefix = f"{namespace}:"
    keys = set(pulumi.runtime.config.CONFIG.get()) | set(pulumi.runtime.config.get_config_env())
    return sorted(key[len(prefix):] for key in keys if key.startswith(prefix))


def unknown_key_problems(reader: Reader) -> list[str]:
    """One line per configured key this stack never reads, naming the nearest known key."""
    by_lower = {key.lower(): key for key in KNOWN_KEYS}
    problems = []
    for name in configured_keys(reader.config.name):
        if name in KNOWN_KEYS:
            continue
        value = SECRET_MASK if reader.is_secret(name) else show(reader.config.get(name))
        nearest = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
        hint = (f"did you mean {reader.key(by_lower[nearest[0]])}?" if nearest
                else "see Pulumi.dev.yaml or README for the keys this stack reads")
        problems.append(f"{show(reader.key(name))}={value} is not a key this stack reads; {hint}")
    return problems


def load(config: pulumi.Config | None = None, stack: str | None = None) -> StackConfig:
    """Read and validate the whole stack configuration, or raise ConfigError."""
    reader = Reader(config or pulumi.Config(NAMESPACE))
    reader.problems.extend(unknown_key_problems(reader))
    stack_name = stack or pulumi.get_stack()
    environment = reader.string("environment", stack_name, check=environment_problem)
    deploy_service = reader.boolean("deployService", True)
    result = StackConfig(
        environment=environment,
        database=read_database(reader, deploy_service),
        secrets=read_secrets(reader),
        protect=reader.boolean("protectStatefulResources", True),
        extra_tags=read_tags(reader),
        network=read_network(reader) if deploy_service else None,
        service=read_service(reader) if deploy_service else None,
        monitoring=read_monitoring(reader) if deploy_service else None,
    )
    if reader.problems:
        raise ConfigError(reader.problems)
    return result
