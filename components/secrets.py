"""`UmamiSecrets`: generated credentials, stored in AWS Secrets Manager.

Two secrets:
- the database credentials (default `observability/umami-db-credentials`), a JSON
  object `{username, password, host, port, database, schema, DATABASE_URL}`, where
  DATABASE_URL is ready for Umami: password URL-encoded, `?schema=` and `sslmode=`;
- Umami's `APP_SECRET` (default `observability/umami-app-secret`), a plain string, so
  rotating the database password never invalidates sessions.

Every generated value stays a Pulumi secret from generation to storage.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.config import DatabaseConfig, SecretsConfig

PASSWORD_LENGTH = 40
APP_SECRET_LENGTH = 64
# Specials that survive shells and config files; they are URL-encoded in DATABASE_URL anyway.
PASSWORD_SPECIALS = "!#%*()-_=+[]{}<>:?~"

# Prisma's PostgreSQL connector knows disable/prefer/require; stricter libpq modes map to require.
PRISMA_SSLMODE = {
    "disable": "disable", "allow": "prefer", "prefer": "prefer",
    "require": "require", "verify-ca": "require", "verify-full": "require",
}


def database_url(username: str, password: str, host: str, port: int, database: str,
                 schema: str, sslmode: str) -> str:
    """The DATABASE_URL Umami (Prisma) expects, with user and password URL-encoded."""
    return (
        f"postgresql://{quote(username, safe='')}:{quote(password, safe='')}@{host}:{port}/"
        f"{quote(database, safe='')}?schema={quote(schema, safe='')}&sslmode={PRISMA_SSLMODE[sslmode]}"
    )


def credentials_document(username: str, password: str, db: DatabaseConfig) -> str:
    """The JSON stored in the credentials secret (the contract of README, "Secrets")."""
    return json.dumps({
        "username": username,
        "password": password,
        "host": db.host,
        "port": db.port,
        "database": db.name,
        "schema": db.schema,
        "DATABASE_URL": database_url(username, password, db.host, db.port, db.name, db.schema, db.sslmode),
    })


class UmamiSecrets(pulumi.ComponentResource):
    """Random credentials for the umami role and Umami itself, kept in Secrets Manager.

    Args:
        name: logical name of the component.
        database: validated database settings (endpoint, schema, role name).
        secrets: secret names, KMS key and recovery window.
        tags: tags for the secrets.
        protect: protect the secrets from deletion.
    """

    def __init__(self, name: str, *, database: DatabaseConfig, secrets: SecretsConfig,
                 tags: dict[str, str], protect: bool, opts: pulumi.ResourceOptions | None = None):
        super().__init__("umami:secrets:UmamiSecrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        stateful = pulumi.ResourceOptions(parent=self, protect=protect)

        self.db_password = random.RandomPassword(
            f"{name}-db-password",
            length=PASSWORD_LENGTH,
            special=True,
            override_special=PASSWORD_SPECIALS,
            min_lower=4, min_upper=4, min_numeric=4, min_special=2,
            opts=child,
        )
        self.app_secret = random.RandomPassword(
            f"{name}-app-secret",
            length=APP_SECRET_LENGTH,
            special=False,
            opts=child,
        )

        self.db_secret = aws.secretsmanager.Secret(
            f"{name}-db-credentials",
            name=secrets.db_secret_name,
            description=f"Umami database credentials (role {database.role}, schema {database.schema})",
            kms_key_id=secrets.kms_key_id,
            recovery_window_in_days=secrets.recovery_window_days,
            tags=tags,
            opts=stateful,
        )
        self.db_secret_version = aws.secretsmanager.SecretVersion(
            f"{name}-db-credentials-value",
            secret_id=self.db_secret.id,
            secret_string=pulumi.Output.secret(self.db_password.result.apply(
                lambda password: credentials_document(database.role, password, database)
            )),
            opts=child,
        )

        self.app_secret_secret = aws.secretsmanager.Secret(
            f"{name}-app-secret",
            name=secrets.app_secret_name,
            description="Umami APP_SECRET (signs sessions; independent of the database password)",
            kms_key_id=secrets.kms_key_id,
            recovery_window_in_days=secrets.recovery_window_days,
            tags=tags,
            opts=stateful,
        )
        self.app_secret_version = aws.secretsmanager.SecretVersion(
            f"{name}-app-secret-value",
            secret_id=self.app_secret_secret.id,
            secret_string=pulumi.Output.secret(self.app_secret.result),
            opts=child,
        )

        self.db_secret_arn = self.db_secret.arn
        self.db_secret_name = self.db_secret.name
        self.app_secret_arn = self.app_secret_secret.arn
        self.register_outputs({
            "dbSecretArn": self.db_secret.arn,
            "appSecretArn": self.app_secret_secret.arn,
        })
