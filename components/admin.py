"""Credentials of the Aurora master user, from Secrets Manager or from secret config."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from components.config import DatabaseConfig
from components.database import AdminCredentials


def _field(secret_string: str, key: str, arn: str) -> str:
    try:
        value = json.loads(secret_string)[key]
    except (ValueError, KeyError, TypeError):
        raise pulumi.RunError(f"admin secret {arn} has no '{key}' field; expected the RDS master secret JSON") from None
    if not isinstance(value, str) or not value:
        raise pulumi.RunError(f"admin secret {arn} field '{key}' is empty")
    return value


def admin_credentials(db: DatabaseConfig) -> AdminCredentials:
    """The admin login. With `adminSecretArn` (e.g. the RDS-managed master secret, JSON
    `{username, password}`) it is read at deploy time; otherwise from config."""
    if db.admin_secret_arn is None:
        return AdminCredentials(username=db.admin_username, password=db.admin_password)
    arn = db.admin_secret_arn
    secret_string = aws.secretsmanager.get_secret_version_output(secret_id=arn).secret_string
    username = pulumi.Output.unsecret(pulumi.Output.secret(secret_string).apply(lambda s: _field(s, "username", arn)))
    password = pulumi.Output.secret(secret_string.apply(lambda s: _field(s, "password", arn)))
    return AdminCredentials(username=username, password=password)
