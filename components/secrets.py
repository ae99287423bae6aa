"""`UmamiSecrets`: generated credentials, stored in AWS Secrets Manager.

Two secrets (three with the service):
- the database credentials (default `observability/umami-db-credentials`), a JSON
  object `{username, password, host, port, database, schema, DATABASE_URL}`, where
  DATABASE_URL is ready for Umami: password URL-encoded, `?schema=` and the TLS
  parameters of components/shared/tls.py; plus DATABASE_REPLICA_URL (same login, the reader
  endpoint) when umami:dbReaderHost is set;
- Umami's `APP_SECRET` (default `observability/umami-app-secret`), a plain string, so
  rotating the database password never invalidates sessions;
- with the service, Umami's `admin` login (`observability/umami-admin`), JSON
  `{username, password, passwordHash}`: the deploy step (components/service_parts/deploy_step.py)
  gives `passwordHash` to Umami in place of the default password `umami` that Umami's first
  migration sets; the team reads the password here.

The pieces below the component (a role's generated password with its SCRAM verifier, a
stored secret, the login document) are shared with `IsolatedSchema` (components/isolated_schema.py),
whose tenants get the same credentials minus what is Umami's own (its DATABASE_URLs).

Every generated value stays a Pulumi secret from generation to storage. The
plain password goes only into Secrets Manager (Umami needs it); PostgreSQL gets
a SCRAM-SHA-256 verifier of it (components/shared/scram.py) built with a salt kept in
state, so the verifier is the same on every run and the role shows no diff. The admin
password's bcrypt hash (components/shared/bcrypt_hash.py) is salted the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.shared import bcrypt_hash, scram, tls
from components.config import DatabaseConfig, SecretsConfig
from facts import UMAMI_ADMIN_USERNAME

PASSWORD_LENGTH = 40
APP_SECRET_LENGTH = 64
# Specials that survive shells and config files; they are URL-encoded in DATABASE_URL anyway.
PASSWORD_SPECIALS = "!#%*()-_=+[]{}<>:?~"
ADMIN_LOGIN_SECRET_NAME = "observability/umami-admin"


def database_url(username: str, password: str, host: str, port: int, database: str,
                 schema: str, sslmode: str, ca_path: str = tls.CONTAINER_CA_PATH) -> str:
    """The DATABASE_URL Umami expects (user and password URL-encoded), with the CA at `ca_path`."""
    return (
        f"postgresql://{quote(username, safe='')}:{quote(password, safe='')}@{host}:{port}/"
        f"{quote(database, safe='')}?schema={quote(schema, safe='')}&{tls.url_query(sslmode, ca_path)}"
    )


def login_document(username: str, password: str, db: DatabaseConfig, schema: str) -> dict[str, Any]:
    """A login to `schema` of the stack's database: the keys every credentials secret of the stack
    holds (Umami's adds its DATABASE_URL; a tenant's has nothing else)."""
    return {
        "username": username,
        "password": password,
        "host": db.host,
        "port": db.port,
        "database": db.name,
        "schema": schema,
    }


def credentials_document(username: str, password: str, db: DatabaseConfig) -> str:
    """The JSON stored in the credentials secret (the contract of README, "Secrets")."""
    document = login_document(username, password, db, db.schema)
    document["DATABASE_URL"] = database_url(username, password, db.host, db.port, db.name, db.schema, db.sslmode)
    if db.reader_host:
        # Umami 3.1 opens a second client on it for its raw analytics queries.
        document["DATABASE_REPLICA_URL"] = database_url(username, password, db.reader_host, db.port, db.name,
                                                        db.schema, db.sslmode)
    return json.dumps(document)


def admin_login_document(password: str, salt_b64: str) -> str:
    """The JSON stored in the admin login secret: the password and the bcrypt hash Umami stores."""
    return json.dumps({
        "username": UMAMI_ADMIN_USERNAME,
        "password": password,
        "passwordHash": bcrypt_hash.password_hash_from_b64_salt(password, salt_b64),
    })


class UmamiSecrets(pulumi.ComponentResource):
    """Random credentials for the umami role and Umami itself, kept in Secrets Manager.

    `db_password_verifier` is the SCRAM-SHA-256 verifier of the role's password, the
    only form of it that may be given to the postgresql provider.

    Args:
        name: logical name of the component.
        database: validated database settings (endpoint, schema, role name).
        secrets: secret names, KMS key and recovery window.
        tags: tags for the secrets.
        protect: protect the secrets from deletion.
        admin_login: also generate Umami's admin login (only a stack that runs the service,
            whose deploy step installs it, needs one).
    """

    def __init__(self, name: str, *, database: DatabaseConfig, secrets: SecretsConfig,
                 tags: dict[str, str], protect: bool, admin_login: bool = False,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("umami:secrets:UmamiSecrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        db_login = role_password(f"{name}-db-password", parent=self)
        self.db_password, self.db_password_salt = db_login.password, db_login.salt
        self.db_password_verifier: pulumi.Output[str] = db_login.verifier
        self.app_secret = random.RandomPassword(
            f"{name}-app-secret",
            length=APP_SECRET_LENGTH,
            special=False,
            opts=child,
        )

        stored = dict(secrets=secrets, tags=tags, protect=protect, parent=self)
        self.db_secret, self.db_secret_version = stored_secret(
            f"{name}-db-credentials", secrets.db_secret_name,
            f"Umami database credentials (role {database.role}, schema {database.schema})",
            self.db_password.result.apply(lambda password: credentials_document(database.role, password, database)),
            **stored,
        )
        self.app_secret_secret, self.app_secret_version = stored_secret(
            f"{name}-app-secret", secrets.app_secret_name,
            "Umami APP_SECRET (signs sessions; independent of the database password)",
            self.app_secret.result, **stored,
        )

        self.admin_secret_arn: pulumi.Output[str] | None = None
        self.admin_secret_name: pulumi.Output[str] | None = None
        if admin_login:
            self.admin_secret_arn, self.admin_secret_name = self._admin_login(name, secrets, tags, protect)

        self.db_secret_arn = self.db_secret.arn
        self.db_secret_name = self.db_secret.name
        self.app_secret_arn = self.app_secret_secret.arn
        self.register_outputs({
            "dbSecretArn": self.db_secret.arn,
            "appSecretArn": self.app_secret_secret.arn,
            "adminLoginSecretArn": self.admin_secret_arn,
        })

    def _admin_login(self, name: str, secrets: SecretsConfig, tags: dict[str, str], protect: bool
                     ) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        """Umami's admin password, its bcrypt hash (salt kept in state: no diff) and their secret."""
        child = pulumi.ResourceOptions(parent=self)
        self.admin_password = generated_password(f"{name}-admin-password", child)
        self.admin_password_salt = random.RandomBytes(
            f"{name}-admin-password-salt",
            length=bcrypt_hash.SALT_LENGTH,
            opts=child,
        )
        document = pulumi.Output.all(self.admin_password.result, self.admin_password_salt.base64).apply(
            lambda values: admin_login_document(values[0], values[1]))
        secret, self.admin_secret_version = stored_secret(
            f"{name}-admin-login", ADMIN_LOGIN_SECRET_NAME,
            f"Umami's {UMAMI_ADMIN_USERNAME} login (replaces the default password at the first deploy)",
            document, secrets=secrets, tags=tags, protect=protect, parent=self,
        )
        return secret.arn, secret.name


