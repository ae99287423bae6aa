"""Credentials of the Aurora master user, from Secrets Manager or from secret config."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from components.config import NAMESPACE, DatabaseConfig, show
from components.database import AdminCredentials
from facts import DEFAULT_ROLE


def _field(secret_string: str, key: str, arn: str) -> str:
    try:
        value = json.loads(secret_string)[key]
    except (ValueError, KeyError, TypeError):
        raise pulumi.RunError(f"admin secret {arn} has no '{key}' field; expected the RDS master secret JSON") from None
    if not isinstance(value, str) or not value:
        raise pulumi.RunError(f"admin secret {arn} field '{key}' is empty")
    return value


def checked_admin_username(username: str, db: DatabaseConfig, source: str) -> str:
    """`username`, unless it is the umami role: config validation compares them when the admin
    comes from config, this once the secret is read (the provider would otherwise try to create,
    and on destroy drop, the admin itself)."""
    if username == db.role:
        raise pulumi.RunError(f"{NAMESPACE}:roleName={show(db.role)} is the admin user of {source}; "
                              f"use a dedicated role such as {DEFAULT_ROLE}")
    return username


def admin_credentials(db: DatabaseConfig) -> AdminCredentials:
    """The admin login. With `adminSecretArn` (e.g. the RDS-managed master secret, JSON
    `{username, password}`) it is read at deploy time; otherwise from config. Either way the
    admin is never the umami role (a one-line RunError)."""
    if db.admin_secret_arn is None:
        return AdminCredentials(username=db.admin_username, password=db.admin_password)
    arn = db.admin_secret_arn
    secret_string = aws.secretsmanager.get_secret_version_output(secret_id=arn).secret_string
    username = pulumi.Output.unsecret(pulumi.Output.secret(secret_string).apply(
        lambda s: checked_admin_username(_field(s, "username", arn), db, f"umami:adminSecretArn {arn}")))
    password = pulumi.Output.secret(secret_string.apply(lambda s: _field(s, "password", arn)))
    return AdminCredentials(username=username, password=password)
