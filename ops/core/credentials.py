"""Database credentials for ops, from Secrets Manager or the environment.

- the umami role: the credentials secret named in the outputs (`dbSecretArn`), or
  `UMAMI_DB_PASSWORD` (tunnels, break-glass use, rehearsed databases);
- an admin or auditor: the admin secret when the outputs name one (`adminSecretArn`),
  or `UMAMI_ADMIN_DSN`.

Outputs written by the rehearsal (`rehearsal: true`) name a libpq passfile
(`rehearsalPassfile`) holding both passwords; Secrets Manager is never asked then.

Connections built from the outputs use `dbSslMode` and, for verify-ca/verify-full,
the outputs' `dbCaBundle` as `sslrootcert` (written once to a private temp file).
A DSN in UMAMI_ADMIN_DSN keeps its own libpq parameters.

Passwords are kept in memory only; every error message is free of them.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, replace

from ops.core import aws
from ops.core.db import VERIFYING_MODES, Target, target_from_dsn
from ops.core.errors import OpsError
from ops.core.outputs import StackOutputs

CONTRACT_KEYS = ("username", "password", "host", "port", "database", "schema", "DATABASE_URL")
ENV_UMAMI_PASSWORD = "UMAMI_DB_PASSWORD"
ENV_ADMIN_DSN = "UMAMI_ADMIN_DSN"


@dataclass(frozen=True)
class SecretDocument:
    """The parsed credentials secret and where it came from."""

    arn: str
    values: dict


_CA_FILES: dict[str, str] = {}


def ca_file(pem: str) -> str:
    """`pem` in a private (0600) temp file: written once per process, removed at exit.

    libpq reads `sslrootcert` from a file, and the outputs carry the CA as text.
    """
    digest = hashlib.sha256(pem.encode()).hexdigest()
    path = _CA_FILES.get(digest)
    if path and os.path.exists(path):
        return path
    fd, path = tempfile.mkstemp(prefix="umami-ops-ca-", suffix=".pem")  # created 0600
    with os.fdopen(fd, "w") as handle:
        handle.write(pem)
    atexit.register(_remove, path)
    _CA_FILES[digest] = path
    return path


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def outputs_target(outputs: StackOutputs, user: str, *, host: str | None = None, port: int | None = None,
                   password: str | None = None, passfile: str | None = None) -> Target:
    """A login to the outputs' database with their TLS rules; `host`/`port` are a tunnel."""
    verifying = outputs.database.sslmode in VERIFYING_MODES and outputs.database.ca_bundle
    target = Target(host=outputs.database.host, port=outputs.database.port, dbname=outputs.database.name, user=user,
                    password=password, passfile=passfile, sslmode=outputs.database.sslmode,
                    sslrootcert=ca_file(outputs.database.ca_bundle) if verifying else None)
    return target.through(host, port)


def rehearsal_passfile(outputs: StackOutputs) -> str | None:
    """The rehearsal's passfile, unless PGPASSFILE already names one."""
    passfile = outputs.rehearsal_passfile
    if os.environ.get("PGPASSFILE") or not isinstance(passfile, str) or not passfile:
        return None
    return passfile


def passfile_label() -> str:
    return "PGPASSFILE (rehearsal)" if os.environ.get("PGPASSFILE") else "rehearsal passfile"


def read_secret_json(arn: str, region: str | None) -> SecretDocument:
    sm = aws.client("secretsmanager", region)
    try:
        response = sm.get_secret_value(SecretId=arn)
    except Exception as exc:  # noqa: BLE001 botocore raises many types; all become one line
        raise OpsError(f"cannot read secret {arn}: {aws.describe_error(exc)}") from None
    try:
        values = json.loads(response.get("SecretString") or "")
    except json.JSONDecodeError:
        raise OpsError(f"secret {arn} is not a JSON object") from None
    if not isinstance(values, dict):
        raise OpsError(f"secret {arn} is not a JSON object")
    return SecretDocument(arn=arn, values=values)


def umami_target(outputs: StackOutputs, *, host: str | None = None, port: int | None = None,
                 region: str | None = None, secret: SecretDocument | None = None) -> tuple[Target, str]:
    """Where and how the umami role logs in, and a label for the source of its password.

    `host`/`port` override the outputs (an SSH/SSM tunnel). `secret`: the credentials
    document already read (so Secrets Manager is asked once per run).
    """
    target = outputs_target(outputs, outputs.database.role, host=host, port=port)
    password = os.environ.get(ENV_UMAMI_PASSWORD)
    if password:
        return replace(target, password=password), f"environment {ENV_UMAMI_PASSWORD}"
    if outputs.rehearsal:
        return replace(target, passfile=rehearsal_passfile(outputs)), passfile_label()
    secret = secret or read_secret_json(outputs.secrets.db_secret_arn, region or outputs.aws_region)
    password = secret.values.get("password")
    if not isinstance(password, str) or not password:
        raise OpsError(f"secret {outputs.secrets.db_secret_arn} has no password")
    return replace(target, password=password), f"secret {outputs.secrets.db_secret_arn}"


def admin_target(outputs: StackOutputs, *, host: str | None = None, port: int | None = None,
                 region: str | None = None, read_secrets: bool = True) -> tuple[Target, str] | None:
    """An admin/auditor connection if one is available, else None.

    `read_secrets=False`: never ask Secrets Manager (the admin secret is then not used).
    """
    dsn = os.environ.get(ENV_ADMIN_DSN)
    if dsn:
        return target_from_dsn(dsn).through(host, port), f"environment {ENV_ADMIN_DSN}"
    if outputs.rehearsal:
        if not outputs.database.admin_role:
            return None
        return outputs_target(outputs, outputs.database.admin_role, host=host, port=port,
                              passfile=rehearsal_passfile(outputs)), passfile_label()
    if not outputs.secrets.admin_secret_arn or not read_secrets:
        return None
    secret = read_secret_json(outputs.secrets.admin_secret_arn, region or outputs.aws_region)
    user, password = secret.values.get("username"), secret.values.get("password")
    if not user or not password:
        raise OpsError(f"admin secret {outputs.secrets.admin_secret_arn} lacks username or password")
    return (outputs_target(outputs, user, host=host, port=port, password=password),
            f"secret {outputs.secrets.admin_secret_arn}")
