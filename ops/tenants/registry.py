"""The tenant registry: a table the stack's tenants are listed in, readable only by one service role.

pulumi-postgresql has no table resource, so the registry is kept by ops, as the admin, in one
transaction (`python -m ops.tenants registry`, and the rehearsal after its resources): `check`
refuses, in one line and before any change, a registry that cannot be kept here; `sync` issues
only what differs from the stack's outputs, and without `apply` rolls the same transaction back,
so a preview lists exactly the statements an apply runs. A registry in step yields no statement:
a second run changes nothing.

The table (its columns are what `ops.verify` reads when the outputs declare no tenants):

    id          bigint, identity, primary key
    name        text, unique          the tenant name (`umami:tenants`)
    schema_name text, unique          its schema, tenant_<name>
    active      boolean, default true false once the stack no longer declares it (rows are never deleted)
    created_at  timestamptz, default now()

Its ACL: the admin owns it; the service role (`tenantServiceRole`) may SELECT, and USAGE on its
schema when it lacks it; nobody else holds anything on it or its identity sequence (PUBLIC
included), whatever default privileges a DBA set.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from facts import CONFIG_NAMESPACE as NAMESPACE
from facts import tenant_schema
from ops.core.db import one_line
from ops.core.errors import OpsError
from ops.core.outputs import StackOutputs

COLUMNS = ("id", "name", "schema_name", "active", "created_at")
# What a table already there must hold to be kept as the registry (type names as format_type gives them).
REQUIRED_TYPES = {"name": ("text", "character varying"), "schema_name": ("text", "character varying"),
                  "active": ("boolean",)}
PUBLIC_GRANTEE = 0  # aclexplode's grantee for PUBLIC


@dataclass(frozen=True)
class Registry:
    """Where the registry is and who may read it (outputs tenantRegistry and tenantServiceRole)."""

    schema: str
    table: str
    service_role: str

    @classmethod
    def of(cls, outputs: StackOutputs) -> "Registry | None":
        """The registry the outputs configure, or None (the default: off)."""
        value, role = outputs.database.tenant_registry, outputs.database.tenant_service_role
        if not value:
            return None
        schema, dot, table = value.partition(".")
        if not (dot and schema and table and "." not in table):
            raise OpsError(f"tenantRegistry={value!r} is not schema.table")
        if not role:
            raise OpsError(f"tenantRegistry={value} has no tenantServiceRole: the outputs must name the role "
                           "that may read it")
        return cls(schema, table, role)

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.table)


@dataclass(frozen=True)
class Outcome:
    """What `sync` ran (or, without apply, would run), and the tenants the registry lists afterwards."""

    registry: Registry
    statements: tuple[str, ...]
    active: tuple[str, ...]
    inactive: tuple[str, ...]
    applied: bool

    def lines(self) -> list[str]:
        """Each statement, indented, then one line saying what happened and what the registry lists."""
        listed = (f"{len(self.active)} active tenant(s){': ' + ', '.join(self.active) if self.active else ''}, "
                  f"{len(self.inactive)} inactive{': ' + ', '.join(self.inactive) if self.inactive else ''}, "
                  f"readable only by {self.registry.service_role}")
        shown = [f"  {statement}" for statement in self.statements]
        if not self.statements:
            return [*shown, f"  in step with the stack, nothing to change: {listed}"]
        if self.applied:
            return [*shown, f"  applied {len(self.statements)} statement(s): {listed}"]
        return [*shown, f"  plan only, nothing changed: --apply runs {len(self.statements)} statement(s), "
                        f"after which {listed}"]


def check(conn: psycopg.Connection, registry: Registry) -> None:
    """Refuse, in one line, a registry that cannot be kept: its schema or the service role missing, or
    a relation by its name that is not an admin-owned table with the registry's columns."""
    where = f"{NAMESPACE}:tenantRegistry={registry.name}"
    if not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (registry.schema,)).fetchone():
        raise OpsError(f"{where}: schema {registry.schema} does not exist in database {conn.info.dbname}; "
                       "create it first, or use public.tenants")
    if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (registry.service_role,)).fetchone():
        raise OpsError(f"{NAMESPACE}:tenantServiceRole={registry.service_role}: role {registry.service_role} "
                       "does not exist; create the service's role first (the stack never creates it)")
    found = conn.execute(
        "SELECT c.relkind, pg_get_userbyid(c.relowner), current_user FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
        (registry.schema, registry.table)).fetchone()
    if found is None:
        return
    kind, owner, admin = found
    if kind not in ("r", "p"):
        raise OpsError(f"{where}: {registry.name} exists and is not a table (relkind {kind}); name another table")
    if owner != admin:
        raise OpsError(f"{where}: {registry.name} is owned by {owner}, not by the admin {admin} that keeps it; "
                       f"ALTER TABLE ... OWNER TO {admin}, or name another table")
    types = dict(conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        (registry.identifier.as_string(conn),)).fetchall())
    missing = [c for c in COLUMNS if c not in types]
    wrong = [f"{c} is {types[c]}" for c, allowed in REQUIRED_TYPES.items()
             if c in types and not types[c].startswith(allowed)]
    if missing or wrong:
        what = "; ".join(([f"lacks {', '.join(missing)}"] if missing else []) + wrong)
        raise OpsError(f"{where}: {registry.name} exists but is not a tenant registry ({what}); "
                       "name another table")


