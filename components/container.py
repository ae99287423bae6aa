"""The Umami container definition, as plain data.

Kept free of Pulumi so the same document can be checked under mocks and registered
with ECS's API shape (tests register it with `register_task_definition`).

Secrets reach the container only through `secrets` (ECS resolves `valueFrom` at task
start with the execution role); `environment` holds nothing sensitive.
"""

from __future__ import annotations

from typing import Any

CONTAINER_NAME = "umami"
CONTAINER_PORT = 3000
HEALTH_PATH = "/api/heartbeat"
LOG_STREAM_PREFIX = "umami"
# Umami's /api/heartbeat answers without touching the database, so the check says "the server is up".
HEALTH_COMMAND = ["CMD-SHELL", f"curl -f http://localhost:{CONTAINER_PORT}{HEALTH_PATH} || exit 1"]
# ECS allows a start period of at most 300 s; the service's grace period covers longer migrations.
MAX_START_PERIOD = 300

PLAIN_ENVIRONMENT = {
    "HOSTNAME": "0.0.0.0",  # Next.js listens on HOSTNAME; the container's own hostname would refuse the ALB
    "DISABLE_TELEMETRY": "1",
}


def database_url_reference(db_secret_arn: str) -> str:
    """`valueFrom` for one JSON key of the credentials secret: ARN:json-key:version-stage:version-id."""
    return f"{db_secret_arn}:DATABASE_URL::"


def container_definitions(*, image: str, db_secret_arn: str, app_secret_arn: str, log_group: str,
                          region: str, start_period_seconds: int) -> list[dict[str, Any]]:
    """The task's single container, in ECS's `containerDefinitions` shape."""
    return [{
        "name": CONTAINER_NAME,
        "image": image,
        "essential": True,
        "portMappings": [{"containerPort": CONTAINER_PORT, "hostPort": CONTAINER_PORT, "protocol": "tcp"}],
        "environment": [{"name": key, "value": value} for key, value in sorted(PLAIN_ENVIRONMENT.items())],
        "secrets": [
            {"name": "APP_SECRET", "valueFrom": app_secret_arn},
            {"name": "DATABASE_URL", "valueFrom": database_url_reference(db_secret_arn)},
        ],
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
