"""Facts the program, `ops` and the policy pack share, each written once.

Standard library only, and nothing imported: `components/` (under Pulumi),
`ops/` (run from the repository root) and `policy/` (CrossGuard, in its own
virtual environment, which puts the repository root on `sys.path`) all import
this module. A fact used only inside one package stays in that package.
"""

from __future__ import annotations

# -- names and defaults --------------------------------------------------------------------

# The Pulumi project name, hence the namespace of its config keys (`umami:dbHost`).
CONFIG_NAMESPACE = "umami"

# The schema and login role the stack creates unless umami:schemaName / umami:roleName say
# otherwise; `ops` assumes the same before anything is deployed.
DEFAULT_SCHEMA = "umami"
DEFAULT_ROLE = "umami_user"
# Schema-per-tenant: tenant NAME lives in schema tenant_NAME, reached by role tenant_NAME.
TENANT_PREFIX = "tenant_"


def tenant_schema(name: str) -> str:
    return f"{TENANT_PREFIX}{name}"


def tenant_role(name: str) -> str:
    return f"{TENANT_PREFIX}{name}"

# The dev stack's region (Pulumi.dev.yaml); offline runs use it when aws:region is not set,
# so the fake ARNs they print look like the real ones.
DEFAULT_REGION = "eu-west-1"


def resource_base_name(environment: str) -> str:
    """The readable name of one stack's AWS resources (cluster, service, task family, log
    group, alarm topic, dashboard): several stacks share an account, so it names the environment."""
    return f"umami-{environment}"


# -- ECS Fargate -----------------------------------------------------------------------------

# The story's range, 0.25-0.5 vCPU with 512-1024 MB, as the (cpu, memory MB) pairs Fargate
# accepts: config validation, the policy pack, the preview risk report and `ops.verify` agree.
FARGATE_SIZES = ((256, 512), (256, 1024), (512, 1024))

# Umami answers 200 {"ok":true} here without touching the database (GET / answers 307, so a
# target group checking / would never be healthy).
HEARTBEAT_PATH = "/api/heartbeat"

# The one-off task that runs Umami's migrations (and replaces the default admin password) before
# the service rolls: its task family is the service's with this suffix (`umami-dev-deploy`).
DEPLOY_TASK_FAMILY_SUFFIX = "-deploy"

# -- Umami's default login -------------------------------------------------------------------

# Umami's first migration creates the user `admin` with this bcrypt hash of the password `umami`
# (prisma/migrations/01_init/migration.sql, "AddSystemUser", Umami 3.1.0; the same literal in 2.x's
# db/postgresql/migrations/01_init). While the row still holds it, anyone can log in as admin/umami.
UMAMI_ADMIN_USERNAME = "admin"
UMAMI_DEFAULT_ADMIN_PASSWORD_HASH = "$2b$10$BUli0c.muyCW1ErNJc3jL.vFRFtFJWrT8/GcR4A.sUdCznaXiqFXa"

# -- tags ------------------------------------------------------------------------------------

# The UserMetrics tagging schema: set by the stack on every taggable resource, required by the
# policy pack, and reserved (configured extra tags may not override them).
REQUIRED_TAGS = ("Project", "Component", "Environment", "ManagedBy")

# -- secrets ---------------------------------------------------------------------------------

# How Pulumi shows a secret value (`pulumi config`, `pulumi stack output`); every tool here
# prints the same so that a masked value reads the same everywhere.
SECRET_MASK = "[secret]"

# -- TLS to the database -------------------------------------------------------------------

# libpq's sslmode values; `ops` accepts any of them in a DSN.
LIBPQ_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# The stack's umami:dbSslMode values: allow/prefer may silently fall back to plain text.
STACK_SSL_MODES = ("disable", "require", "verify-ca", "verify-full")
# The modes in which a client checks the server's certificate against a CA.
VERIFYING_SSL_MODES = ("verify-ca", "verify-full")
# The stack's default (CA and host name checked); outputs without dbSslMode mean it too.
DEFAULT_SSL_MODE = "verify-full"

# -- resource type tokens (as the engine, the policy pack and previews see them) -----------

ECS_SERVICE = "aws:ecs/service:Service"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
SECRET = "aws:secretsmanager/secret:Secret"
SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
IAM_POLICY = "aws:iam/policy:Policy"
IAM_ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
IAM_ROLE = "aws:iam/role:Role"
PG_ROLE = "postgresql:index/role:Role"
PG_SCHEMA = "postgresql:index/schema:Schema"
PG_EXTENSION = "postgresql:index/extension:Extension"
PG_GRANT = "postgresql:index/grant:Grant"
PG_DEFAULT_PRIVILEGES = "postgresql:index/defaultPrivileges:DefaultPrivileges"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
RANDOM_BYTES = "random:index/randomBytes:RandomBytes"
PG_PROVIDER = "pulumi:providers:postgresql"
