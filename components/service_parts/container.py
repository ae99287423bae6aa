"""The Umami container definition, as plain data.

Kept free of Pulumi so the same document can be checked under mocks and registered
with ECS's API shape (tests register it with `register_task_definition`).

Secrets reach the container only through `secrets` (ECS resolves `valueFrom` at task
start with the execution role); `environment` holds nothing sensitive.

The database CA reaches the stock image as a value: UMAMI_DB_CA_PEM (public certificates)
is written to CONTAINER_CA_PATH by a shell wrapper around the image's own start command,
before node starts, since node reads NODE_EXTRA_CA_CERTS only once at start and the
DATABASE_URL's sslrootcert/sslcert name the same file.
"""

from __future__ import annotations

import shlex
from typing import Any

from components.shared.tls import CONTAINER_CA_PATH
from facts import HEARTBEAT_PATH

CONTAINER_NAME = "umami"
CONTAINER_PORT = 3000
LOG_STREAM_PREFIX = "umami"
# Umami's /api/heartbeat answers without touching the database, so the check says "the server is up".
HEALTH_COMMAND = ["CMD-SHELL", f"curl -f http://localhost:{CONTAINER_PORT}{HEARTBEAT_PATH} || exit 1"]
# ECS allows a start period of at most 300 s; the service's grace period covers longer migrations.
MAX_START_PERIOD = 300

PLAIN_ENVIRONMENT = {
    "HOSTNAME": "0.0.0.0",  # Next.js listens on HOSTNAME; the container's own hostname would refuse the ALB
    "DISABLE_TELEMETRY": "1",
}
CA_PEM_VARIABLE = "UMAMI_DB_CA_PEM"
# The image's CMD: Umami 3.x images start with pnpm, 2.x images with yarn (their Dockerfiles' CMD).
START_COMMAND = "pnpm start-docker"
START_COMMANDS_BY_MAJOR = {"2": "yarn start-docker"}
SHELL_ENTRY_POINT = ["/bin/sh", "-c"]


def database_url_reference(db_secret_arn: str, key: str = "DATABASE_URL") -> str:
    """`valueFrom` for one JSON key of the credentials secret: ARN:json-key:version-stage:version-id."""
    return f"{db_secret_arn}:{key}::"


def start_command(umami_version: str | None) -> str:
    """The image's own start command, by Umami's major version (3.x when unknown)."""
    major = umami_version.split(".")[0] if umami_version else None
    return START_COMMANDS_BY_MAJOR.get(major, START_COMMAND)


def ca_wrapper(start: str = START_COMMAND, ca_path: str = CONTAINER_CA_PATH) -> str:
    """`sh -c` script: write $UMAMI_DB_CA_PEM to `ca_path` (private: umask 077), then exec `start`."""
    return (f'[ -n "${CA_PEM_VARIABLE}" ] || {{ echo "{CA_PEM_VARIABLE} is empty" >&2; exit 1; }}; '
            f"(umask 077 && printf '%s' \"${CA_PEM_VARIABLE}\" > {shlex.quote(ca_path)}) && exec {start}")


def container_definitions(*, image: str, db_secret_arn: str, app_secret_arn: str, log_group: str,
                          region: str, start_period_seconds: int, ca_pem: str | None = None,
                          umami_version: str | None = None, replica: bool = False) -> list[dict[str, Any]]:
    """The task's single container, in ECS's `containerDefinitions` shape.

    `ca_pem`: the database CA (None with sslmode=disable: then the image starts as it is).
    `replica`: DATABASE_REPLICA_URL is in the credentials secret (a reader endpoint is configured).
    """
    environment = dict(PLAIN_ENVIRONMENT)
    secrets = [
        {"name": "APP_SECRET", "valueFrom": app_secret_arn},
        {"name": "DATABASE_URL", "valueFrom": database_url_reference(db_secret_arn)},
    ]
    if replica:
        secrets.append({"name": "DATABASE_REPLICA_URL",
                        "valueFrom": database_url_reference(db_secret_arn, "DATABASE_REPLICA_URL")})
    start: dict[str, Any] = {}
    if ca_pem:
        environment.update({CA_PEM_VARIABLE: ca_pem, "NODE_EXTRA_CA_CERTS": CONTAINER_CA_PATH})
        start = {"entryPoint": SHELL_ENTRY_POINT, "command": [ca_wrapper(start_command(umami_version))]}
    return [{
        "name": CONTAINER_NAME,
        "image": image,
        "essential": True,
        **start,
        "portMappings": [{"containerPort": CONTAINER_PORT, "hostPort": CONTAINER_PORT, "protocol": "tcp"}],
        "environment": [{"name": key, "value": value} for key, value in sorted(environment.items())],
        "secrets": secrets,
        "healthCheck": {
            "command": HEALTH_COMMAND,
            "interval": 30,
            "timeout": 5,
            "retries": 3,
            "startPeriod": min(start_period_seconds, MAX_START_PERIOD),
        },
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": log_group,
                "awslogs-region": region,
                "awslogs-stream-prefix": LOG_STREAM_PREFIX,
                # A slow log pipe must never stall Umami's event loop.
                "mode": "non-blocking",
                "max-buffer-size": "25m",
            },
        },
        # A real init as PID 1 forwards SIGTERM to node and reaps the shells of health checks.
        "linuxParameters": {"initProcessEnabled": True},
    }]
