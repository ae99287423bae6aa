"""The catalog audit's queries: a fixed handful, whatever the size of the database.

1. principals: roles, memberships, role/database settings, the database and the schema;
2. relation ACLs: tables, views, materialized views, partitioned and foreign tables and
   sequences, outside the schema for grantees umami can use, inside it for everyone but
   umami's own ownership;
3. column ACLs, chosen the same way (on a second session, at the same time as 2, when the
   audit has one);
4. other ACLs: umami's schema and the databases (all entries), other schemas, SECURITY
   DEFINER functions, large objects, foreign-data wrappers, foreign servers and user
   mappings usable by umami;
5. what umami owns or is granted anywhere (pg_shdepend, across databases);
6. default privileges.

ACLs are exploded with `aclexplode`, NULL ACLs replaced by `acldefault` so owners'
implicit rights and PostgreSQL's defaults for PUBLIC are seen like any grant. Every
catalog used here is readable by any role, so the audit can run as umami itself.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Any, Callable, NamedTuple

import psycopg
from psycopg import sql
from psycopg.rows import namedtuple_row

from ops.verify.checks.principals import Principals, Role, Setting, resolve_app_roles
from ops.core.errors import OpsError

# pg_shdepend records no dependency on this role (PostgreSQL pins it): reaching it means exploding every ACL.
BOOTSTRAP_SUPERUSER = 10
SYSTEM_SCHEMA_FILTER = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'"

# For the audit's sessions: JIT compilation and parallel workers cost more than these scans take.
SESSION_SETTINGS = "set_config('jit', 'off', false) AS jit, set_config('max_parallel_workers_per_gather', '0', false) AS workers"

PRINCIPALS_SQL = f"""
SELECT d.oid AS database_oid, d.datname AS database_name, d.datdba AS database_owner,
       (SELECT n.oid FROM pg_namespace n WHERE n.nspname = %(schema)s) AS schema_oid,
       (SELECT n.nspowner FROM pg_namespace n WHERE n.nspname = %(schema)s) AS schema_owner,
       current_setting('lo_compat_privileges')::boolean AS lo_compat_privileges,
       current_user AS current_user,
       {SESSION_SETTINGS},
       (SELECT json_agg(json_build_array(r.oid::int8, r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole,
                                         r.rolcreatedb, r.rolcanlogin, r.rolreplication, r.rolbypassrls,
                                         r.rolconnlimit))
          FROM pg_roles r) AS roles,
       (SELECT json_agg(json_build_array(m.member::int8, m.roleid::int8)) FROM pg_auth_members m) AS grants,
       (SELECT json_agg(json_build_array(s.setdatabase::int8, s.setrole::int8, s.setconfig))
          FROM pg_db_role_setting s WHERE s.setdatabase IN (0, d.oid)) AS settings
FROM pg_database d WHERE d.datname = current_database()
"""

# Rows: kind, oid, nsp_oid, schema, name, detail (column or relkind), owner, grantor, grantee,
# privilege, grantable, explicit (ACL set, not PostgreSQL's default), initial (granted by an
# extension's install script, recorded in pg_init_privs).
#
# Set-based: only the ACLs that can hold a row of interest are exploded. Outside the schema those
# are the ACLs naming one of umami's roles, found through pg_shdepend's index (PostgreSQL records
# every role an ACL names, but not PUBLIC and not the bootstrap superuser, which it pins), the ACLs
# with a PUBLIC entry (an entry's text starts with `=`), and the objects those roles own (a NULL
# ACL grants the owner). Inside the schema every ACL is. aclexplode runs in the select list (value
# per call) rather than in FROM (a tuplestore per row): a fifth faster on large catalogs.
def _named_in_acl(columns: bool) -> str:
    """The relations (or columns) whose ACL names one of umami's grantees."""
    return f"""
WITH named AS MATERIALIZED (
    SELECT DISTINCT d.objid, d.objsubid FROM pg_shdepend d
    WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = ANY(%(grantees)s::oid[]) AND d.deptype = 'a'
      AND d.classid = 'pg_class'::regclass AND d.objsubid {'>' if columns else '='} 0
      AND d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
)"""


# An ACL holding an entry granted to PUBLIC, in the array's text form: the entry starts with `=`, right
# after the `{` or a comma, or after the `"` array_out adds when a name in the entry needs quoting.
# (LIKE ANY reads the text once and matches faster than a regular expression; `%%` is psycopg's `%`.)
def _has_public_entry(acl: str) -> str:
    return f"""{acl}::text LIKE ANY (ARRAY['{{=%%', '%%,=%%', '{{"=%%', '%%,"=%%'])"""