def sync(conn: psycopg.Connection, registry: Registry, tenants: tuple[str, ...], *, apply: bool) -> Outcome:
    """Bring the registry in step with `tenants` in one transaction, then prove the service role can read
    it. Without `apply` the same transaction is rolled back: the statements are exactly those an apply
    runs, and nothing changes. A failure rolls everything back and is one line."""
    statements: list[str] = []

    def run(statement: sql.Composable) -> None:
        statements.append(statement.as_string(conn))
        conn.execute(statement)

    try:
        with conn.transaction(force_rollback=not apply):
            check(conn, registry)
            if not _exists(conn, registry):
                run(sql.SQL("CREATE TABLE {} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                            "name text NOT NULL UNIQUE, schema_name text NOT NULL UNIQUE, "
                            "active boolean NOT NULL DEFAULT true, created_at timestamptz NOT NULL DEFAULT now())"
                            ).format(registry.identifier))
            # After a CREATE too: the admin's default privileges may have granted the new table to others.
            for statement in _acl_statements(conn, registry):
                run(statement)
            if not conn.execute("SELECT has_schema_privilege(%s, %s, 'USAGE')",
                                (registry.service_role, registry.schema)).fetchone()[0]:
                run(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                    sql.Identifier(registry.schema), sql.Identifier(registry.service_role)))
            rows = {name: (schema, active) for name, schema, active in conn.execute(
                sql.SQL("SELECT name, schema_name, active FROM {}").format(registry.identifier)).fetchall()}
            for statement in _row_statements(registry, tenants, rows):
                run(statement)
            _readable_by_the_service_role(conn, registry)
    except psycopg.Error as exc:
        raise OpsError(f"tenant registry {registry.name}: {one_line(exc)}; rolled back, nothing changed") from None
    inactive = tuple(sorted(n for n in rows if n not in set(tenants)))
    return Outcome(registry, tuple(statements), tuple(sorted(tenants)), inactive, applied=apply)


def _exists(conn: psycopg.Connection, registry: Registry) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (registry.identifier.as_string(conn),)).fetchone()[0]


# Who holds what on the registry and its identity sequence, the owner aside; column grants included.
ACL_SQL = """
    WITH rel AS (SELECT to_regclass(%(name)s) AS oid),
    objects AS (
        SELECT c.oid, c.relkind, n.nspname, c.relname, c.relacl, c.relowner
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, rel
         WHERE c.oid = rel.oid
            OR (c.relkind = 'S' AND c.oid IN (SELECT d.objid FROM pg_depend d
                                               WHERE d.classid = 'pg_class'::regclass AND d.refobjid = rel.oid
                                                 AND d.deptype IN ('a', 'i'))))
    SELECT o.relkind, o.nspname, o.relname, a.grantee, a.privilege_type, a.is_grantable
      FROM objects o, aclexplode(o.relacl) a WHERE o.relacl IS NOT NULL AND a.grantee <> o.relowner
    UNION ALL
    SELECT o.relkind, o.nspname, o.relname, a.grantee, a.privilege_type || ' (' || t.attname || ')', a.is_grantable
      FROM objects o JOIN pg_attribute t ON t.attrelid = o.oid, aclexplode(t.attacl) a
     WHERE t.attacl IS NOT NULL AND a.grantee <> o.relowner"""


