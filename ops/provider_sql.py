"""The SQL the postgresql provider issues, applied to a real database.

For each `postgresql:*` resource the rehearsal calls `apply` (create, or update
when the catalog differs from the declared inputs, or nothing when it matches)
and, on destroy, `delete`. Statements follow terraform-provider-postgresql
(see README, "Privilege model"); every change runs in one transaction and is
logged with passwords masked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from ops.db import one_line, redact
from ops.program import Resource

ROLE_ATTRIBUTES = (  # input key, catalog column, SQL keyword when true, when false, default
    ("superuser", "rolsuper", "SUPERUSER", "NOSUPERUSER", False),
    ("createDatabase", "rolcreatedb", "CREATEDB", "NOCREATEDB", False),
    ("createRole", "rolcreaterole", "CREATEROLE", "NOCREATEROLE", False),
    ("inherit", "rolinherit", "INHERIT", "NOINHERIT", True),
    ("login", "rolcanlogin", "LOGIN", "NOLOGIN", False),
    ("bypassRowLevelSecurity", "rolbypassrls", "BYPASSRLS", "NOBYPASSRLS", False),
    ("replication", "rolreplication", "REPLICATION", "NOREPLICATION", False),
)
ROLE_SETTINGS = (  # input key, GUC
    ("statementTimeout", "statement_timeout"),
    ("idleInTransactionSessionTimeout", "idle_in_transaction_session_timeout"),
)
DEFAULT_ACL_TYPES = {"table": ("r", "TABLES"), "sequence": ("S", "SEQUENCES"),
                     "function": ("f", "FUNCTIONS"), "type": ("T", "TYPES")}


class ApplyError(Exception):
    """A statement failed; the message is one line and free of secrets."""


@dataclass
class Change:
    """What happened to one resource."""

    resource: Resource
    action: str  # create | update | same | delete | retain | skip | failed
    detail: str = ""
    statements: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.resource.type.split(':')[-1]} {self.resource.name}"


@dataclass(frozen=True)
class ProviderConnection:
    """The connection parameters of a `pulumi:providers:postgresql` resource."""

    host: str
    port: int
    database: str
    username: str
    password: str
    sslmode: str
    superuser: bool
    sslrootcert: str | None = None

    @classmethod
    def from_inputs(cls, inputs: dict[str, Any]) -> "ProviderConnection":
        return cls(
            host=inputs.get("host", "localhost"), port=int(inputs.get("port", 5432)),
            database=inputs.get("database", "postgres"), username=inputs["username"],
            password=inputs.get("password", ""), sslmode=inputs.get("sslmode", "prefer"),
            superuser=str(inputs.get("superuser", "true")).lower() == "true",
            sslrootcert=inputs.get("sslrootcert") or None,
        )

    def connect(self, database: str | None = None, user: str | None = None,
                password: str | None = None) -> psycopg.Connection:
        return psycopg.connect(
            host=self.host, port=self.port, dbname=database or self.database,
            user=user or self.username, password=password if password is not None else self.password,
            sslmode=self.sslmode, sslrootcert=self.sslrootcert, connect_timeout=10,
            application_name="umami-rehearsal",
        )


def ident(name: str) -> sql.Identifier:
    return sql.Identifier(name)


def idents(names: list[str]) -> sql.Composed:
    return sql.SQL(", ").join(ident(n) for n in names)


def privilege_list(privileges: list[str]) -> sql.Composed:
    # Privilege keywords come from a closed set; validate rather than quote them.
    allowed = {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER",
               "USAGE", "CREATE", "CONNECT", "TEMPORARY", "EXECUTE", "ALL"}
    upper = [p.upper() for p in privileges]
    unknown = [p for p in upper if p not in allowed]
    if unknown:
        raise ApplyError(f"unknown privilege(s) {', '.join(unknown)}")
    return sql.SQL(", ").join(sql.SQL(p) for p in sorted(upper))


class PostgresApplier:
    """Applies postgresql resources through one provider's admin login."""

    def __init__(self, provider: ProviderConnection):
        self.provider = provider
        self._conns: dict[str, psycopg.Connection] = {}

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def conn(self, database: str | None) -> psycopg.Connection:
        database = database or self.provider.database
        if database not in self._conns:
            try:
                self._conns[database] = self.provider.connect(database)
            except psycopg.OperationalError as exc:
                raise ApplyError(f"cannot connect as {self.provider.username} to "
                                 f"{self.provider.host}:{self.provider.port}/{database}: "
                                 f"{one_line(exc)}") from None
        return self._conns[database]

    # -- running statements ---------------------------------------------
    def run(self, change: Change, database: str | None,
            statements: list[tuple[sql.Composable, sql.Composable | None]]) -> None:
        """Run (statement, display) pairs in one transaction; display masks secrets."""
        conn = self.conn(database)
        try:
            with conn.transaction():
                for statement, display in statements:
                    change.statements.append((display or statement).as_string(conn))
                    conn.execute(statement)
        except psycopg.Error as exc:
            message = redact(str(exc).strip().splitlines()[0]) if str(exc).strip() else type(exc).__name__
            raise ApplyError(f"{message} (SQLSTATE {exc.sqlstate})") from None

    def query(self, database: str | None, statement: str, params: tuple) -> list[tuple]:
        conn = self.conn(database)
        with conn.transaction():
            return conn.execute(statement, params).fetchall()

    def with_role_granted(self, role: str, statements: list) -> list:
        """A non-superuser admin needs membership in `role` for owner-sensitive work."""
        if self.provider.superuser:
            return statements
        grant = sql.SQL("GRANT {} TO {}").format(ident(role), ident(self.provider.username))
        revoke = sql.SQL("REVOKE {} FROM {}").format(ident(role), ident(self.provider.username))
        return [(grant, None), *statements, (revoke, None)]

    # -- dispatch ---------------------------------------------------------
    def apply(self, resource: Resource) -> Change:
        kind = resource.type.split(":")[-1]
        handler = getattr(self, f"apply_{kind.lower()}", None)
        if handler is None:
            raise ApplyError(f"the rehearsal does not implement {resource.type}")
        return handler(resource)

    def delete(self, resource: Resource) -> Change:
        if resource.retain_on_delete:
            return Change(resource, "retain", "retained on delete (retainOnDelete)")
        kind = resource.type.split(":")[-1]
        handler = getattr(self, f"delete_{kind.lower()}", None)
        if handler is None:
            raise ApplyError(f"the rehearsal does not implement deleting {resource.type}")
        return handler(resource)

    # -- Role ---------------------------------------------------------------
    def role_clauses(self, inputs: dict[str, Any]) -> list[sql.Composable]:
        clauses = [sql.SQL(on if inputs.get(key, default) else off)
                   for key, _, on, off, default in ROLE_ATTRIBUTES]
        clauses.append(sql.SQL("CONNECTION LIMIT {}").format(sql.Literal(int(inputs.get("connectionLimit", -1)))))
        return clauses

    def apply_role(self, resource: Resource) -> Change:
        inputs = resource.inputs
        name = inputs["name"]
        change = Change(resource, "same")
        rows = self.query(None, "SELECT oid, rolconnlimit, " + ", ".join(c for _, c, *_ in ROLE_ATTRIBUTES)
                          + " FROM pg_roles WHERE rolname = %s", (name,))
        statements: list = []
        password = inputs.get("password")
        if not rows:
            change.action = "create"
            create = sql.SQL("CREATE ROLE {} WITH {} {}")
            attrs = sql.SQL(" ").join(self.role_clauses(inputs))
            statements.append((
                create.format(ident(name), sql.SQL("PASSWORD {}").format(sql.Literal(password)), attrs),
                create.format(ident(name), sql.SQL("PASSWORD '***'"), attrs),
            ))
            current_settings: dict[str, str] = {}
            current_members: set[str] = set()
        else:
            oid, connlimit, *flags = rows[0]
            # Only what differs: a non-superuser may not even restate NOSUPERUSER.
            wanted = self.role_clauses(inputs)
            current = self.role_clauses({"connectionLimit": connlimit,
                                         **{key: flag for (key, *_), flag in zip(ROLE_ATTRIBUTES, flags)}})
            differing = [clause for clause, now in zip(wanted, current) if clause != now]
            if differing:
                statements.append((sql.SQL("ALTER ROLE {} WITH {}").format(
                    ident(name), sql.SQL(" ").join(differing)), None))
            if password and not self.password_works(name, password):
                alter = sql.SQL("ALTER ROLE {} WITH PASSWORD {}")
                statements.append((alter.format(ident(name), sql.Literal(password)),
                                   alter.format(ident(name), sql.SQL("'***'"))))
            current_settings = self.role_settings(oid)
            current_members = {r for (r,) in self.query(
                None, "SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid "
                      "WHERE m.member = %s", (oid,))}
        statements += self.role_settings_statements(name, inputs, current_settings)
        wanted_members = set(inputs.get("roles") or [])
        for role in sorted(wanted_members - current_members):
            statements.append((sql.SQL("GRANT {} TO {}").format(ident(role), ident(name)), None))
        for role in sorted(current_members - wanted_members):
            statements.append((sql.SQL("REVOKE {} FROM {}").format(ident(role), ident(name)), None))
        if statements:
            change.action = change.action if change.action == "create" else "update"
            self.run(change, None, statements)
        return change

    def role_settings(self, oid: int) -> dict[str, str]:
        rows = self.query(None, "SELECT unnest(setconfig) FROM pg_db_role_setting "
                                "WHERE setrole = %s AND setdatabase = 0", (oid,))
        return dict(row[0].split("=", 1) for row in rows)

    def role_settings_statements(self, name: str, inputs: dict[str, Any], current: dict[str, str]) -> list:
        statements = []
        paths = inputs.get("searchPaths") or []
        if paths and current.get("search_path") != ", ".join(paths):
            statements.append((sql.SQL("ALTER ROLE {} SET search_path TO {}").format(ident(name), idents(paths)), None))
        for key, guc in ROLE_SETTINGS:
            value = int(inputs.get(key) or 0)
            if value and current.get(guc) != str(value):
                statements.append((sql.SQL("ALTER ROLE {} SET {} TO {}").format(
                    ident(name), sql.SQL(guc), sql.Literal(value)), None))
            elif not value and guc in current:
                statements.append((sql.SQL("ALTER ROLE {} RESET {}").format(ident(name), sql.SQL(guc)), None))
        return statements

    def password_works(self, role: str, password: str) -> bool:
        try:
            with self.provider.connect(user=role, password=password):
                return True
        except psycopg.OperationalError:
            return False

    def delete_role(self, resource: Resource) -> Change:
        name = resource.inputs["name"]
        change = Change(resource, "delete")
        if not self.query(None, "SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)):
            return Change(resource, "same", "already absent")
        admin = ident(self.provider.username)
        statements = self.with_role_granted(name, [
            (sql.SQL("REASSIGN OWNED BY {} TO {}").format(ident(name), admin), None),
            (sql.SQL("DROP OWNED BY {}").format(ident(name)), None),
        ])
        # Dropping the role removes the temporary membership with it.
        statements = statements[:-1] if not self.provider.superuser else statements
        statements.append((sql.SQL("DROP ROLE {}").format(ident(name)), None))
        self.run(change, None, statements)
        return change

    # -- Schema -------------------------------------------------------------
    def apply_schema(self, resource: Resource) -> Change:
        inputs = resource.inputs
        name, owner, database = inputs["name"], inputs.get("owner"), inputs.get("database")
        rows = self.query(database, "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s", (name,))
        if not rows:
            change = Change(resource, "create")
            self.run(change, database, [(sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
                ident(name), ident(owner or self.provider.username)), None)])
            return change
        if owner and rows[0][0] != owner:
            change = Change(resource, "update", f"owner {rows[0][0]} -> {owner}")
            self.run(change, database, [(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(ident(name), ident(owner)), None)])
            return change
        return Change(resource, "same")

    def delete_schema(self, resource: Resource) -> Change:
        inputs = resource.inputs
        name, database = inputs["name"], inputs.get("database")
        if not self.query(database, "SELECT 1 FROM pg_namespace WHERE nspname = %s", (name,)):
            return Change(resource, "same", "already absent")
        mode = sql.SQL("CASCADE" if inputs.get("dropCascade") else "RESTRICT")
        change = Change(resource, "delete")
        try:
            self.run(change, database, [(sql.SQL("DROP SCHEMA {} {}").format(ident(name), mode), None)])
        except ApplyError as exc:
            if "2BP01" not in str(exc):
                raise
            raise ApplyError(f"{exc}: the schema still holds Umami's tables or the retained pgcrypto; "
                             "umami:dropSchemaCascade=true drops them with it") from None
        return change

    # -- Grant (schema level) --------------------------------------------------
    def schema_privileges(self, database: str | None, schema: str, role: str) -> set[tuple[str, bool]]:
        rows = self.query(database, """
            SELECT a.privilege_type, a.is_grantable
            FROM pg_namespace n, aclexplode(n.nspacl) a
            WHERE n.nspname = %s AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %s)
        """, (schema, role))
        return set(rows)

    def apply_grant(self, resource: Resource) -> Change:
        inputs = resource.inputs
        if inputs.get("objectType") != "schema":
            raise ApplyError(f"the rehearsal implements Grant objectType=schema only, not {inputs.get('objectType')}")
        database, schema, role = inputs.get("database"), inputs["schema"], inputs["role"]
        grant_option = bool(inputs.get("withGrantOption"))
        wanted = {(p.upper(), grant_option) for p in inputs.get("privileges") or []}
        if self.schema_privileges(database, schema, role) == wanted:
            return Change(resource, "same")
        change = Change(resource, "update" if self.schema_privileges(database, schema, role) else "create")
        statements = [(sql.SQL("REVOKE ALL PRIVILEGES ON SCHEMA {} FROM {}").format(ident(schema), ident(role)), None)]
        if wanted:
            statements.append((sql.SQL("GRANT {} ON SCHEMA {} TO {}{}").format(
                privilege_list(inputs["privileges"]), ident(schema), ident(role),
                sql.SQL(" WITH GRANT OPTION" if grant_option else "")), None))
        self.run(change, database, statements)
        return change

    def delete_grant(self, resource: Resource) -> Change:
        inputs = resource.inputs
        database, schema, role = inputs.get("database"), inputs["schema"], inputs["role"]
        if not self.schema_privileges(database, schema, role):
            return Change(resource, "same", "nothing granted")
        change = Change(resource, "delete")
        self.run(change, database, [(sql.SQL("REVOKE ALL PRIVILEGES ON SCHEMA {} FROM {}").format(
            ident(schema), ident(role)), None)])
        return change

    # -- DefaultPrivileges ---------------------------------------------------
    def default_privileges(self, database: str | None, owner: str, schema: str, objtype: str,
                           role: str) -> set[tuple[str, bool]]:
        rows = self.query(database, """
            SELECT a.privilege_type, a.is_grantable
            FROM pg_default_acl d
            JOIN pg_namespace n ON n.oid = d.defaclnamespace,
                 aclexplode(d.defaclacl) a
            WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = %s)
              AND n.nspname = %s AND d.defaclobjtype = %s
              AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %s)
        """, (owner, schema, objtype, role))
        return set(rows)

    def default_privileges_target(self, inputs: dict[str, Any]) -> tuple[str, str, str]:
        objtype, keyword = DEFAULT_ACL_TYPES[inputs["objectType"]]
        return objtype, keyword, inputs.get("owner") or self.provider.username

    def apply_defaultprivileges(self, resource: Resource) -> Change:
        inputs = resource.inputs
        database, schema, role = inputs.get("database"), inputs["schema"], inputs["role"]
        objtype, keyword, owner = self.default_privileges_target(inputs)
        grant_option = bool(inputs.get("withGrantOption"))
        wanted = {(p.upper(), grant_option) for p in inputs.get("privileges") or []}
        current = self.default_privileges(database, owner, schema, objtype, role)
        if current == wanted:
            return Change(resource, "same")
        change = Change(resource, "update" if current else "create")
        prefix = sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {}").format(ident(owner), ident(schema))
        statements = self.owner_wrapped(owner, [
            (sql.SQL("{} REVOKE ALL ON {} FROM {}").format(prefix, sql.SQL(keyword), ident(role)), None),
            (sql.SQL("{} GRANT {} ON {} TO {}{}").format(
                prefix, privilege_list(inputs["privileges"]), sql.SQL(keyword), ident(role),
                sql.SQL(" WITH GRANT OPTION" if grant_option else "")), None),
        ])
        self.run(change, database, statements)
        return change

    def delete_defaultprivileges(self, resource: Resource) -> Change:
        inputs = resource.inputs
        database, schema, role = inputs.get("database"), inputs["schema"], inputs["role"]
        objtype, keyword, owner = self.default_privileges_target(inputs)
        if not self.default_privileges(database, owner, schema, objtype, role):
            return Change(resource, "same", "nothing granted")
        change = Change(resource, "delete")
        self.run(change, database, self.owner_wrapped(owner, [(sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} REVOKE ALL ON {} FROM {}").format(
            ident(owner), ident(schema), sql.SQL(keyword), ident(role)), None)]))
        return change

    def owner_wrapped(self, owner: str, statements: list) -> list:
        return statements if owner == self.provider.username else self.with_role_granted(owner, statements)

    # -- Extension ------------------------------------------------------------
    def apply_extension(self, resource: Resource) -> Change:
        inputs = resource.inputs
        name, schema, database = inputs["name"], inputs.get("schema"), inputs.get("database")
        rows = self.query(database, "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = %s", (name,))
        if rows:
            where = rows[0][0]
            detail = "" if not schema or where == schema else f"already installed in schema {where}; left there"
            return Change(resource, "same", detail)
        change = Change(resource, "create")
        target = sql.SQL(" SCHEMA {}").format(ident(schema)) if schema else sql.SQL("")
        self.run(change, database, [(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}{}").format(ident(name), target), None)])
        return change

    def delete_extension(self, resource: Resource) -> Change:
        inputs = resource.inputs
        change = Change(resource, "delete")
        self.run(change, inputs.get("database"), [(sql.SQL("DROP EXTENSION IF EXISTS {}").format(ident(inputs["name"])), None)])
        return change