# -- the pieces every component with a login shares (UmamiSecrets, IsolatedSchema) ------------

def generated_password(name: str, opts: pulumi.ResourceOptions) -> random.RandomPassword:
    """A 40-character password with specials that survive shells and config files."""
    return random.RandomPassword(
        name,
        length=PASSWORD_LENGTH,
        special=True,
        override_special=PASSWORD_SPECIALS,
        min_lower=4, min_upper=4, min_numeric=4, min_special=2,
        opts=opts,
    )


@dataclass(frozen=True)
class RolePassword:
    """A role's generated password, the salt of its SCRAM verifier and the verifier itself."""

    password: random.RandomPassword
    salt: random.RandomBytes
    verifier: pulumi.Output[str]  # what PostgreSQL receives instead of the password (a Pulumi secret)


def role_password(name: str, *, parent: pulumi.Resource) -> RolePassword:
    """`name` (the password) and `name`-salt, children of `parent`. The salt is random once, then
    kept in state like the password, so the verifier (the role's `password` input) never changes
    between runs and the plain password never reaches PostgreSQL or its logs."""
    child = pulumi.ResourceOptions(parent=parent)
    password = generated_password(name, child)
    salt = random.RandomBytes(f"{name}-salt", length=scram.SALT_LENGTH, opts=child)
    verifier = pulumi.Output.secret(pulumi.Output.all(password.result, salt.base64).apply(
        lambda values: scram.verifier_from_b64_salt(values[0], values[1])))
    return RolePassword(password=password, salt=salt, verifier=verifier)


def stored_secret(name: str, secret_name: str, description: str, value: pulumi.Input[str], *,
                  secrets: SecretsConfig, tags: dict[str, str], protect: bool, parent: pulumi.Resource
                  ) -> tuple[aws.secretsmanager.Secret, aws.secretsmanager.SecretVersion]:
    """A Secrets Manager secret (protected: clients read it) and its value, kept a Pulumi secret."""
    secret = aws.secretsmanager.Secret(
        name,
        name=secret_name,
        description=description,
        kms_key_id=secrets.kms_key_id,
        recovery_window_in_days=secrets.recovery_window_days,
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent, protect=protect),
    )
    version = aws.secretsmanager.SecretVersion(
        f"{name}-value",
        secret_id=secret.id,
        secret_string=pulumi.Output.secret(value),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return secret, version