def _acl_statements(conn: psycopg.Connection, registry: Registry) -> list[sql.Composed]:
    """REVOKE ALL (CASCADE: with what was granted onward) from anyone but the owner who holds anything
    beyond the service role's plain SELECT on the table, or anything on its sequence; a table REVOKE
    takes column grants too. Then the service role's SELECT, when it lacks exactly that."""
    held: dict[tuple[str, str, str, int], set[str]] = {}
    for kind, schema, name, grantee, privilege, grantable in conn.execute(
            ACL_SQL, {"name": registry.identifier.as_string(conn)}).fetchall():
        held.setdefault((kind, schema, name, grantee), set()).add(privilege + (" WITH GRANT OPTION" if grantable
                                                                                else ""))
    service = conn.execute("SELECT oid FROM pg_roles WHERE rolname = %s", (registry.service_role,)).fetchone()[0]
    statements, service_reads = [], False
    for (kind, schema, name, grantee), privileges in sorted(held.items()):
        if kind != "S" and grantee == service and privileges == {"SELECT"}:
            service_reads = True
            continue
        who = sql.SQL("PUBLIC") if grantee == PUBLIC_GRANTEE else sql.Identifier(
            conn.execute("SELECT pg_get_userbyid(%s)", (grantee,)).fetchone()[0])
        statements.append(sql.SQL("REVOKE ALL ON {} {} FROM {} CASCADE").format(
            sql.SQL("SEQUENCE" if kind == "S" else "TABLE"), sql.Identifier(schema, name), who))
    if not service_reads:
        statements.append(sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(
            registry.identifier, sql.Identifier(registry.service_role)))
    return statements


def _row_statements(registry: Registry, tenants: tuple[str, ...], rows: dict[str, tuple[str, bool]]
                    ) -> list[sql.Composed]:
    """INSERT the declared tenants the table lacks, reactivate or correct those it has, deactivate
    those the stack no longer declares (rows are never deleted: ids keep their meaning)."""
    table = registry.identifier
    declared = {name: tenant_schema(name) for name in tenants}
    missing = [(n, s) for n, s in sorted(declared.items()) if n not in rows]
    changed = [(n, s) for n, s in sorted(declared.items()) if n in rows and rows[n] != (s, True)]
    retired = sorted(n for n, (_, active) in rows.items() if active and n not in declared)
    statements = []
    if missing:
        statements.append(sql.SQL("INSERT INTO {} (name, schema_name) VALUES {}").format(table, _values(missing)))
    if changed:
        statements.append(sql.SQL("UPDATE {} AS t SET schema_name = v.schema_name, active = true FROM (VALUES {}) "
                                  "AS v (name, schema_name) WHERE t.name = v.name").format(table, _values(changed)))
    if retired:
        statements.append(sql.SQL("UPDATE {} SET active = false WHERE name IN ({})").format(
            table, sql.SQL(", ").join(sql.Literal(n) for n in retired)))
    return statements


def _values(pairs: list[tuple[str, str]]) -> sql.Composed:
    return sql.SQL(", ").join(sql.SQL("({}, {})").format(sql.Literal(a), sql.Literal(b)) for a, b in pairs)


def _readable_by_the_service_role(conn: psycopg.Connection, registry: Registry) -> None:
    """The registry's purpose, proven from the catalog after the change: the service role reads it."""
    ok = conn.execute("SELECT has_schema_privilege(%s, %s, 'USAGE') AND has_table_privilege(%s, %s, 'SELECT')",
                      (registry.service_role, registry.schema, registry.service_role,
                       registry.identifier.as_string(conn))).fetchone()[0]
    if not ok:
        raise OpsError(f"tenant registry {registry.name}: {registry.service_role} still cannot read it (the admin "
                       f"could not grant USAGE on schema {registry.schema}); rolled back, nothing changed")
