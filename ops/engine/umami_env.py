"""The Umami container's environment, taken from a rehearsed program, as a dotenv file.

`python -m ops.rehearse --stack dev --umami-env FILE` writes FILE (mode 0600) with
every variable the task definition gives the Umami container: the plain ones and
those ECS injects from Secrets Manager (`valueFrom`), resolved against the secret
values the program stores. Values are exactly as stored, with one exception: a file
the container reads (the database CA bundle, which the container's start command
writes from UMAMI_DB_CA_PEM) is written next to FILE, and every value naming the
container's path names that local copy instead, so the same file works for
`docker compose` (compose.yaml mounts the folder at the same path) and for node
started by hand. SKIP_DB_MIGRATION is left out: on ECS a deploy step migrates before the
service starts; run locally, the one container migrates at start as the image does by default.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from facts import ECS_SERVICE, SECRET_VERSION, TASK_DEFINITION
from ops.core.errors import OpsError
from ops.engine.program import ProgramRun
from ops.core.private_file import write_private

CA_CONTENT_VARIABLE = "UMAMI_DB_CA_PEM"
CA_PATH_VARIABLE = "NODE_EXTRA_CA_CERTS"
LOCAL_CA_NAME = "umami-db-ca.pem"
SECRET_ARN_PARTS = 7  # arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME
NOT_LOCAL = ("SKIP_DB_MIGRATION",)


def umami_container(run: ProgramRun) -> dict:
    """The Umami container of the ECS service's task definition (not a one-off task's)."""
    services = run.by_type(ECS_SERVICE)
    if not services:
        raise OpsError("the stack declares no ECS service (umami:deployService=false); "
                       "there is no Umami container environment to write")
    served = services[0].inputs["taskDefinition"]
    task = next(t for t in run.by_type(TASK_DEFINITION) if t.state.get("arn") == served)
    definitions = task.inputs["containerDefinitions"]
    containers = json.loads(definitions) if isinstance(definitions, str) else definitions
    return containers[0]


def resolve_secret(value_from: str, stored: dict[str, str]) -> str:
    """What ECS injects for `valueFrom`: a whole secret, or one JSON key of it (ARN:key:stage:version)."""
    parts = value_from.split(":")
    arn, key = ":".join(parts[:SECRET_ARN_PARTS]), ":".join(parts[SECRET_ARN_PARTS:SECRET_ARN_PARTS + 1])
    if arn not in stored:
        raise OpsError(f"the task definition reads secret {arn}, which the program does not store")
    if not key:
        return stored[arn]
    document = json.loads(stored[arn])
    if key not in document:
        raise OpsError(f"the task definition reads key {key} of secret {arn}, which the stored JSON lacks")
    return str(document[key])


def container_environment(run: ProgramRun) -> dict[str, str]:
    """Every variable the container gets, plain and from Secrets Manager, as the program stores them."""
    container = umami_container(run)
    stored = {str(v.inputs["secretId"]): str(v.inputs["secretString"]) for v in run.by_type(SECRET_VERSION)}
    environment = {item["name"]: str(item["value"]) for item in container.get("environment", [])}
    for item in container.get("secrets", []):
        environment[item["name"]] = resolve_secret(item["valueFrom"], stored)
    return environment


def dotenv_line(name: str, value: str) -> str:
    """KEY='value' (literal for compose, dotenv and sh); a multi-line value in double quotes with \\n."""
    if "\n" in value or "'" in value:
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("\n", "\\n")
        return f'{name}="{escaped}"'
    return f"{name}='{value}'"


def write_umami_env(run: ProgramRun, path: Path) -> dict[str, str]:
    """Write the dotenv file and the files it references; returns the variables written."""
    path = path.resolve()
    environment = {name: value for name, value in container_environment(run).items() if name not in NOT_LOCAL}
    container_ca = environment.get(CA_PATH_VARIABLE)
    if container_ca:
        local_ca = path.parent / LOCAL_CA_NAME
        # Public certificates, readable by the image's non-root user (uid 1001) through the bind mount.
        local_ca.parent.mkdir(parents=True, exist_ok=True)
        local_ca.write_text(environment[CA_CONTENT_VARIABLE].rstrip("\n") + "\n")
        local_ca.chmod(0o644)
        # The CA path appears plainly (NODE_EXTRA_CA_CERTS) or URL-encoded (sslrootcert in DATABASE_URL).
        replacements = {container_ca: str(local_ca), quote(container_ca, safe=""): quote(str(local_ca), safe="")}
        for old, new in replacements.items():
            environment = {name: value.replace(old, new) for name, value in environment.items()}
    lines = [dotenv_line(name, value) for name, value in sorted(environment.items())]
    write_private(path, "# Umami's container environment from the rehearsal (secrets: keep this file private)\n"
                  + "\n".join(lines) + "\n")
    return environment