RELATION_ACL_SQL = f"""{_named_in_acl(columns=False)}
SELECT 'relation' AS kind, x.oid, x.nsp_oid, x.schema, x.name, x.detail, x.owner, (x.a).grantor,
       (x.a).grantee, (x.a).privilege_type AS privilege, (x.a).is_grantable AS grantable, x.explicit,
       EXISTS (SELECT 1 FROM pg_init_privs ip, aclexplode(ip.initprivs) i
               WHERE ip.objoid = x.oid AND ip.classoid = 'pg_class'::regclass AND ip.objsubid = 0
                 AND i.grantee = (x.a).grantee AND i.privilege_type = (x.a).privilege_type) AS initial
FROM (
    SELECT c.oid, n.oid AS nsp_oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS detail,
           c.relowner AS owner, c.relacl IS NOT NULL AS explicit,
           aclexplode(coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char",
                                                    c.relowner))) AS a
    FROM (SELECT * FROM pg_class r
          WHERE r.relkind IN ('r', 'v', 'm', 'p', 'f', 'S')
            AND (r.relnamespace = %(schema_oid)s::oid OR r.relowner = ANY(%(grantees)s::oid[])
                 OR r.oid IN (SELECT objid FROM named)
                 OR {_has_public_entry('r.relacl')} OR (%(pinned)s AND r.relacl IS NOT NULL))
          OFFSET 0) c  -- the namespace is looked up for the few relations kept
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE {SYSTEM_SCHEMA_FILTER}
) x
WHERE CASE WHEN x.nsp_oid = %(schema_oid)s::oid THEN ((x.a).grantee <> %(umami)s::oid OR x.owner <> %(umami)s::oid)
           ELSE (x.a).grantee = ANY(%(grantees)s::oid[]) END
"""

# The same rows for column ACLs. Reading every column's ACL is a full scan of pg_attribute (a PUBLIC
# grant on a column is recorded nowhere else), so the audit runs it on a second session, at the same
# time as the relations' query, when it has one. The scan keeps only the columns of interest before
# looking up their relation; the schema's relations come from pg_depend's index.
COLUMN_ACL_SQL = f"""{_named_in_acl(columns=True)},
in_schema AS MATERIALIZED (
    SELECT objid FROM pg_depend
    WHERE refclassid = 'pg_namespace'::regclass AND refobjid = %(schema_oid)s::oid AND classid = 'pg_class'::regclass
)
SELECT 'column' AS kind, x.oid, x.nsp_oid, x.schema, x.name, x.detail, x.owner, (x.a).grantor, (x.a).grantee,
       (x.a).privilege_type AS privilege, (x.a).is_grantable AS grantable, true AS explicit, false AS initial
FROM (
    SELECT c.oid, n.oid AS nsp_oid, n.nspname AS schema, c.relname AS name, att.attname::text AS detail,
           c.relowner AS owner, aclexplode(att.attacl) AS a
    FROM (SELECT attrelid, attname, attacl FROM pg_attribute a
          WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped
            AND (a.attrelid IN (SELECT objid FROM in_schema)
                 OR (a.attrelid, a.attnum::int) IN (SELECT objid, objsubid FROM named)
                 OR {_has_public_entry('a.attacl')} OR %(pinned)s)
          OFFSET 0) att
    JOIN pg_class c ON c.oid = att.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE {SYSTEM_SCHEMA_FILTER}
) x
WHERE CASE WHEN x.nsp_oid = %(schema_oid)s::oid THEN (x.a).grantee <> %(umami)s::oid
           ELSE (x.a).grantee = ANY(%(grantees)s::oid[]) END
"""

