"""The postgresql provider's create/read/update/delete, issued against a real database.

Each function below does what terraform-provider-postgresql (the Terraform provider that
pulumi-postgresql 3.18 bridges; source read at postgresql/*.go, cited per function) does
for one resource: the same statements in the same order, in one transaction where the
provider uses one, followed by the provider's Read, whose result becomes the resource's
outputs in the rehearsal's state. The code is written from reading that source, not
copied. Statements are recorded with the role password masked.

Differences that remain, on purpose:
- Role delete and the lock helper issue `SET statement_timeout = 0` as upstream
  (helpers.go pgLockRole); the rehearsal resets the session's statement_timeout after the
  step, and its lock_timeout (set on every connection) still bounds every wait.
- Privilege lists are emitted sorted (upstream joins a Go set in hash order).
- Only what the program declares is implemented: Grant with object_type=schema, and no
  deprecated attributes (schema `policy`, role `encrypted`/`password_wo`/`assume_role`).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import psycopg
from psycopg import sql

from facts import PG_DEFAULT_PRIVILEGES as DEFAULT_PRIVILEGES
from facts import PG_EXTENSION as EXTENSION
from facts import PG_GRANT as GRANT
from facts import PG_ROLE as ROLE
from facts import PG_SCHEMA as SCHEMA
from ops.core.db import one_line, redact


# Inputs whose change forces a replacement (ForceNew in the resource schemas:
# resourcePostgreSQLSchema, resourcePostgreSQLGrant, resourcePostgreSQLDefaultPrivileges,
# resourcePostgreSQLExtension; resourcePostgreSQLRole has none: a new name is a rename).
FORCE_NEW = {
    ROLE: frozenset(),
    SCHEMA: frozenset({"database"}),
    GRANT: frozenset({"role", "database", "schema", "objectType", "objects", "columns", "withGrantOption"}),
    DEFAULT_PRIVILEGES: frozenset({"role", "database", "owner", "schema", "objectType", "withGrantOption"}),
    EXTENSION: frozenset({"name", "database"}),
}
# Replacement order (DESIGN.md, "Facts about the provider"): the bridge replaces a Grant
# delete-first; every other resource create-first (Pulumi's default).
DELETE_BEFORE_REPLACE = frozenset({GRANT})
# Set-valued inputs (TypeSet upstream): compared without order or case of privileges.
SET_INPUTS = frozenset({"privileges", "roles", "objects", "columns"})

# role input, SQL when true, when false, default (resourcePostgreSQLRoleCreate's boolOpts order)
ROLE_FLAGS = (
    ("superuser", "SUPERUSER", "NOSUPERUSER", False),
    ("createDatabase", "CREATEDB", "NOCREATEDB", False),
    ("createRole", "CREATEROLE", "NOCREATEROLE", False),
    ("inherit", "INHERIT", "NOINHERIT", True),
    ("login", "LOGIN", "NOLOGIN", False),
    ("bypassRowLevelSecurity", "BYPASSRLS", "NOBYPASSRLS", False),
    ("replication", "REPLICATION", "NOREPLICATION", False),
)
# resourcePostgreSQLRoleUpdate's order of the set* helpers for flags
ROLE_UPDATE_FLAG_ORDER = ("bypassRowLevelSecurity", "createDatabase", "createRole", "inherit", "login",
                          "replication", "superuser")
DEFAULT_ACL_TYPES = {"table": ("r", "TABLES"), "sequence": ("S", "SEQUENCES"),
                     "function": ("f", "FUNCTIONS"), "type": ("T", "TYPES"), "schema": ("n", "SCHEMAS")}
PRIVILEGES = {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER",
              "USAGE", "CREATE", "CONNECT", "TEMPORARY", "EXECUTE", "ALL"}
MASKED_PASSWORD = sql.SQL("'***'")


class ApplyError(Exception):
    """A step failed; the message is one line and free of secrets. `sqlstate` when from the server."""

    def __init__(self, message: str, sqlstate: str | None = None):
        super().__init__(message)
        self.sqlstate = sqlstate


@dataclass
class Change:
    """What happened (or is planned) for one resource."""

    resource: Any  # ops.engine.program.Resource, or a StateEntry for resources only in state
    action: str  # create | update | replace | delete | same | retain | refresh | skip | failed
    detail: str = ""
    statements: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.resource.type.split(':')[-1]} {self.resource.name}"


@dataclass(frozen=True)
class Timeouts:
    """Every rehearsal connection's lock_timeout and statement_timeout (milliseconds)."""

    lock_ms: int = 3_000
    statement_ms: int = 30_000


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

    def connect(self, database: str | None = None, timeouts: Timeouts = Timeouts(), **kw) -> psycopg.Connection:
        return psycopg.connect(
            host=self.host, port=self.port, dbname=database or self.database,
            user=self.username, password=self.password, sslmode=self.sslmode,
            sslrootcert=self.sslrootcert, connect_timeout=10, application_name="umami-rehearsal",
            options=f"-c lock_timeout={int(timeouts.lock_ms)} -c statement_timeout={int(timeouts.statement_ms)}",
            **kw,
        )


