"""`UmamiDatabase`: the isolated schema and login role inside an existing Aurora PostgreSQL.

The privilege model (README, "Privilege model"; declared once in privilege_model.py, which
`ops.verify` rebuilds from the outputs to check that all of it is there):

    role umami_user   LOGIN, no dangerous attributes, no memberships, connection limit,
                      search_path = schema, statement and idle-in-transaction timeouts
    schema umami      owned by the admin, so umami_user cannot hand it to anyone
    grant             USAGE, CREATE on the schema to umami_user (Prisma creates its tables)
    default privs     FOR ROLE admin IN SCHEMA umami: tables and sequences a DBA creates stay usable
    extension         pgcrypto in the schema, retained on delete (Umami's first migration needs it)

The role, schema, grant and default privileges come from `declare_isolated_schema`
(components/isolated_schema.py), which every tenant's schema shares; pgcrypto is Umami's alone.

Deliberately absent: any grant on tables or sequences of the schema (they do not
exist at deploy time and umami_user owns them later; declaring them causes
perpetual drift), and anything at all outside the schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_postgresql as postgresql

from components.config import DatabaseConfig
from components.isolated_schema import ROLE_ATTRIBUTE_ARGS, declare_isolated_schema  # noqa: F401 (re-exported)
from components.isolated_schema import require_verifier as _require_verifier  # noqa: F401 (re-exported)
from privilege_model import model_for


@dataclass(frozen=True)
class AdminCredentials:
    """The Aurora master user the provider connects as (not a superuser)."""

    username: pulumi.Input[str]
    password: pulumi.Input[str]


class UmamiDatabase(pulumi.ComponentResource):
    """The umami schema, role, grants and pgcrypto, through an explicit postgresql provider.

    Args:
        name: logical name of the component.
        config: validated database settings (endpoint, schema, role, limits).
        admin: credentials of the Aurora master user.
        role_password_verifier: the SCRAM-SHA-256 verifier of the umami role's generated password
            (a Pulumi secret, UmamiSecrets.db_password_verifier); a plain password is refused.
        protect: protect the stateful resources (role, schema, extension) from deletion.
        reachable_after: what must exist before the provider connects and until it is gone (the
            deployer's ingress rule on Aurora's security group, components/database_parts/deployer_access.py).
    """

    def __init__(self, name: str, *, config: DatabaseConfig, admin: AdminCredentials,
                 role_password_verifier: pulumi.Input[str], protect: bool,
                 reachable_after: Sequence[pulumi.Resource] = (),
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("umami:database:UmamiDatabase", name, None, opts)
        self.provider = postgresql.Provider(
            f"{name}-admin",
            host=config.host,
            port=config.port,
            database=config.name,
            username=admin.username,
            password=admin.password,
            sslmode=config.sslmode,
            # lib/pq reads the CA from a file on this machine; verify-* need it, the others ignore it.
            sslrootcert=config.ca_file if config.verifies else None,
            superuser=False,  # Aurora's master user is rds_superuser, not a superuser
            connect_timeout=15,
            expected_version="15",
            # Every resource below waits for its provider, so it waits for the network path too;
            # a destroy deletes them, then the provider, then the path.
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(reachable_after)),
        )
        on_db = pulumi.ResourceOptions(parent=self, provider=self.provider)
        model = model_for(
            database=config.name, schema=config.schema, role=config.role, admin_role=admin.username,
            connection_limit=config.connection_limit, statement_timeout_ms=config.statement_timeout_ms,
            idle_in_transaction_timeout_ms=config.idle_in_transaction_timeout_ms)
        # The same objects every isolated schema has (components/isolated_schema.py), declared here as
        # this component's own children, where the stack's state has always had them.
        objects = declare_isolated_schema(name, model=model, password_verifier=role_password_verifier,
                                          protect=protect, drop_schema_cascade=config.drop_schema_cascade, opts=on_db)
        self.role, self.schema = objects.role, objects.schema
        self.schema_grant, self.default_privileges = objects.schema_grant, list(objects.default_privileges)

        # Umami's first migration runs CREATE EXTENSION IF NOT EXISTS "pgcrypto", which the
        # role could not do itself. Retained on delete: another app may have come to use it.
        # ignore_changes=["schema"]: when pgcrypto already exists in another schema (say public), the
        # provider's Create (`CREATE EXTENSION IF NOT EXISTS "pgcrypto" SCHEMA umami`) is a no-op and its
        # Read stores the schema it really is in (resourcePostgreSQLExtensionReadImpl sets `schema` from
        # pg_extension), so every later plan would show schema public -> umami and the next `up` would
        # run `ALTER EXTENSION "pgcrypto" SET SCHEMA "umami"` (setExtSchema), moving, or failing to move,
        # an extension the application shares (postgresql/resource_postgresql_extension.go). Ignoring the
        # property means no change to pgcrypto is ever planned: created in the schema when absent, left
        # wherever it already is otherwise (and retained on delete).
        self.pgcrypto = postgresql.Extension(
            f"{name}-pgcrypto",
            name="pgcrypto",
            database=config.name,
            schema=self.schema.name,
            opts=pulumi.ResourceOptions.merge(on_db, pulumi.ResourceOptions(
                protect=protect, retain_on_delete=True, ignore_changes=["schema"])),
        )

        self.role_name = self.role.name
        self.schema_name = self.schema.name
        self.register_outputs({
            "roleName": self.role.name,
            "schemaName": self.schema.name,
            "extension": self.pgcrypto.name,
        })
