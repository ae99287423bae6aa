"""The Umami container definitions, as plain data: the service's and the deploy step's.

Kept free of Pulumi so the same documents can be checked under mocks and registered
with ECS's API shape (tests register them with `register_task_definition`).

Secrets reach the containers only through `secrets` (ECS resolves `valueFrom` at task
start with the execution role); `environment` holds nothing sensitive.

The database CA reaches the stock image as a value: UMAMI_DB_CA_PEM (public certificates)
is written to CONTAINER_CA_PATH by a shell wrapper around the image's own command,
before node starts, since node reads NODE_EXTRA_CA_CERTS only once at start and the
DATABASE_URL's sslrootcert/sslcert name the same file.

Migrations are a deploy step, not part of each task's start: the service's container has
SKIP_DB_MIGRATION=1 (the image's scripts/check-db.js then skips `prisma migrate deploy`), so
two starting tasks never race for Prisma's advisory lock and a failed migration never
crash-loops the service. The deploy container runs the image's `check-db` without it
(connection check, version check, `prisma migrate deploy`) and then the admin rotation
(driver/rotate-admin.mjs), on a connection without the role's statement_timeout.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from components.shared.tls import CONTAINER_CA_PATH
from facts import HEARTBEAT_PATH, UMAMI_DEFAULT_ADMIN_PASSWORD_HASH

CONTAINER_NAME = "umami"
CONTAINER_PORT = 3000
LOG_STREAM_PREFIX = "umami"
DEPLOY_LOG_STREAM_PREFIX = "deploy"
# Umami's /api/heartbeat answers without touching the database, so the check says "the server is up".
HEALTH_COMMAND = ["CMD-SHELL", f"curl -f http://localhost:{CONTAINER_PORT}{HEARTBEAT_PATH} || exit 1"]
# ECS allows a start period of at most 300 s; the service's grace period covers a slower first start.
MAX_START_PERIOD = 300

PLAIN_ENVIRONMENT = {
    "HOSTNAME": "0.0.0.0",  # Next.js listens on HOSTNAME; the container's own hostname would refuse the ALB
    "DISABLE_TELEMETRY": "1",
}
# The image's scripts/check-db.js runs `prisma migrate deploy` unless this is set (to anything).
SKIP_MIGRATION_VARIABLE = "SKIP_DB_MIGRATION"
SERVICE_ENVIRONMENT = {SKIP_MIGRATION_VARIABLE: "1"}
CA_PEM_VARIABLE = "UMAMI_DB_CA_PEM"
# The image's CMD: Umami 3.x images run their package scripts with pnpm, 2.x images with yarn
# (their Dockerfiles' CMD).
PACKAGE_RUNNER = "pnpm"
PACKAGE_RUNNERS_BY_MAJOR = {"2": "yarn"}
START_COMMAND = f"{PACKAGE_RUNNER} start-docker"
SHELL_ENTRY_POINT = ["/bin/sh", "-c"]

# The deploy step's migration connection runs without the role's statement_timeout (30 s by
# default, ALTER ROLE ... SET), which would cut a long migration; the service keeps it. The
# setting travels as the startup parameter `options`, which both of Umami's URL parsers pass on:
# Prisma's native schema engine (`prisma migrate deploy`) reads it in prisma-engines
# quaint/src/connector/postgres/url.rs, PostgresNativeUrl::parse_query_params ("options"), and
# sends it in PostgresUrl::to_config (quaint/src/connector/postgres/native/mod.rs,
# config.options); node-postgres (check-db's connection and the rotation; pg-connection-string
# keeps every query parameter, pg sends `options` at startup). Percent-encoded: "-c statement_timeout=0".
MIGRATION_URL_PARAMETER = "options=-c%20statement_timeout%3D0"
ROTATION_SCRIPT_VARIABLE = "UMAMI_ROTATE_ADMIN_SCRIPT"
ADMIN_HASH_VARIABLE = "UMAMI_ADMIN_PASSWORD_HASH"
DEFAULT_ADMIN_HASH_VARIABLE = "UMAMI_DEFAULT_ADMIN_HASH"
ROTATION_SCRIPT = Path(__file__).resolve().parents[2] / "driver" / "rotate-admin.mjs"


def database_url_reference(db_secret_arn: str, key: str = "DATABASE_URL") -> str:
    """`valueFrom` for one JSON key of a JSON secret: ARN:json-key:version-stage:version-id."""
    return f"{db_secret_arn}:{key}::"


def package_script(script: str, umami_version: str | None) -> str:
    """`pnpm SCRIPT` (`yarn SCRIPT` for 2.x images): one of the image's package.json scripts."""
    major = umami_version.split(".")[0] if umami_version else None
    return f"{PACKAGE_RUNNERS_BY_MAJOR.get(major, PACKAGE_RUNNER)} {script}"


def start_command(umami_version: str | None) -> str:
    """The image's own start command, by Umami's major version (3.x when unknown)."""
    return package_script("start-docker", umami_version)


def ca_wrapper(start: str = START_COMMAND, ca_path: str = CONTAINER_CA_PATH) -> str:
    """`sh -c` script: write $UMAMI_DB_CA_PEM to `ca_path` (private: umask 077), then exec `start`."""
    return (f'[ -n "${CA_PEM_VARIABLE}" ] || {{ echo "{CA_PEM_VARIABLE} is empty" >&2; exit 1; }}; '
            f"(umask 077 && printf '%s' \"${CA_PEM_VARIABLE}\" > {shlex.quote(ca_path)}) && exec {start}")


