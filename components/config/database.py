"""The database section: where the existing Aurora PostgreSQL is, what to create in it, how clients
reach it over TLS, and the connection budget of the umami role."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi

from components.config.reader import HOSTNAME, Reader
from components.service_parts.autoscaling import MAX_TASKS
from components.shared import tls
from facts import DEFAULT_ROLE, DEFAULT_SCHEMA, DEFAULT_SSL_MODE

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

SSL_MODES = tls.SSL_MODES
RESERVED_SCHEMAS = ("public", "information_schema")
RESERVED_ROLES = ("postgres", "rdsadmin", *RESERVED_ROLE_NAMES)
# The master user name the RDS console proposes for Aurora PostgreSQL: umami:adminUsername's default
# with umami:adminSecretArn, so a preview knows the owner of the schema without reading the secret.
DEFAULT_ADMIN_USERNAME = "postgres"
SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@!-]+$")
RDS_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,62}$")
# An Aurora cluster (or reader) endpoint names its cluster: <id>.cluster-[ro-]<hash>.<region>.rds.amazonaws.com
AURORA_CLUSTER_ENDPOINT = re.compile(
    r"^(?P<id>[A-Za-z][A-Za-z0-9-]{0,62})\.cluster-(?:ro-)?[a-z0-9]+\.[a-z0-9-]+\.rds\.amazonaws\.com(?:\.cn)?$",
    re.IGNORECASE)
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_$]*$")

# -- the connection budget of the umami role --
# The ECS service's rolling deployment ceiling (components/service.py): old and new tasks run side by side.
DEPLOYMENT_MAXIMUM_PERCENT = 200
DEFAULT_POOL_SIZE = 10        # pg.Pool's default max: what one Umami 3.1 process opens per pool
MIGRATION_CONNECTIONS = 1     # `prisma migrate deploy` at task start holds one connection
OPS_HEADROOM = 3              # ops.verify / ops.metrics / a DBA's session as the role
MAX_CONNECTION_LIMIT = 500


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
    admin_username: str                          # known without reading a secret (previews need it)
    admin_password: pulumi.Output[str] | None    # None with admin_secret_arn: read at deploy time
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


def read_admin(reader: Reader) -> tuple[str | None, str | None, pulumi.Output[str] | None]:
    """The admin login's source: adminSecretArn (the password is read from the secret in an update,
    the user name is adminUsername, default postgres) or adminUsername plus the secret adminPassword."""
    admin_secret_arn = reader.string("adminSecretArn", check=secret_arn_problem)
    admin_username = reader.string("adminUsername", check=identifier_problem)
    admin_password = reader.secret("adminPassword")
    if admin_secret_arn and admin_password:
        reader.problems.append(
            f"{reader.key('adminSecretArn')} and {reader.key('adminPassword')} are both set; use one source of "
            f"the admin password (with {reader.key('adminSecretArn')}, set {reader.key('adminUsername')} to the "
            "secret's user name)"
        )
    elif not admin_secret_arn and not (admin_username and admin_password):
        reader.problems.append(
            f"{reader.key('adminSecretArn')} or both {reader.key('adminUsername')} and "
            f"{reader.key('adminPassword')} (secret) are required"
        )
    if admin_secret_arn and admin_username is None:
        admin_username = DEFAULT_ADMIN_USERNAME
    return admin_secret_arn, admin_username, admin_password


def read_database(reader: Reader, deploy_service: bool = True) -> DatabaseConfig:
    admin_secret_arn, admin_username, admin_password = read_admin(reader)
    reported = len(reader.problems)
    role = reader.string("roleName", DEFAULT_ROLE, check=role_problem)
    if admin_username and role == admin_username and len(reader.problems) == reported:
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
        admin_username=admin_username or "",
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