OBJECT_ACL_SQL = f"""
SELECT 'schema' AS kind, n.oid, n.oid AS nsp_oid, n.nspname AS schema, n.nspname AS name, NULL::text AS detail,
       n.nspowner AS owner, a.grantor, a.grantee, a.privilege_type AS privilege, a.is_grantable AS grantable,
       n.nspacl IS NOT NULL AS explicit,
       EXISTS (SELECT 1 FROM pg_init_privs ip, aclexplode(ip.initprivs) i
               WHERE ip.objoid = n.oid AND ip.classoid = 'pg_namespace'::regclass
                 AND i.grantee = a.grantee AND i.privilege_type = a.privilege_type) AS initial
FROM pg_namespace n CROSS JOIN LATERAL aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
WHERE {SYSTEM_SCHEMA_FILTER} AND (n.oid = %(schema_oid)s::oid OR a.grantee = ANY(%(grantees)s::oid[]))
UNION ALL
SELECT 'database', d.oid, NULL, NULL, d.datname, NULL, d.datdba, a.grantor, a.grantee, a.privilege_type,
       a.is_grantable, d.datacl IS NOT NULL, false
FROM pg_database d CROSS JOIN LATERAL aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
WHERE d.datallowconn OR d.datname = current_database()
UNION ALL
SELECT 'function', p.oid, n.oid, n.nspname, p.oid::regprocedure::text, NULL, p.proowner, a.grantor, a.grantee,
       a.privilege_type, a.is_grantable, p.proacl IS NOT NULL,
       EXISTS (SELECT 1 FROM pg_init_privs ip, aclexplode(ip.initprivs) i
               WHERE ip.objoid = p.oid AND ip.classoid = 'pg_proc'::regclass
                 AND i.grantee = a.grantee AND i.privilege_type = a.privilege_type)
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
CROSS JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
WHERE p.prosecdef AND {SYSTEM_SCHEMA_FILTER} AND a.grantee = ANY(%(grantees)s::oid[])
UNION ALL
SELECT 'large object', l.oid, NULL, NULL, l.oid::text, NULL, l.lomowner, a.grantor, a.grantee, a.privilege_type,
       a.is_grantable, l.lomacl IS NOT NULL, false
FROM pg_largeobject_metadata l
CROSS JOIN LATERAL aclexplode(coalesce(l.lomacl, acldefault('L', l.lomowner))) a
WHERE (l.lomacl IS NOT NULL OR l.lomowner = ANY(%(grantees)s::oid[])) AND a.grantee = ANY(%(grantees)s::oid[])
UNION ALL
SELECT 'foreign-data wrapper', w.oid, NULL, NULL, w.fdwname, NULL, w.fdwowner, a.grantor, a.grantee,
       a.privilege_type, a.is_grantable, w.fdwacl IS NOT NULL, false
FROM pg_foreign_data_wrapper w
CROSS JOIN LATERAL aclexplode(coalesce(w.fdwacl, acldefault('F', w.fdwowner))) a
WHERE a.grantee = ANY(%(grantees)s::oid[])
UNION ALL
SELECT 'foreign server', s.oid, NULL, NULL, s.srvname, NULL, s.srvowner, a.grantor, a.grantee,
       a.privilege_type, a.is_grantable, s.srvacl IS NOT NULL, false
FROM pg_foreign_server s
CROSS JOIN LATERAL aclexplode(coalesce(s.srvacl, acldefault('S', s.srvowner))) a
WHERE a.grantee = ANY(%(grantees)s::oid[])
UNION ALL
SELECT 'user mapping', u.umid, NULL, NULL, u.srvname, NULL, NULL, NULL, u.umuser, 'MAPPING', false, true, false
FROM pg_user_mappings u
WHERE u.umuser = ANY(%(grantees)s::oid[])
"""

# What umami owns ('o') or is named in an ACL of ('a'), in every database. Objects of other
# databases cannot be identified from here; only their database is known.
SHDEPEND_SQL = """
SELECT d.deptype, d.dbid, db.datname AS database, d.classid::regclass::text AS catalog,
       o.type, o.schema, o.name, o.identity
FROM pg_shdepend d
LEFT JOIN pg_database db ON db.oid = d.dbid
LEFT JOIN LATERAL (
    SELECT * FROM pg_identify_object(d.classid, d.objid, d.objsubid)
    WHERE d.dbid IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
) o ON true
WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = %(umami)s::oid AND d.deptype IN ('o', 'a')
"""

DEFAULT_ACL_SQL = """
SELECT d.defaclrole AS role, d.defaclnamespace AS nsp_oid, n.nspname AS schema, d.defaclobjtype::text AS objtype,
       a.grantee, a.privilege_type AS privilege, a.is_grantable AS grantable
FROM pg_default_acl d
LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
CROSS JOIN LATERAL aclexplode(d.defaclacl) a
"""


class AclRow(NamedTuple):
    kind: str
    oid: int
    nsp_oid: int | None
    schema: str | None
    name: str
    detail: str | None
    owner: int | None
    grantor: int | None
    grantee: int
    privilege: str
    grantable: bool
    explicit: bool
    initial: bool

    @property
    def qualified(self) -> str:
        base = f"{self.schema}.{self.name}" if self.schema and self.kind in ("relation", "column", "function") else self.name
        return f"{base}.{self.detail}" if self.kind == "column" else base


class SharedDependency(NamedTuple):
    deptype: str  # 'o' owner, 'a' named in an ACL
    dbid: int
    database: str | None
    catalog: str
    type: str | None
    schema: str | None
    name: str | None
    identity: str | None


class DefaultAcl(NamedTuple):
    role: int
    nsp_oid: int  # 0: every schema
    schema: str | None
    objtype: str  # r tables, S sequences, f functions, T types, n schemas
    grantee: int
    privilege: str
    grantable: bool