def deploy_command(umami_version: str | None) -> str:
    """What the deploy container runs: the image's check-db with migrations, on a URL whose
    connections have no statement_timeout, then the admin rotation (in the same shell, whose
    exit status is the container's)."""
    return (f"unset {SKIP_MIGRATION_VARIABLE}; "
            f'case "$DATABASE_URL" in *\\?*) DATABASE_URL="$DATABASE_URL&{MIGRATION_URL_PARAMETER}";; '
            f'*) DATABASE_URL="$DATABASE_URL?{MIGRATION_URL_PARAMETER}";; esac; export DATABASE_URL; '
            f"{package_script('check-db', umami_version)} && "
            f'exec node --input-type=module -e "${ROTATION_SCRIPT_VARIABLE}"')


def rotation_script() -> str:
    """driver/rotate-admin.mjs, which the deploy container runs from its environment."""
    return ROTATION_SCRIPT.read_text(encoding="utf-8")


def umami_secrets(db_secret_arn: str, app_secret_arn: str, replica: bool) -> list[dict[str, str]]:
    """What Umami reads from Secrets Manager: APP_SECRET, DATABASE_URL (and DATABASE_REPLICA_URL with a reader)."""
    secrets = [
        {"name": "APP_SECRET", "valueFrom": app_secret_arn},
        {"name": "DATABASE_URL", "valueFrom": database_url_reference(db_secret_arn)},
    ]
    if replica:
        secrets.append({"name": "DATABASE_REPLICA_URL",
                        "valueFrom": database_url_reference(db_secret_arn, "DATABASE_REPLICA_URL")})
    return secrets


def ca_environment(ca_pem: str | None) -> dict[str, str]:
    """The CA as a value and where node reads it (nothing with sslmode=disable)."""
    return {CA_PEM_VARIABLE: ca_pem, "NODE_EXTRA_CA_CERTS": CONTAINER_CA_PATH} if ca_pem else {}


def shell_command(script: str) -> dict[str, Any]:
    return {"entryPoint": SHELL_ENTRY_POINT, "command": [script]}


def log_configuration(log_group: str, region: str, stream_prefix: str) -> dict[str, Any]:
    return {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": log_group,
            "awslogs-region": region,
            "awslogs-stream-prefix": stream_prefix,
            # A slow log pipe must never stall Umami's event loop.
            "mode": "non-blocking",
            "max-buffer-size": "25m",
        },
    }


def as_list(environment: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": key, "value": value} for key, value in sorted(environment.items())]


def container_definitions(*, image: str, db_secret_arn: str, app_secret_arn: str, log_group: str,
                          region: str, start_period_seconds: int, ca_pem: str | None = None,
                          umami_version: str | None = None, replica: bool = False) -> list[dict[str, Any]]:
    """The service task's single container, in ECS's `containerDefinitions` shape.

    `ca_pem`: the database CA (None with sslmode=disable: then the image starts as it is).
    `replica`: DATABASE_REPLICA_URL is in the credentials secret (a reader endpoint is configured).
    """
    environment = {**PLAIN_ENVIRONMENT, **SERVICE_ENVIRONMENT, **ca_environment(ca_pem)}
    start = shell_command(ca_wrapper(start_command(umami_version))) if ca_pem else {}
    return [{
        "name": CONTAINER_NAME,
        "image": image,
        "essential": True,
        **start,
        "portMappings": [{"containerPort": CONTAINER_PORT, "hostPort": CONTAINER_PORT, "protocol": "tcp"}],
        "environment": as_list(environment),
        "secrets": umami_secrets(db_secret_arn, app_secret_arn, replica),
        "healthCheck": {
            "command": HEALTH_COMMAND,
            "interval": 30,
            "timeout": 5,
            "retries": 3,
            "startPeriod": min(start_period_seconds, MAX_START_PERIOD),
        },
        "logConfiguration": log_configuration(log_group, region, LOG_STREAM_PREFIX),
        # A real init as PID 1 forwards SIGTERM to node and reaps the shells of health checks.
        "linuxParameters": {"initProcessEnabled": True},
    }]


def deploy_container_definitions(*, image: str, db_secret_arn: str, app_secret_arn: str, admin_secret_arn: str,
                                 log_group: str, region: str, ca_pem: str | None = None,
                                 umami_version: str | None = None, replica: bool = False) -> list[dict[str, Any]]:
    """The deploy task's single container: the service's image, secrets, CA wrapper and log group
    (stream prefix `deploy`), plus the admin password hash; it migrates, rotates and exits."""
    environment = {
        **PLAIN_ENVIRONMENT,
        **ca_environment(ca_pem),
        ROTATION_SCRIPT_VARIABLE: rotation_script(),
        DEFAULT_ADMIN_HASH_VARIABLE: UMAMI_DEFAULT_ADMIN_PASSWORD_HASH,
    }
    secrets = [*umami_secrets(db_secret_arn, app_secret_arn, replica),
               {"name": ADMIN_HASH_VARIABLE, "valueFrom": database_url_reference(admin_secret_arn, "passwordHash")}]
    command = deploy_command(umami_version)
    return [{
        "name": CONTAINER_NAME,
        "image": image,
        "essential": True,
        **shell_command(ca_wrapper(f"sh -c {shlex.quote(command)}") if ca_pem else command),
        "environment": as_list(environment),
        "secrets": secrets,
        "logConfiguration": log_configuration(log_group, region, DEPLOY_LOG_STREAM_PREFIX),
        "linuxParameters": {"initProcessEnabled": True},
    }]
