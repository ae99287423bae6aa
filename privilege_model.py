"""The privilege model of the umami role: what the stack grants, declared once.

`components/database.py` creates the role, the schema grant and the default privileges
from a `PrivilegeModel`, and `ops.verify` rebuilds the same model from the stack outputs
to check that all of it is there (the `desired` family); the isolation checks look for
anything beyond it. The model also renders the SQL that establishes each of its parts,
which the audit's findings carry as their fixes.

Standard library only: the program and `ops` both import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Role attributes as CREATE ROLE spells them; the model grants LOGIN and INHERIT and denies the rest.
ROLE_ATTRIBUTES = ("LOGIN", "INHERIT", "SUPERUSER", "CREATEDB", "CREATEROLE", "REPLICATION", "BYPASSRLS")
GRANTED_ATTRIBUTES = frozenset({"LOGIN", "INHERIT"})
# PostgreSQL 15 lets only a superuser name these in ALTER ROLE, even to deny them; Aurora's admin is not one.
SUPERUSER_ONLY_ATTRIBUTES = frozenset({"SUPERUSER", "REPLICATION", "BYPASSRLS"})

# The role-level settings the model declares, by their PostgreSQL names.
SEARCH_PATH = "search_path"
STATEMENT_TIMEOUT = "statement_timeout"
IDLE_IN_TRANSACTION_TIMEOUT = "idle_in_transaction_session_timeout"
DECLARED_SETTINGS = (SEARCH_PATH, STATEMENT_TIMEOUT, IDLE_IN_TRANSACTION_TIMEOUT)

SCHEMA_PRIVILEGES = ("USAGE", "CREATE")  # Prisma creates (and so owns) Umami's tables
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
SEQUENCE_PRIVILEGES = ("USAGE", "SELECT", "UPDATE")


def quote_identifier(name: str) -> str:
    """`name` as a quoted SQL identifier: always quoted, embedded double quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class DefaultPrivileges:
    """What the role gets on objects of one type the admin creates in the schema."""

    object_type: str  # the provider's object_type: "table" or "sequence"
    privileges: tuple[str, ...]

    @property
    def objects(self) -> str:
        """The object class as ALTER DEFAULT PRIVILEGES names it: TABLES, SEQUENCES."""
        return f"{self.object_type.upper()}S"


