"""Database credentials for ops, from Secrets Manager or the environment.

- the umami role: the credentials secret named in the outputs (`dbSecretArn`), or
  `UMAMI_DB_PASSWORD` (tunnels, break-glass use, rehearsed databases);
- an admin or auditor: the admin secret when the outputs name one (`adminSecretArn`),
  or `UMAMI_ADMIN_DSN`.

Outputs written by the rehearsal (`rehearsal: true`) name a libpq passfile
(`rehearsalPassfile`) holding both passwords; Secrets Manager is never asked then.

Passwords are kept in memory only; every error message is free of them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace

from ops import aws
from ops.db import Target, target_from_dsn
from ops.errors import OpsError
from ops.outputs import StackOutputs

CONTRACT_KEYS = ("username", "password", "host", "port", "database", "schema", "DATABASE_URL")
ENV_UMAMI_PASSWORD = "UMAMI_DB_PASSWORD"
ENV_ADMIN_DSN = "UMAMI_ADMIN_DSN"


@dataclass(frozen=True)
class SecretDocument:
    """The parsed credentials secret and where it came from."""

    arn: str
    values: dict


def rehearsal_passfile(outputs: StackOutputs) -> str | None:
    """The rehearsal's passfile, unless PGPASSFILE already names one."""
    passfile = outputs.get("rehearsalPassfile")
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
                 region: str | None = None) -> tuple[Target, str]:
    """Where and how the umami role logs in, and a label for the source of its password.

    `host`/`port` override the outputs (an SSH/SSM tunnel).
    """
    target = Target(host=host or outputs.db_host, port=port or outputs.db_port, dbname=outputs.db_name,
                    user=outputs.db_role, sslmode=outputs.db_sslmode)
    password = os.environ.get(ENV_UMAMI_PASSWORD)
    if password:
        return replace(target, password=password), f"environment {ENV_UMAMI_PASSWORD}"
    if outputs.rehearsal:
        return replace(target, passfile=rehearsal_passfile(outputs)), passfile_label()
    secret = read_secret_json(outputs.db_secret_arn, region or outputs.get("awsRegion"))
    password = secret.values.get("password")
    if not isinstance(password, str) or not password:
        raise OpsError(f"secret {outputs.db_secret_arn} has no password")
    return replace(target, password=password), f"secret {outputs.db_secret_arn}"


def admin_target(outputs: StackOutputs, *, host: str | None = None, port: int | None = None,
                 region: str | None = None) -> tuple[Target, str] | None:
    """An admin/auditor connection if one is available, else None."""
    dsn = os.environ.get(ENV_ADMIN_DSN)
    if dsn:
        target = target_from_dsn(dsn)
        if host or port:
            target = replace(target, host=host or target.host, port=port or target.port)
        return target, f"environment {ENV_ADMIN_DSN}"
    if outputs.rehearsal:
        if not outputs.db_admin_role:
            return None
        return Target(host=host or outputs.db_host, port=port or outputs.db_port, dbname=outputs.db_name,
                      user=outputs.db_admin_role, sslmode=outputs.db_sslmode,
                      passfile=rehearsal_passfile(outputs)), passfile_label()
    if not outputs.admin_secret_arn:
        return None
    secret = read_secret_json(outputs.admin_secret_arn, region or outputs.get("awsRegion"))
    user, password = secret.values.get("username"), secret.values.get("password")
    if not user or not password:
        raise OpsError(f"admin secret {outputs.admin_secret_arn} lacks username or password")
    target = Target(host=host or outputs.db_host, port=port or outputs.db_port, dbname=outputs.db_name,
                    user=user, password=password, sslmode=outputs.db_sslmode)
    return target, f"secret {outputs.admin_secret_arn}"