class Catalog:
    """Runs the audit's queries once each on `conn` and counts them.

    `second_session`, when given, opens (or returns) another session of the same login: the
    column ACLs are read on it while `conn` reads the relations' (each is a full catalog scan).
    """

    def __init__(self, conn: psycopg.Connection, *, schema: str, umami_role: str,
                 admin_role: str | None, app_roles: tuple[str, ...],
                 second_session: Callable[[], psycopg.Connection] | None = None):
        self.conn = conn
        self.schema = schema
        self.umami_role = umami_role
        self.admin_role = admin_role
        self.declared_app_roles = app_roles
        self.second_session = second_session
        self.queries = 0
        self._counting = threading.Lock()

    def fetch(self, statement: str | sql.Composable, params: dict[str, Any],
              conn: psycopg.Connection | None = None) -> list[Any]:
        """One query of the audit (the tenant matrix's included), counted; on `conn` or the audit's."""
        conn = conn or self.conn
        with self._counting:
            self.queries += 1
        with conn.cursor(row_factory=namedtuple_row) as cur:
            rows = cur.execute(statement, params).fetchall()
        if not conn.autocommit:
            conn.rollback()  # end the read-only transaction: no snapshot or lock is held between queries
        return rows

    def _fetch_on_second_session(self, statement: str, params: dict[str, Any]) -> list[Any] | None:
        """`statement` on the second session; None when it cannot be opened (too many connections...)."""
        try:
            conn = self.second_session()
        except OpsError:
            return None
        conn.execute(f"SELECT {SESSION_SETTINGS}")  # the principals query set them on the first
        return self.fetch(statement, params, conn)

    @cached_property
    def principals(self) -> Principals:
        (row,) = self.fetch(PRINCIPALS_SQL, {"schema": self.schema})
        roles = {r[0]: Role(*r) for r in row.roles or []}
        grants: dict[int, list[int]] = {}
        for member, granted in row.grants or []:
            grants.setdefault(member, []).append(granted)
        settings = []
        for database, role, config in row.settings or []:
            for entry in config or []:
                name, _, value = entry.partition("=")
                settings.append(Setting(database, role, name.lower(), value))
        principals = Principals(
            roles=roles, grants=grants, database_oid=row.database_oid, database_name=row.database_name,
            database_owner=row.database_owner, schema_oid=row.schema_oid, schema_owner=row.schema_owner,
            settings=settings, lo_compat_privileges=row.lo_compat_privileges, current_user=row.current_user,
        )
        principals.umami = principals.by_name(self.umami_role)
        if principals.umami is None:
            raise OpsError(f"role {self.umami_role} does not exist (database {row.database_name})")
        if principals.schema_oid is None:
            raise OpsError(f"schema {self.schema} does not exist in database {row.database_name}")
        principals.admin = principals.by_name(self.admin_role)
        # Not the auditor (current_user): discovery must not depend on who runs the audit.
        exclude = {self.umami_role} | ({self.admin_role} if self.admin_role else set())
        resolve_app_roles(principals, self.declared_app_roles, exclude=exclude)
        return principals

    @property
    def principals_if_loaded(self) -> Principals | None:
        """The principals when a check already needed them (the report names the application roles)."""
        return self.__dict__.get("principals")

    def _acl_params(self) -> dict[str, Any]:
        p = self.principals
        grantees = p.umami_grantees()
        return {"schema_oid": p.schema_oid, "umami": p.umami.oid, "grantees": sorted(grantees),
                "pinned": BOOTSTRAP_SUPERUSER in grantees}

    @cached_property
    def relation_acls(self) -> list[AclRow]:
        """Relations' and columns' ACL rows (columns read at the same time on the second session)."""
        params = self._acl_params()
        columns = None
        if self.second_session is not None:
            with ThreadPoolExecutor(max_workers=1) as pool:
                on_second = pool.submit(self._fetch_on_second_session, COLUMN_ACL_SQL, params)
                rows = self.fetch(RELATION_ACL_SQL, params)
                columns = on_second.result()
        else:
            rows = self.fetch(RELATION_ACL_SQL, params)
        if columns is None:
            columns = self.fetch(COLUMN_ACL_SQL, params)
        return [AclRow(*r) for r in rows + columns]

    @cached_property
    def object_acls(self) -> list[AclRow]:
        return [AclRow(*r) for r in self.fetch(OBJECT_ACL_SQL, self._acl_params())]

    @cached_property
    def shared_dependencies(self) -> list[SharedDependency]:
        return [SharedDependency(*r) for r in self.fetch(SHDEPEND_SQL, {"umami": self.principals.umami.oid})]

    @cached_property
    def default_acls(self) -> list[DefaultAcl]:
        return [DefaultAcl(*r) for r in self.fetch(DEFAULT_ACL_SQL, {})]

    @cached_property
    def schema_usage(self) -> dict[int, set[int]]:
        """Schema oid -> grantees holding USAGE on it (owners included)."""
        usage: dict[int, set[int]] = {}
        for row in self.object_acls:
            if row.kind == "schema" and row.privilege == "USAGE":
                usage.setdefault(row.oid, set()).add(row.grantee)
        return usage
