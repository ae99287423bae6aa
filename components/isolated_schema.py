"""An isolated schema: a schema owned by the admin, a hardened login role that can work only there,
and what the two are given (privilege_model.py), declared once for Umami and for every tenant.

`declare_isolated_schema` declares the role, the schema, the schema grant and the default privileges
as children of a given parent. `UmamiDatabase` (components/database.py) calls it for Umami's schema,
keeping its resources where the stack's state already has them (their URNs never move); Umami adds
pgcrypto of its own. `IsolatedSchema` is the reusable component: the same objects plus the role's
generated credentials, stored in Secrets Manager as `{username, password, host, port, database,
schema}` (Umami's credentials document without its DATABASE_URL). `tenant_schemas` declares one per
`umami:tenants` name: schema and role `tenant_<name>`, no extension, no service.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_postgresql as postgresql

from components.config import NAMESPACE, DatabaseConfig, SecretsConfig, TenantsConfig
from components.secrets import login_document, role_password, stored_secret
from components.shared import scram
from facts import tenant_role, tenant_schema
from privilege_model import DefaultPrivileges, PrivilegeModel, model_for

# The model's role attributes as the provider's Role arguments.
ROLE_ATTRIBUTE_ARGS = {"LOGIN": "login", "INHERIT": "inherit", "SUPERUSER": "superuser",
                       "CREATEDB": "create_database", "CREATEROLE": "create_role", "REPLICATION": "replication",
                       "BYPASSRLS": "bypass_row_level_security"}


@dataclass(frozen=True)
class SchemaObjects:
    """What `declare_isolated_schema` declared."""

    role: postgresql.Role
    schema: postgresql.Schema
    schema_grant: postgresql.Grant
    default_privileges: tuple[postgresql.DefaultPrivileges, ...]


def declare_isolated_schema(name: str, *, model: PrivilegeModel, password_verifier: pulumi.Input[str],
                            protect: bool, drop_schema_cascade: bool, opts: pulumi.ResourceOptions) -> SchemaObjects:
    """The role, schema, schema grant and default privileges of `model`, named `<name>-role`,
    `<name>-schema`, `<name>-schema-usage` and `<name>-default-<type>s`; `opts` gives their parent and
    the postgresql provider; `protect` covers the role and the schema."""
    stateful = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=protect))
    role = postgresql.Role(
        f"{name}-role",
        name=model.role,
        # Only a SCRAM verifier: PostgreSQL stores it as is, so the password itself is never in a
        # statement the server may log. The provider passes it through (resourcePostgreSQLRoleCreate:
        # `ENCRYPTED PASSWORD '<value>'`; setRolePassword: `ALTER ROLE .. PASSWORD '<value>'`) and,
        # with superuser=false, never reads it back (readRolePassword returns the state's value):
        # terraform-provider-postgresql postgresql/resource_postgresql_role.go. No diff, ever.
        password=pulumi.Output.secret(pulumi.Output.from_input(password_verifier).apply(require_verifier)),
        **{arg: model.has(attribute) for attribute, arg in ROLE_ATTRIBUTE_ARGS.items()},
        roles=list(model.memberships),
        connection_limit=model.connection_limit,
        search_paths=list(model.search_path),
        statement_timeout=model.statement_timeout_ms,
        idle_in_transaction_session_timeout=model.idle_in_transaction_timeout_ms,
        opts=stateful,
    )
    schema = postgresql.Schema(
        f"{name}-schema",
        name=model.schema,
        database=model.database,
        owner=model.admin_role,
        if_not_exists=True,
        drop_cascade=drop_schema_cascade,
        # A destroy keeps the schema (its data; Umami's retained pgcrypto) unless dropSchemaCascade is
        # set: DROP SCHEMA ... RESTRICT would otherwise fail on what it holds (SQLSTATE 2BP01).
        opts=pulumi.ResourceOptions.merge(stateful, pulumi.ResourceOptions(retain_on_delete=not drop_schema_cascade)),
    )
    schema_grant = postgresql.Grant(
        f"{name}-schema-usage",
        database=model.database,
        role=role.name,
        schema=schema.name,
        object_type="schema",
        privileges=list(model.schema_privileges),
        with_grant_option=False,
        opts=opts,
    )
    defaults = tuple(_default_privileges(name, model, entry, role, schema, opts) for entry in model.default_privileges)
    return SchemaObjects(role=role, schema=schema, schema_grant=schema_grant, default_privileges=defaults)


def _default_privileges(name: str, model: PrivilegeModel, defaults: DefaultPrivileges, role: postgresql.Role,
                        schema: postgresql.Schema, opts: pulumi.ResourceOptions) -> postgresql.DefaultPrivileges:
    """Objects of one type the admin creates in the schema stay usable by the role."""
    return postgresql.DefaultPrivileges(
        f"{name}-default-{defaults.object_type}s",
        database=model.database,
        owner=model.admin_role,
        role=role.name,
        schema=schema.name,
        object_type=defaults.object_type,
        privileges=list(defaults.privileges),
        with_grant_option=False,
        opts=opts,
    )


def require_verifier(value: str) -> str:
    """A role's password input, only if it is a SCRAM-SHA-256 verifier (never the password)."""
    if not isinstance(value, str) or not scram.is_verifier(value):
        raise pulumi.RunError("a role's password must be given to PostgreSQL as a SCRAM-SHA-256 verifier "
                              "(components.secrets.role_password), never in plain text")
    return value