@dataclass(frozen=True)
class PrivilegeModel:
    """Everything the stack grants the umami role, and nothing else.

    `connection_limit` and the timeouts are None when not known (outputs written before they
    were exported); `admin_role` is None when no admin is known. The program passes its admin
    username as it has it (a pulumi.Input, known at deploy time); the SQL needs it as a name.
    """

    database: str
    schema: str
    role: str
    admin_role: Any
    connection_limit: int | None
    statement_timeout_ms: int | None
    idle_in_transaction_timeout_ms: int | None
    attributes: tuple[tuple[str, bool], ...]
    memberships: tuple[str, ...]
    schema_privileges: tuple[str, ...]
    default_privileges: tuple[DefaultPrivileges, ...]

    # -- reading the model ------------------------------------------------------------------
    def has(self, attribute: str) -> bool:
        """Whether the role has `attribute` (one of ROLE_ATTRIBUTES)."""
        return dict(self.attributes)[attribute]

    @property
    def search_path(self) -> tuple[str, ...]:
        return (self.schema,)

    def setting(self, name: str) -> str | None:
        """A declared setting's value as ALTER ROLE ... SET writes it; None when not known."""
        if name == SEARCH_PATH:
            return ", ".join(quote_identifier(s) for s in self.search_path)
        milliseconds = {STATEMENT_TIMEOUT: self.statement_timeout_ms,
                        IDLE_IN_TRANSACTION_TIMEOUT: self.idle_in_transaction_timeout_ms}[name]
        return None if milliseconds is None else str(milliseconds)

    def default_privileges_for(self, object_type: str) -> DefaultPrivileges:
        return next(d for d in self.default_privileges if d.object_type == object_type)

    # -- the SQL that establishes each part ------------------------------------------------------
    @property
    def _role(self) -> str:
        return quote_identifier(self.role)

    def attributes_sql(self, attributes: tuple[str, ...] | None = None) -> str:
        """ALTER ROLE giving the role the model's value of each of `attributes` (default: every one
        the admin may name; CREATE ROLE already denied the superuser-only ones)."""
        chosen = attributes or tuple(a for a in ROLE_ATTRIBUTES if a not in SUPERUSER_ONLY_ATTRIBUTES)
        words = " ".join(a if self.has(a) else f"NO{a}" for a in ROLE_ATTRIBUTES if a in chosen)
        return f"ALTER ROLE {self._role} WITH {words};"

    def connection_limit_sql(self) -> str:
        if self.connection_limit is None:
            raise ValueError(f"the connection limit of {self.role} is not known")
        return f"ALTER ROLE {self._role} CONNECTION LIMIT {self.connection_limit};"

    def setting_sql(self, name: str) -> str:
        """ALTER ROLE ... SET for one declared setting (as the provider issues it)."""
        value = self.setting(name)
        if value is None:
            raise ValueError(f"the declared {name} of {self.role} is not known")
        return f"ALTER ROLE {self._role} SET {name} TO {value};"

    def reset_sql(self, name: str, database: str | None = None) -> str:
        """ALTER ROLE ... RESET for a setting the model does not declare there (in every database,
        or only in `database`)."""
        where = f" IN DATABASE {quote_identifier(database)}" if database else ""
        return f"ALTER ROLE {self._role}{where} RESET {_setting_name(name)};"

    def schema_grant_sql(self, privileges: tuple[str, ...] | None = None) -> str:
        chosen = [p for p in self.schema_privileges if privileges is None or p in privileges]
        return f"GRANT {', '.join(chosen)} ON SCHEMA {quote_identifier(self.schema)} TO {self._role};"

    def default_privileges_sql(self, object_type: str, privileges: tuple[str, ...] | None = None) -> str:
        if not isinstance(self.admin_role, str) or not self.admin_role:
            raise ValueError("the admin role, whose new objects the default privileges cover, is not known")
        declared = self.default_privileges_for(object_type)
        chosen = [p for p in declared.privileges if privileges is None or p in privileges]
        return (f"ALTER DEFAULT PRIVILEGES FOR ROLE {quote_identifier(self.admin_role)} IN SCHEMA "
                f"{quote_identifier(self.schema)} GRANT {', '.join(chosen)} ON {declared.objects} TO {self._role};")

    def statements(self) -> tuple[str, ...]:
        """Every statement establishing the model on an existing role and schema (what is known of it)."""
        sql = [self.attributes_sql()]
        if self.connection_limit is not None:
            sql.append(self.connection_limit_sql())
        sql += [self.setting_sql(name) for name in DECLARED_SETTINGS if self.setting(name) is not None]
        sql.append(self.schema_grant_sql())
        if isinstance(self.admin_role, str) and self.admin_role:
            sql += [self.default_privileges_sql(d.object_type) for d in self.default_privileges]
        return tuple(sql)


def _setting_name(name: str) -> str:
    """A setting's name in SQL: plain names as they are, others quoted part by part (`"my.app".x`)."""
    parts = name.split(".")
    return ".".join(p if p.isidentifier() and p.isascii() and p == p.lower() else quote_identifier(p) for p in parts)


def model_for(*, database: str, schema: str, role: str, admin_role: Any, connection_limit: int | None,
              statement_timeout_ms: int | None, idle_in_transaction_timeout_ms: int | None) -> PrivilegeModel:
    """The privilege model of `role` in `schema` of `database`, the schema owned by `admin_role`."""
    return PrivilegeModel(
        database=database, schema=schema, role=role, admin_role=admin_role,
        connection_limit=connection_limit, statement_timeout_ms=statement_timeout_ms,
        idle_in_transaction_timeout_ms=idle_in_transaction_timeout_ms,
        attributes=tuple((a, a in GRANTED_ATTRIBUTES) for a in ROLE_ATTRIBUTES),
        memberships=(),
        schema_privileges=SCHEMA_PRIVILEGES,
        default_privileges=(DefaultPrivileges("table", TABLE_PRIVILEGES),
                            DefaultPrivileges("sequence", SEQUENCE_PRIVILEGES)),
    )