def ident(name: str) -> sql.Identifier:
    return sql.Identifier(name)


def privilege_list(privileges: list[str]) -> sql.Composed:
    upper = sorted({p.upper() for p in privileges})
    unknown = [p for p in upper if p not in PRIVILEGES]
    if unknown:
        raise ApplyError(f"unknown privilege(s) {', '.join(unknown)}")
    return sql.SQL(",").join(sql.SQL(p) for p in upper)


def normalized(key: str, value: Any) -> Any:
    """A value as the provider compares it (sets without order, privileges in upper case)."""
    if key in SET_INPUTS and isinstance(value, (list, tuple, set)):
        return sorted(str(v).upper() if key == "privileges" else str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class Step:
    """One resource operation in one transaction, the way the provider runs it."""

    def __init__(self, conn: psycopg.Connection, change: Change):
        self.conn = conn
        self.change = change

    def exec(self, statement: sql.Composable, shown: sql.Composable | None = None,
             params: tuple | None = None) -> list[tuple]:
        text = (shown or statement).as_string(self.conn)
        if params:
            text += "  -- " + ", ".join(repr(p) for p in params)
        self.change.statements.append(text)
        cur = self.conn.execute(statement, params)
        return cur.fetchall() if cur.description else []

    def query(self, statement: str, params: tuple = ()) -> list[tuple]:
        """A catalog read the provider makes inside the step (not printed)."""
        return self.conn.execute(statement, params).fetchall()

    def value(self, statement: str, params: tuple = ()) -> Any:
        rows = self.query(statement, params)
        return rows[0][0] if rows else None


class Provider:
    """The provider's CRUD for the five postgresql resource types, through one admin login."""

    def __init__(self, connection: ProviderConnection, timeouts: Timeouts = Timeouts()):
        self.connection = connection
        self.timeouts = timeouts
        self._conns: dict[str, psycopg.Connection] = {}

    # -- connections and steps -------------------------------------------------
    def conn(self, database: str | None = None) -> psycopg.Connection:
        database = database or self.connection.database
        if database not in self._conns:
            try:
                self._conns[database] = self.connection.connect(database, self.timeouts, autocommit=True)
            except psycopg.OperationalError as exc:
                raise ApplyError(f"cannot connect as {self.connection.username} to {self.connection.host}:"
                                 f"{self.connection.port}/{database}: {one_line(exc)}") from None
        return self._conns[database]

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    @contextmanager
    def step(self, change: Change, database: str | None = None) -> Iterator[Step]:
        """One transaction (the provider's startTransaction .. Commit); rolled back on any error,
        Ctrl-C and SIGTERM included. The session's statement_timeout is restored afterwards."""
        conn = self.conn(database)
        try:
            with conn.transaction():
                yield Step(conn, change)
        except psycopg.Error as exc:
            raise ApplyError(sql_error(exc), getattr(exc, "sqlstate", None)) from None
        finally:
            try:  # pgLockRole's `SET statement_timeout = 0` must not outlive the step
                if not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                    conn.execute("RESET statement_timeout")
            except psycopg.Error:
                pass

    # -- helpers.go --------------------------------------------------------------
    @staticmethod
    def lock_role(step: Step, role: str) -> None:
        """helpers.go pgLockRole: statement_timeout 0, advisory locks on the role and its members."""
        step.exec(sql.SQL("SET statement_timeout = 0"))
        step.exec(sql.SQL("SELECT pg_advisory_xact_lock(oid::bigint) FROM pg_roles WHERE rolname = %s"),
                  params=(role,))
        step.exec(sql.SQL("SELECT pg_advisory_xact_lock(member::bigint) FROM pg_auth_members "
                          "JOIN pg_roles ON roleid = pg_roles.oid WHERE rolname = %s"), params=(role,))

    @staticmethod
    def is_member(step: Step, role: str, member: str) -> bool:
        """helpers.go isMemberOfRole (pg_auth_members.set_option only exists from PostgreSQL 16)."""
        has_set_option = step.value("SELECT 1 FROM information_schema.columns "
                                    "WHERE table_name = 'pg_auth_members' AND column_name = 'set_option'")
        query = ("SELECT 1 FROM pg_auth_members WHERE pg_get_userbyid(roleid) = %s "
                 "AND pg_get_userbyid(member) = %s" + (" AND set_option" if has_set_option else ""))
        return bool(step.query(query, (role, member)))

    def with_roles_granted(self, step: Step, roles: list[str], body: Callable[[], None]) -> None:
        """helpers.go withRolesGranted: a non-superuser admin is temporarily made a member of each
        role (unless it already is, or the role is a superuser); if the role is a member of the admin,
        that membership is revoked first and given back afterwards (if the role still exists)."""
        current = step.value("SELECT CURRENT_USER")
        if not roles or step.value("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (current,)):
            body()
            return
        granted, revoked = [], []
        for role in roles:
            if step.value("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,)):
                continue
            if role != current and self.is_member(step, current, role):  # revokeRoleMembership
                step.exec(sql.SQL("REVOKE {} FROM {}").format(ident(current), ident(role)))
                revoked.append(role)
            if role != current and not self.is_member(step, role, current):  # grantRoleMembership
                step.exec(sql.SQL("GRANT {} TO {}").format(ident(role), ident(current)))
                granted.append(role)
        body()
        for role in granted:
            if self.is_member(step, role, current):
                step.exec(sql.SQL("REVOKE {} FROM {}").format(ident(role), ident(current)))
        for role in revoked:
            if step.value("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)):
                if not self.is_member(step, current, role):
                    step.exec(sql.SQL("GRANT {} TO {}").format(ident(current), ident(role)))

    # -- dispatch ------------------------------------------------------------------
    def create(self, type_: str, inputs: dict[str, Any], change: Change) -> dict[str, Any]:
        return getattr(self, f"create_{_kind(type_)}")(inputs, change)

    def update(self, type_: str, old: dict[str, Any], inputs: dict[str, Any], change: Change) -> dict[str, Any]:
        return getattr(self, f"update_{_kind(type_)}")(old, inputs, change)

    def delete(self, type_: str, old: dict[str, Any], change: Change) -> None:
        getattr(self, f"delete_{_kind(type_)}")(old, change)

    def read(self, type_: str, old: dict[str, Any]) -> dict[str, Any] | None:
        """The provider's Read of a resource in state: its outputs now, or None when gone."""
        return getattr(self, f"read_{_kind(type_)}")(old)

    # -- Role: resource_postgresql_role.go -------------------------------------------
    def create_role(self, inputs: dict[str, Any], change: Change) -> dict[str, Any]:
        """resourcePostgreSQLRoleCreate: `CREATE ROLE name WITH [ENCRYPTED PASSWORD '..'] VALID UNTIL
        'infinity' CONNECTION LIMIT n <flags>`, then grantRoles, alterSearchPath (always),
        setStatementTimeout and setIdleInTransactionSessionTimeout (when set), one transaction."""
        name = inputs["name"]
        options, shown = [], []
        password = inputs.get("password") or ""
        if password:
            if password.upper() == "NULL":
                options.append(sql.SQL("PASSWORD NULL"))
                shown.append(sql.SQL("PASSWORD NULL"))
            else:
                encrypted = sql.SQL("ENCRYPTED" if inputs.get("encryptedPassword", True) else "UNENCRYPTED")
                options.append(sql.SQL("{} PASSWORD {}").format(encrypted, sql.Literal(password)))
                shown.append(sql.SQL("{} PASSWORD {}").format(encrypted, MASKED_PASSWORD))
        valid = inputs.get("validUntil") or "infinity"
        until = sql.SQL("VALID UNTIL {}").format(sql.Literal("infinity" if valid.lower() == "infinity" else valid))
        limit = sql.SQL("CONNECTION LIMIT {}").format(sql.SQL(str(int(inputs.get("connectionLimit", -1)))))
        flags = [sql.SQL(on if inputs.get(key, default) else off) for key, on, off, default in ROLE_FLAGS]
        create = sql.SQL("CREATE ROLE {} WITH {}")
        with self.step(change) as step:
            step.exec(create.format(ident(name), sql.SQL(" ").join([*options, until, limit, *flags])),
                      create.format(ident(name), sql.SQL(" ").join([*shown, until, limit, *flags])))
            self._grant_roles(step, name, inputs)
            self._search_path(step, name, inputs)
            self._timeouts(step, name, {}, inputs)
        return self._read_role_or_fail(name, inputs)

    def _grant_roles(self, step: Step, name: str, inputs: dict[str, Any]) -> None:
        """grantRoles: GRANT each role of `roles` to the role."""
        for role in sorted(inputs.get("roles") or []):
            step.exec(sql.SQL("GRANT {} TO {}").format(ident(role), ident(name)))

    def _search_path(self, step: Step, name: str, inputs: dict[str, Any]) -> None:
        """alterSearchPath: always `ALTER ROLE .. SET search_path TO ..` (DEFAULT when empty)."""
        paths = inputs.get("searchPaths") or []
        if any(", " in p for p in paths):
            raise ApplyError(f"search_path cannot contain `, `: {paths}")
        value = sql.SQL(", ").join(ident(p) for p in paths) if paths else sql.SQL("DEFAULT")
        step.exec(sql.SQL("ALTER ROLE {} SET search_path TO {}").format(ident(name), value))

    def _timeouts(self, step: Step, name: str, old: dict[str, Any], inputs: dict[str, Any]) -> None:
        """setStatementTimeout, setIdleInTransactionSessionTimeout: SET when changed and non-zero,
        RESET when changed to 0."""
        for key, guc in (("statementTimeout", "statement_timeout"),
                         ("idleInTransactionSessionTimeout", "idle_in_transaction_session_timeout")):
            new = int(inputs.get(key) or 0)
            if new == int(old.get(key) or 0):
                continue
            if new:
                step.exec(sql.SQL("ALTER ROLE {} SET {} TO {}").format(ident(name), sql.SQL(guc), sql.SQL(str(new))))
            else:
                step.exec(sql.SQL("ALTER ROLE {} RESET {}").format(ident(name), sql.SQL(guc)))

    def read_role(self, old: dict[str, Any]) -> dict[str, Any] | None:
        """resourcePostgreSQLRoleReadImpl: attributes, memberships and settings from pg_roles; the
        password is the state's (readRolePassword never reads it with superuser=false)."""
        conn = self.conn(None)
        row = conn.execute(
            "SELECT ARRAY(SELECT pg_get_userbyid(roleid) FROM pg_auth_members WHERE member = pg_roles.oid), "
            "rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolconnlimit, "
            "COALESCE(rolvaliduntil::text, 'infinity'), COALESCE(rolconfig, '{}'), rolreplication, rolbypassrls "
            "FROM pg_roles WHERE rolname = %s", (old["name"],)).fetchone()
        if row is None:
            return None
        roles, name, su, inherit, createrole, createdb, login, limit, valid, config, repl, bypass = row
        settings = dict(item.split("=", 1) for item in config)
        paths = [p.strip().strip('"') for p in settings["search_path"].split(",")] if "search_path" in settings else []
        out = dict(old)
        out.update(name=name, superuser=su, inherit=inherit, createRole=createrole, createDatabase=createdb,
                   login=login, connectionLimit=limit, validUntil=valid, replication=repl,
                   bypassRowLevelSecurity=bypass, roles=sorted(roles), searchPaths=paths,
                   statementTimeout=_ms(settings.get("statement_timeout")),
                   idleInTransactionSessionTimeout=_ms(settings.get("idle_in_transaction_session_timeout")))
        return out

    def _read_role_or_fail(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        out = self.read_role({**inputs, "name": name})
        if out is None:
            raise ApplyError(f"role {name} vanished right after it was written")
        return out

    def update_role(self, old: dict[str, Any], inputs: dict[str, Any], change: Change) -> dict[str, Any]:
        """resourcePostgreSQLRoleUpdate, one transaction: pgLockRole(old name), setRoleName (`ALTER ROLE
        old RENAME TO new`), setRolePassword (when the password or the name changed), the flag setters,
        CONNECTION LIMIT, VALID UNTIL, revokeRoles (every membership) then grantRoles, alterSearchPath
        (always), the timeouts."""
        name, old_name = inputs["name"], old["name"]
        with self.step(change) as step:
            self.lock_role(step, old_name)
            if name != old_name:
                step.exec(sql.SQL("ALTER ROLE {} RENAME TO {}").format(ident(old_name), ident(name)))
            password = inputs.get("password") or ""
            if password and (password != old.get("password") or name != old_name):
                alter = sql.SQL("ALTER ROLE {} PASSWORD {}")
                step.exec(alter.format(ident(name), sql.Literal(password)), alter.format(ident(name), MASKED_PASSWORD))
            flags = {key: (on, off, default) for key, on, off, default in ROLE_FLAGS}
            for key in ROLE_UPDATE_FLAG_ORDER[:1]:
                self._flag(step, name, key, flags[key], old, inputs)
            if int(inputs.get("connectionLimit", -1)) != int(old.get("connectionLimit", -1)):
                step.exec(sql.SQL("ALTER ROLE {} CONNECTION LIMIT {}").format(
                    ident(name), sql.SQL(str(int(inputs.get("connectionLimit", -1))))))
            for key in ROLE_UPDATE_FLAG_ORDER[1:]:
                self._flag(step, name, key, flags[key], old, inputs)
            valid = inputs.get("validUntil") or "infinity"
            if valid != (old.get("validUntil") or "infinity"):
                step.exec(sql.SQL("ALTER ROLE {} VALID UNTIL {}").format(ident(name), sql.Literal(valid)))
            for (member_of,) in step.query(
                    "SELECT pg_get_userbyid(roleid) FROM pg_auth_members JOIN pg_roles ON member = pg_roles.oid "
                    "WHERE rolname = %s", (name,)):
                step.exec(sql.SQL("REVOKE {} FROM {}").format(ident(member_of), ident(name)))
            self._grant_roles(step, name, inputs)
            self._search_path(step, name, inputs)
            self._timeouts(step, name, old, inputs)
        return self._read_role_or_fail(name, inputs)

    @staticmethod
    def _flag(step: Step, name: str, key: str, sql_words: tuple, old: dict, inputs: dict) -> None:
        on, off, default = sql_words
        new = bool(inputs.get(key, default))
        if new != bool(old.get(key, default)):
            step.exec(sql.SQL("ALTER ROLE {} WITH {}").format(ident(name), sql.SQL(on if new else off)))

    def delete_role(self, old: dict[str, Any], change: Change) -> None:
        """resourcePostgreSQLRoleDelete, one transaction: pgLockRole, withRolesGranted([role]) around
        `REASSIGN OWNED BY role TO admin` and `DROP OWNED BY role` (the temporary membership revoked
        at the end of it), then `DROP ROLE`."""
        name = old["name"]
        with self.step(change) as step:
            self.lock_role(step, name)
            if not old.get("skipReassignOwned"):
                def reassign() -> None:
                    step.exec(sql.SQL("REASSIGN OWNED BY {} TO {}").format(
                        ident(name), ident(self.connection.username)))
                    step.exec(sql.SQL("DROP OWNED BY {}").format(ident(name)))
                self.with_roles_granted(step, [name], reassign)
            if not old.get("skipDropRole"):
                step.exec(sql.SQL("DROP ROLE {}").format(ident(name)))

    # -- Schema: resource_postgresql_schema.go -----------------------------------------
    def create_schema(self, inputs: dict[str, Any], change: Change) -> dict[str, Any]:
        """resourcePostgreSQLSchemaCreate: withRolesGranted([database owner, schema owner if another])
        around createSchema (`CREATE SCHEMA IF NOT EXISTS name AUTHORIZATION owner`, or only
        `ALTER SCHEMA .. OWNER TO` when it already exists), one transaction."""
        name, owner, database = inputs["name"], inputs.get("owner"), inputs.get("database")
        with self.step(change, database) as step:
            db_owner = step.value("SELECT rolname FROM pg_database JOIN pg_roles ON datdba = pg_roles.oid "
                                  "WHERE datname = current_database()")
            roles = [db_owner] + ([owner] if owner and owner != db_owner else [])

            def create() -> None:
                if step.query("SELECT TRUE FROM pg_namespace WHERE nspname = %s", (name,)):
                    if owner:
                        step.exec(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(ident(name), ident(owner)))
                    return
                statement = sql.SQL("CREATE SCHEMA {}{}{}").format(
                    sql.SQL("IF NOT EXISTS " if inputs.get("ifNotExists", True) else ""), ident(name),
                    sql.SQL(" AUTHORIZATION {}").format(ident(owner)) if owner else sql.SQL(""))
                step.exec(statement)
            self.with_roles_granted(step, roles, create)
        return self._read_or_fail(SCHEMA, inputs)

    def read_schema(self, old: dict[str, Any]) -> dict[str, Any] | None:
        """resourcePostgreSQLSchemaReadImpl: name, owner and database; gone when the schema is."""
        row = self.conn(old.get("database")).execute(
            "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s", (old["name"],)).fetchone()
        if row is None:
            return None
        return {**old, "owner": row[0], "database": old.get("database") or self.connection.database}

    def update_schema(self, old: dict[str, Any], inputs: dict[str, Any], change: Change) -> dict[str, Any]:
        """resourcePostgreSQLSchemaUpdate, one transaction: setSchemaName (`ALTER SCHEMA old RENAME TO
        new`), setSchemaOwner (`ALTER SCHEMA .. OWNER TO ..` when the owner changed)."""
        name, database = inputs["name"], inputs.get("database")
        with self.step(change, database) as step:
            if name != old["name"]:
                step.exec(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(ident(old["name"]), ident(name)))
            if inputs.get("owner") and inputs.get("owner") != old.get("owner"):
                step.exec(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(ident(name), ident(inputs["owner"])))
        return self._read_or_fail(SCHEMA, inputs)

    def delete_schema(self, old: dict[str, Any], change: Change) -> None:
        """resourcePostgreSQLSchemaDelete: nothing when absent; else withRolesGranted([owner]) around
        `DROP SCHEMA name RESTRICT` (CASCADE with drop_cascade), one transaction."""
        name = old["name"]
        with self.step(change, old.get("database")) as step:
            if not step.query("SELECT 1 FROM pg_namespace WHERE nspname = %s", (name,)):
                change.detail = "already absent"
                return
            mode = sql.SQL("CASCADE" if old.get("dropCascade") else "RESTRICT")
            self.with_roles_granted(step, [old["owner"]] if old.get("owner") else [], lambda: step.exec(
                sql.SQL("DROP SCHEMA {} {}").format(ident(name), mode)))

    # -- Grant: resource_postgresql_grant.go -------------------------------------------
    def _schema_owners(self, step: Step, schema: str) -> list[str]:
        """getRolesToGrant for object_type=schema: the schema's owner (pg_database_owner resolved)."""
        owner = step.value("SELECT rolname FROM pg_namespace JOIN pg_roles ON nspowner = pg_roles.oid "
                           "WHERE nspname = %s", (schema,))
        if owner is None:
            raise ApplyError(f"could not find schema '{schema}' while looking for owner")
        if owner == "pg_database_owner":
            owner = step.value("SELECT rolname FROM pg_database JOIN pg_roles ON datdba = pg_roles.oid "
                               "WHERE datname = current_database()")
        return [owner]

    def create_grant(self, inputs: dict[str, Any], change: Change, old: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
        """resourcePostgreSQLGrantCreateOrUpdate (object_type=schema), one transaction: pgLockRole,
        withRolesGranted(schema owner) around `REVOKE ALL PRIVILEGES ON SCHEMA s FROM r` then
        `GRANT <privileges> ON SCHEMA s TO r` (REVOKE first so privileges can also shrink)."""
        if inputs.get("objectType") != "schema":
            raise ApplyError(f"the rehearsal implements Grant objectType=schema only, not {inputs.get('objectType')}")
        schema, role = inputs["schema"], inputs["role"]
        with self.step(change, inputs.get("database")) as step:
            self.lock_role(step, role)
            owners = self._schema_owners(step, schema)

            def grant() -> None:
                step.exec(sql.SQL("REVOKE ALL PRIVILEGES ON SCHEMA {} FROM {}").format(ident(schema), ident(role)))
                if inputs.get("privileges"):
                    step.exec(sql.SQL("GRANT {} ON SCHEMA {} TO {}{}").format(
                        privilege_list(inputs["privileges"]), ident(schema), ident(role),
                        sql.SQL(" WITH GRANT OPTION" if inputs.get("withGrantOption") else "")))
            self.with_roles_granted(step, owners, grant)
        return self._read_or_fail(GRANT, inputs)

    def update_grant(self, old: dict[str, Any], inputs: dict[str, Any], change: Change) -> dict[str, Any]:
        """resourcePostgreSQLGrantUpdate: the same as create (only `privileges` can change in place)."""
        return self.create_grant(inputs, change, old)

    def read_grant(self, old: dict[str, Any]) -> dict[str, Any] | None:
        """resourcePostgreSQLGrantRead: gone when the role or the schema is (checkRoleDBSchemaExists);
        else the privileges the role holds on the schema (readSchemaRolePrivileges)."""
        conn = self.conn(old.get("database"))
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (old["role"],)).fetchone():
            return None
        if not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (old["schema"],)).fetchone():
            return None
        rows = conn.execute("SELECT a.privilege_type FROM pg_namespace n, aclexplode(n.nspacl) a "
                            "WHERE n.nspname = %s AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %s)",
                            (old["schema"], old["role"])).fetchall()
        granted = sorted({r[0] for r in rows})
        out = dict(old)
        if granted != normalized("privileges", old.get("privileges") or []):
            out["privileges"] = granted
        return out

    def delete_grant(self, old: dict[str, Any], change: Change) -> None:
        """resourcePostgreSQLGrantDelete, one transaction: pgLockRole, getRolesToGrant (fails when the
        schema is gone), withRolesGranted around `REVOKE ALL PRIVILEGES ON SCHEMA s FROM r`."""
        schema, role = old["schema"], old["role"]
        with self.step(change, old.get("database")) as step:
            self.lock_role(step, role)
            owners = self._schema_owners(step, schema)
            self.with_roles_granted(step, owners, lambda: step.exec(
                sql.SQL("REVOKE ALL PRIVILEGES ON SCHEMA {} FROM {}").format(ident(schema), ident(role))))

    # -- DefaultPrivileges: resource_postgresql_default_privileges.go --------------------
    def create_defaultprivileges(self, inputs: dict[str, Any], change: Change) -> dict[str, Any]:
        """resourcePostgreSQLDefaultPrivilegesCreate (also its Update), one transaction: pgLockRole(owner),
        withRolesGranted([owner]) around `ALTER DEFAULT PRIVILEGES FOR ROLE owner IN SCHEMA s REVOKE ALL
        ON <TYPE>S FROM r` then `... GRANT <privileges> ON <TYPE>S TO r`."""
        owner, schema, role = inputs["owner"], inputs.get("schema"), inputs["role"]
        _, keyword = DEFAULT_ACL_TYPES[inputs["objectType"]]
        prefix = sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {}{}").format(
            ident(owner), sql.SQL(" IN SCHEMA {}").format(ident(schema)) if schema else sql.SQL(""))
        with self.step(change, inputs.get("database")) as step:
            self.lock_role(step, owner)

            def grant() -> None:
                step.exec(sql.SQL("{} REVOKE ALL ON {} FROM {}").format(prefix, sql.SQL(keyword), ident(role)))
                if inputs.get("privileges"):
                    step.exec(sql.SQL("{} GRANT {} ON {} TO {}{}").format(
                        prefix, privilege_list(inputs["privileges"]), sql.SQL(keyword), ident(role),
                        sql.SQL(" WITH GRANT OPTION" if inputs.get("withGrantOption") else "")))
            self.with_roles_granted(step, [owner], grant)
        return self._read_or_fail(DEFAULT_PRIVILEGES, inputs)

    def update_defaultprivileges(self, old: dict[str, Any], inputs: dict[str, Any], change: Change) -> dict[str, Any]:
        """Update is resourcePostgreSQLDefaultPrivilegesCreate upstream."""
        return self.create_defaultprivileges(inputs, change)

    def read_defaultprivileges(self, old: dict[str, Any]) -> dict[str, Any] | None:
        """resourcePostgreSQLDefaultPrivilegesRead / readRoleDefaultPrivileges: gone when the role or
        schema is, or when nothing is granted while privileges are declared."""
        conn = self.conn(old.get("database"))
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (old["role"],)).fetchone():
            return None
        if old.get("schema") and not conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (old["schema"],)).fetchone():
            return None
        objtype, _ = DEFAULT_ACL_TYPES[old["objectType"]]
        rows = conn.execute("""
            SELECT a.privilege_type FROM pg_default_acl d
            JOIN pg_namespace n ON n.oid = d.defaclnamespace, aclexplode(d.defaclacl) a
            WHERE d.defaclobjtype = %s AND n.nspname = %s
              AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %s)
              AND pg_get_userbyid(a.grantor) = %s""", (objtype, old.get("schema"), old["role"], old["owner"])).fetchall()
        granted = sorted({r[0] for r in rows})
        if not granted and old.get("privileges"):
            return None
        out = dict(old)
        if granted != normalized("privileges", old.get("privileges") or []):
            out["privileges"] = granted
        return out

    def delete_defaultprivileges(self, old: dict[str, Any], change: Change) -> None:
        """resourcePostgreSQLDefaultPrivilegesDelete, one transaction: pgLockRole(owner),
        withRolesGranted([owner]) around `ALTER DEFAULT PRIVILEGES ... REVOKE ALL ON <TYPE>S FROM r`."""
        owner, schema, role = old["owner"], old.get("schema"), old["role"]
        _, keyword = DEFAULT_ACL_TYPES[old["objectType"]]
        with self.step(change, old.get("database")) as step:
            self.lock_role(step, owner)
            self.with_roles_granted(step, [owner], lambda: step.exec(
                sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {}{} REVOKE ALL ON {} FROM {}").format(
                    ident(owner), sql.SQL(" IN SCHEMA {}").format(ident(schema)) if schema else sql.SQL(""),
                    sql.SQL(keyword), ident(role))))

    # -- Extension: resource_postgresql_extension.go -------------------------------------
    def create_extension(self, inputs: dict[str, Any], change: Change) -> dict[str, Any]:
        """resourcePostgreSQLExtensionCreate: `CREATE EXTENSION IF NOT EXISTS name [SCHEMA s]
        [VERSION v] [CASCADE]` (a no-op when it exists in any schema), then the Read, which stores
        the schema it really is in."""
        parts = [sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(ident(inputs["name"]))]
        if inputs.get("schema"):
            parts.append(sql.SQL("SCHEMA {}").format(ident(inputs["schema"])))
        if inputs.get("version"):
            parts.append(sql.SQL("VERSION {}").format(ident(inputs["version"])))
        if inputs.get("createCascade"):
            parts.append(sql.SQL("CASCADE"))
        with self.step(change, inputs.get("database")) as step:
            step.exec(sql.SQL(" ").join(parts))
        out = self._read_or_fail(EXTENSION, inputs)
        if inputs.get("schema") and out.get("schema") != inputs["schema"]:
            change.detail = f"already installed in schema {out['schema']}: CREATE EXTENSION IF NOT EXISTS did nothing"
        return out

    def read_extension(self, old: dict[str, Any]) -> dict[str, Any] | None:
        """resourcePostgreSQLExtensionReadImpl: the schema and version it is in now; gone when absent."""
        row = self.conn(old.get("database")).execute(
            "SELECT n.nspname, e.extversion FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = %s", (old["name"],)).fetchone()
        if row is None:
            return None
        return {**old, "schema": row[0], "version": row[1],
                "database": old.get("database") or self.connection.database}

    def update_extension(self, old: dict[str, Any], inputs: dict[str, Any], change: Change) -> dict[str, Any]:
        """resourcePostgreSQLExtensionUpdate, one transaction: setExtSchema (`ALTER EXTENSION .. SET
        SCHEMA ..`) and setExtVersion (`ALTER EXTENSION .. UPDATE TO ..`), each when changed."""
        name = inputs["name"]
        with self.step(change, inputs.get("database")) as step:
            if inputs.get("schema") and inputs["schema"] != old.get("schema"):
                step.exec(sql.SQL("ALTER EXTENSION {} SET SCHEMA {}").format(ident(name), ident(inputs["schema"])))
            if inputs.get("version") and inputs["version"] != old.get("version"):
                step.exec(sql.SQL("ALTER EXTENSION {} UPDATE TO {}").format(ident(name), ident(inputs["version"])))
        return self._read_or_fail(EXTENSION, inputs)

    def delete_extension(self, old: dict[str, Any], change: Change) -> None:
        """resourcePostgreSQLExtensionDelete: `DROP EXTENSION name RESTRICT` (CASCADE with drop_cascade)."""
        mode = sql.SQL("CASCADE" if old.get("dropCascade") else "RESTRICT")
        with self.step(change, old.get("database")) as step:
            step.exec(sql.SQL("DROP EXTENSION {} {}").format(ident(old["name"]), mode))

    def _read_or_fail(self, type_: str, inputs: dict[str, Any]) -> dict[str, Any]:
        out = self.read(type_, dict(inputs))
        if out is None:
            raise ApplyError(f"{type_.split(':')[-1]} {inputs.get('name', '')} was not found right after it was written")
        return out


def _kind(type_: str) -> str:
    return type_.split(":")[-1].lower()


def _ms(value: str | None) -> int:
    """A role setting as the provider reads it (readStatementTimeout): an integer, 0 when unset."""
    if not value:
        return 0
    units = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000}
    for unit, factor in units.items():
        if value.endswith(unit) and value[: -len(unit)].isdigit():
            return int(value[: -len(unit)]) * factor
    return int(value) if value.isdigit() else 0


def sql_error(exc: psycopg.Error) -> str:
    """A server error as one line without secrets, with its SQLSTATE."""
    text = str(exc).strip()
    message = redact(text.splitlines()[0]) if text else type(exc).__name__
    state = getattr(exc, "sqlstate", None)
    return f"{message} (SQLSTATE {state})" if state else message