class IsolatedSchema(pulumi.ComponentResource):
    """A schema of its own: owned by the admin, a hardened login role confined to it (privilege_model.py),
    and the role's generated credentials in Secrets Manager.

    Args:
        name: logical name of the component; its children are named after it.
        model: the privilege model of the role in the schema (privilege_model.model_for).
        provider: the postgresql provider that connects as the admin (UmamiDatabase.provider).
        database: the database settings the credentials document names (host, port, database).
        secret_name: the Secrets Manager name of the credentials.
        secrets: KMS key and recovery window of the secret.
        tags: tags for the secret.
        protect: protect the role, the schema and the secret from deletion.
        drop_schema_cascade: let a destroy drop the schema with what it holds (else it is kept).
        refuse_admin: what to say when the role turns out to be the admin user (it names the config key).
    """

    def __init__(self, name: str, *, model: PrivilegeModel, provider: postgresql.Provider,
                 database: DatabaseConfig, secret_name: str, secrets: SecretsConfig, tags: dict[str, str],
                 protect: bool, drop_schema_cascade: bool, refuse_admin: str = "",
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("umami:database:IsolatedSchema", name, None, opts)
        login = role_password(f"{name}-password", parent=self)
        # The admin comes from the RDS secret only at deploy time: compared with the role then, through
        # the one input only the role reads (its password), so a refusal is a single error.
        verifier = pulumi.Output.all(model.admin_role, login.verifier).apply(
            lambda values: _not_the_admin(values[0], model.role, refuse_admin) and values[1])
        objects = declare_isolated_schema(
            name, model=model, password_verifier=verifier, protect=protect,
            drop_schema_cascade=drop_schema_cascade, opts=pulumi.ResourceOptions(parent=self, provider=provider))
        document = login.password.result.apply(
            lambda password: json.dumps(login_document(model.role, password, database, model.schema)))
        self.secret, self.secret_version = stored_secret(
            f"{name}-credentials", secret_name, f"Credentials of role {model.role} (schema {model.schema})",
            document, secrets=secrets, tags=tags, protect=protect, parent=self)
        self.objects = objects
        self.role_name: pulumi.Output[str] = objects.role.name
        self.schema_name: pulumi.Output[str] = objects.schema.name
        self.secret_arn: pulumi.Output[str] = self.secret.arn
        self.register_outputs({"roleName": self.role_name, "schemaName": self.schema_name,
                               "secretArn": self.secret_arn})


def tenant_schemas(tenants: TenantsConfig, *, database: DatabaseConfig, secrets: SecretsConfig,
                   admin_username: pulumi.Input[str], provider: postgresql.Provider, tags: dict[str, str],
                   protect: bool) -> list[IsolatedSchema]:
    """One IsolatedSchema per declared tenant: schema and role `tenant_<name>` with Umami's hardening
    (its timeouts, the tenants' own connection limit), credentials at `<secretName>/tenants/<name>`."""
    schemas = []
    for name in tenants.names:
        model = model_for(
            database=database.name, schema=tenant_schema(name), role=tenant_role(name), admin_role=admin_username,
            connection_limit=tenants.connection_limit, statement_timeout_ms=database.statement_timeout_ms,
            idle_in_transaction_timeout_ms=database.idle_in_transaction_timeout_ms)
        schemas.append(IsolatedSchema(
            f"tenant-{name}", model=model, provider=provider, database=database,
            secret_name=tenants.secret_name(name), secrets=secrets, tags={**tags, "Tenant": name},
            protect=protect, drop_schema_cascade=database.drop_schema_cascade,
            refuse_admin=f"{NAMESPACE}:tenants={name} gives role {tenant_role(name)}, which is the admin user the "
                         "stack connects as; choose another tenant name"))
    return schemas


def _not_the_admin(admin: Any, role: str, refusal: str) -> bool:
    """True, unless `role` is the admin user (config validation compares a configured admin earlier)."""
    if admin == role:
        raise pulumi.RunError(refusal or f"role {role} is the admin user the stack connects as")
    return True
