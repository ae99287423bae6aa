"""What a destroy would reach outside the schema and the role (family `destroy`, DST-0xx).

`DROP SCHEMA ... CASCADE` drops every object that depends on something in the schema,
wherever it lives: an application view over `umami.website`, a foreign key to it, a
column default or an index using pgcrypto's functions when pgcrypto lives in the
schema, a function whose signature uses one of its types. The provider's role delete
runs `REASSIGN OWNED BY <role> TO <admin>; DROP OWNED BY <role>`, which takes over
whatever the role owns anywhere in the database and revokes every privilege granted
to it. These functions name all of that beforehand, one catalog query each and
whatever the size of the database; the rehearsal calls them before a cascade drop
and before REASSIGN OWNED, and `python -m ops.verify --only destroy` runs them against
a real stack before `pulumi destroy`.

Every catalog read here (pg_depend, pg_shdepend, pg_namespace, ...) and
pg_describe_object are readable by any role: the answers are the same as the admin
or as the umami role. Not covered by anyone: function bodies written as strings
(LANGUAGE plpgsql, or sql without BEGIN ATOMIC) record no dependency, so PostgreSQL
neither drops them nor can anyone list them from the catalogs; they break at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import psycopg

from ops.verify.checks.base import Finding, NotApplicable, Severity, declare

# The objects of the schema: the schema, whatever has it as namespace, and the parts
# (defaults, triggers, rules, policies, operator-family members) of relations and
# families in it. pg_depend's rows are found from these by hash join, once.
_INSIDE = """
target AS (SELECT n.oid FROM pg_namespace n WHERE n.nspname = %(schema)s),
rels AS (SELECT c.oid FROM pg_class c JOIN target t ON c.relnamespace = t.oid),
inside(classid, objid) AS (
    SELECT 'pg_namespace'::regclass::oid, t.oid FROM target t
    UNION ALL SELECT 'pg_class'::regclass::oid, c.oid FROM rels c
    UNION ALL SELECT 'pg_type'::regclass::oid, y.oid FROM pg_type y JOIN target t ON y.typnamespace = t.oid
    UNION ALL SELECT 'pg_proc'::regclass::oid, p.oid FROM pg_proc p JOIN target t ON p.pronamespace = t.oid
    UNION ALL SELECT 'pg_constraint'::regclass::oid, k.oid FROM pg_constraint k JOIN target t ON k.connamespace = t.oid
    UNION ALL SELECT 'pg_extension'::regclass::oid, e.oid FROM pg_extension e JOIN target t ON e.extnamespace = t.oid
    UNION ALL SELECT 'pg_operator'::regclass::oid, o.oid FROM pg_operator o JOIN target t ON o.oprnamespace = t.oid
    UNION ALL SELECT 'pg_opclass'::regclass::oid, o.oid FROM pg_opclass o JOIN target t ON o.opcnamespace = t.oid
    UNION ALL SELECT 'pg_opfamily'::regclass::oid, o.oid FROM pg_opfamily o JOIN target t ON o.opfnamespace = t.oid
    UNION ALL SELECT 'pg_collation'::regclass::oid, o.oid FROM pg_collation o JOIN target t ON o.collnamespace = t.oid
    UNION ALL SELECT 'pg_conversion'::regclass::oid, o.oid FROM pg_conversion o JOIN target t ON o.connamespace = t.oid
    UNION ALL SELECT 'pg_statistic_ext'::regclass::oid, o.oid FROM pg_statistic_ext o
              JOIN target t ON o.stxnamespace = t.oid
    UNION ALL SELECT 'pg_ts_config'::regclass::oid, o.oid FROM pg_ts_config o JOIN target t ON o.cfgnamespace = t.oid
    UNION ALL SELECT 'pg_ts_dict'::regclass::oid, o.oid FROM pg_ts_dict o JOIN target t ON o.dictnamespace = t.oid
    UNION ALL SELECT 'pg_ts_parser'::regclass::oid, o.oid FROM pg_ts_parser o JOIN target t ON o.prsnamespace = t.oid
    UNION ALL SELECT 'pg_ts_template'::regclass::oid, o.oid FROM pg_ts_template o
              JOIN target t ON o.tmplnamespace = t.oid
    UNION ALL SELECT 'pg_default_acl'::regclass::oid, o.oid FROM pg_default_acl o
              JOIN target t ON o.defaclnamespace = t.oid
    UNION ALL SELECT 'pg_attrdef'::regclass::oid, a.oid FROM pg_attrdef a
              JOIN rels c ON c.oid = a.adrelid
    UNION ALL SELECT 'pg_trigger'::regclass::oid, g.oid FROM pg_trigger g
              JOIN rels c ON c.oid = g.tgrelid
    UNION ALL SELECT 'pg_rewrite'::regclass::oid, r.oid FROM pg_rewrite r
              JOIN rels c ON c.oid = r.ev_class
    UNION ALL SELECT 'pg_policy'::regclass::oid, o.oid FROM pg_policy o
              JOIN rels c ON c.oid = o.polrelid
    UNION ALL SELECT 'pg_amop'::regclass::oid, o.oid FROM pg_amop o
              JOIN pg_opfamily f ON f.oid = o.amopfamily JOIN target t ON f.opfnamespace = t.oid
    UNION ALL SELECT 'pg_amproc'::regclass::oid, o.oid FROM pg_amproc o
              JOIN pg_opfamily f ON f.oid = o.amprocfamily JOIN target t ON f.opfnamespace = t.oid
)"""

# What DROP SCHEMA ... CASCADE would drop outside the schema, as PostgreSQL's
# findDependentObjects walks it: the objects outside that depend on one inside
# (extension members and internal parts such as a toast table aside: they belong
# to what they depend on), then their dependents in turn, and the owner of
# each internal part (a view's rewrite rule drops the view, a member its extension).
# Reported: the owners only (never a part whose owner is reported or inside), each
# with what it depends on that is inside the schema or dropped with it.
DEPENDENTS_SQL = f"""
WITH RECURSIVE {_INSIDE},
dropped(classid, objid, objsubid) AS (
    SELECT d.classid, d.objid, d.objsubid
    FROM inside i
    -- One index probe per object of the schema (OFFSET 0 keeps the planner from scanning all of pg_depend).
    CROSS JOIN LATERAL (SELECT * FROM pg_depend d WHERE d.refclassid = i.classid AND d.refobjid = i.objid
                        OFFSET 0) d
    WHERE d.deptype NOT IN ('e', 'i')  -- members and internal parts (a toast table) belong to it
      AND NOT EXISTS (SELECT 1 FROM inside j WHERE j.classid = d.classid AND j.objid = d.objid)
    UNION
    SELECT n.classid, n.objid, n.objsubid
    FROM dropped x
    CROSS JOIN LATERAL (
        SELECT d.classid, d.objid, d.objsubid FROM pg_depend d
        WHERE d.refclassid = x.classid AND d.refobjid = x.objid AND (x.objsubid = 0 OR d.refobjsubid = x.objsubid)
        UNION ALL
        SELECT d.refclassid, d.refobjid, d.refobjsubid FROM pg_depend d
        WHERE d.classid = x.classid AND d.objid = x.objid AND d.objsubid = x.objsubid AND d.deptype IN ('i', 'e')
    ) n
    WHERE NOT EXISTS (SELECT 1 FROM inside j WHERE j.classid = n.classid AND j.objid = n.objid)
),
reported AS (
    SELECT x.* FROM dropped x
    WHERE NOT EXISTS (SELECT 1 FROM pg_depend o WHERE o.classid = x.classid AND o.objid = x.objid
                        AND o.objsubid = x.objsubid AND o.deptype IN ('i', 'e'))
      AND NOT (x.objsubid <> 0 AND EXISTS (SELECT 1 FROM dropped w WHERE w.classid = x.classid
                                             AND w.objid = x.objid AND w.objsubid = 0))
),
-- The object and its internal parts (one level: a view and its rule, an extension and its members).
parts AS (
    SELECT r.classid AS rc, r.objid AS ro, r.objsubid AS rs, r.classid, r.objid, r.objsubid FROM reported r
    UNION ALL
    SELECT r.classid, r.objid, r.objsubid, p.classid, p.objid, p.objsubid
    FROM reported r
    CROSS JOIN LATERAL (SELECT * FROM pg_depend p WHERE p.refclassid = r.classid AND p.refobjid = r.objid
                          AND p.refobjsubid = r.objsubid AND p.deptype IN ('i', 'e') OFFSET 0) p
)
SELECT pg_describe_object(r.classid, r.objid, r.objsubid) AS object,
       coalesce(array_agg(DISTINCT pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid)::text)
                FILTER (WHERE d.refobjid IS NOT NULL), '{{}}') AS refs
FROM reported r
LEFT JOIN parts p ON (p.rc, p.ro, p.rs) = (r.classid, r.objid, r.objsubid)
LEFT JOIN LATERAL (
    SELECT d.refclassid, d.refobjid, d.refobjsubid FROM pg_depend d
    WHERE d.classid = p.classid AND d.objid = p.objid AND d.objsubid = p.objsubid AND d.deptype <> 'e'
      AND NOT (d.refclassid = r.classid AND d.refobjid = r.objid)
    OFFSET 0
) d ON EXISTS (SELECT 1 FROM inside i WHERE i.classid = d.refclassid AND i.objid = d.refobjid)
       OR EXISTS (SELECT 1 FROM dropped w WHERE w.classid = d.refclassid AND w.objid = d.refobjid
                    AND w.objsubid IN (0, d.refobjsubid))
GROUP BY r.classid, r.objid, r.objsubid
"""

# What the role owns (o), is granted (a) or is named in by a policy (r), here and in
# shared catalogs (databases, tablespaces), outside the schema; other databases are
# counted (pg_describe_object can only name objects of the database it runs in).
OWNED_SQL = """
WITH grantee AS (SELECT r.oid FROM pg_roles r WHERE r.rolname = %(role)s),
here AS (SELECT d.oid FROM pg_database d WHERE d.datname = current_database()),""" + _INSIDE + """
SELECT s.deptype::text AS deptype,
       CASE WHEN s.dbid IN (0, (SELECT oid FROM here)) THEN pg_describe_object(s.classid, s.objid, s.objsubid) END
           AS object,
       CASE WHEN s.dbid NOT IN (0, (SELECT oid FROM here)) THEN coalesce(db.datname, 'database #' || s.dbid) END
           AS elsewhere
FROM pg_shdepend s
JOIN grantee g ON s.refclassid = 'pg_authid'::regclass AND s.refobjid = g.oid
LEFT JOIN pg_database db ON db.oid = s.dbid
WHERE s.deptype IN ('o', 'a', 'r')
  AND NOT (s.dbid = (SELECT oid FROM here)
           AND EXISTS (SELECT 1 FROM inside i WHERE i.classid = s.classid AND i.objid = s.objid))
"""

# What a destroy leaves behind: pgcrypto's schema and who owns it, and what the schema
# holds by kind of object and by owner (REASSIGN OWNED gives the role's to the admin).
KEEPS_SQL = """
SELECT (SELECT n.oid IS NOT NULL FROM pg_namespace n WHERE n.nspname = %(schema)s) AS schema_exists,
       (SELECT json_build_object('schema', n.nspname, 'version', e.extversion)
          FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pgcrypto') AS pgcrypto,
       (SELECT coalesce(json_agg(json_build_array(k.kind, k.owner, k.count) ORDER BY k.kind, k.owner), '[]')
          FROM (SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view'
                                      WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence'
                                      WHEN 'f' THEN 'foreign table' WHEN 'i' THEN 'index' WHEN 'I' THEN 'index'
                                      ELSE 'relation' END AS kind,
                       pg_get_userbyid(c.relowner)::text AS owner, count(*) AS count
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = %(schema)s AND c.relkind NOT IN ('i', 'I', 't', 'c')
                  AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_class'::regclass
                                    AND x.objid = c.oid AND x.deptype = 'e')
                GROUP BY 1, 2
                UNION ALL
                SELECT 'function', pg_get_userbyid(p.proowner)::text, count(*)
                FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE n.nspname = %(schema)s
                  AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_proc'::regclass
                                    AND x.objid = p.oid AND x.deptype = 'e')
                GROUP BY 1, 2) k) AS contents
"""

DEPTYPE_LABELS = {"o": "owned", "a": "privileges", "r": "policy"}


@dataclass(frozen=True)
class Dependent:
    """An object outside the schema that a cascade drop of the schema would drop, and why."""

    object: str  # pg_describe_object: "view app.v", "default value for column id of table app.t"
    depends_on: tuple[str, ...]  # inside the schema, or dropped with it

    def describe(self) -> str:
        return f"{self.object} (depends on {', '.join(self.depends_on)})" if self.depends_on else self.object


@dataclass(frozen=True)
class RoleDependency:
    """Something DROP OWNED / REASSIGN OWNED would change outside the schema."""

    kind: str  # owned | privileges | policy | elsewhere
    object: str  # "table scratch.t", "database appdb", or the other database's name
    object_count: int = 0  # elsewhere: how many entries that database holds

    def describe(self) -> str:
        if self.kind == "owned":
            return f"{self.object} (owned: REASSIGN OWNED hands it to the admin)"
        if self.kind == "privileges":
            return f"privileges on {self.object} (granted: DROP OWNED revokes them)"
        if self.kind == "policy":
            return f"{self.object} (names the role: DROP OWNED removes it, or drops the policy)"
        return f"database {self.object}: {self.object_count} object(s) or privileges there, which REASSIGN/" \
               f"DROP OWNED in this database does not touch"


def _execute(conn: psycopg.Connection, query: str, params: dict) -> list[tuple]:
    """Run one catalog query and return its rows, read-only and without side effects on the session.

    It runs in a transaction (a savepoint inside the caller's) that is rolled back, with
    search_path = pg_catalog (and JIT off) for the query alone, so pg_describe_object always schema-qualifies
    ("function app.f(umami.kind)", whatever the role's search_path).
    """
    with conn.transaction(force_rollback=True):
        # JIT compiles for longer than these index probes take.
        conn.execute("SET LOCAL search_path = pg_catalog; SET LOCAL jit = off")
        return conn.execute(query, params).fetchall()


def dependent_objects(conn: psycopg.Connection, schema: str) -> list[Dependent]:
    """Objects outside `schema` that `DROP SCHEMA schema CASCADE` would drop, with what each depends on.

    One query. Deterministic order (by description, byte order). Empty when the schema
    does not exist.
    """
    rows = _execute(conn, DEPENDENTS_SQL, {"schema": schema})
    found = [Dependent(object, tuple(sorted(refs))) for object, refs in rows]
    return sorted(found, key=lambda d: d.object.encode())


def dependents_outside(conn: psycopg.Connection, schema: str) -> list[str]:
    """Every object outside `schema` that depends on an object inside it (directly or through another
    such object), as pg_describe_object names it: "view app.v", "constraint t_w_fkey on table app.t",
    "default value for column id of table app.t", "index app.t_digest", "function app.f(umami.kind)".

    Internal parts are reported as their owner (a view's rewrite rule as the view); the schema's own
    members and extension membership are left out. One catalog query; sorted. A cascade drop of the
    schema must be refused while this is not empty.
    """
    return [d.object for d in dependent_objects(conn, schema)]


def role_dependencies(conn: psycopg.Connection, role: str, schema: str) -> list[RoleDependency]:
    """Outside `schema`: what `role` owns, the privileges granted to it, the policies naming it, and other
    databases where it owns or holds anything (pg_shdepend). One query; sorted by kind, then object."""
    rows = _execute(conn, OWNED_SQL, {"role": role, "schema": schema})
    found: list[RoleDependency] = []
    elsewhere: dict[str, int] = {}
    for deptype, object, other in rows:
        if other is not None:
            elsewhere[other] = elsewhere.get(other, 0) + 1
        elif object is not None:
            found.append(RoleDependency(DEPTYPE_LABELS[deptype], object))
    found = sorted(set(found), key=lambda d: (list(DEPTYPE_LABELS.values()).index(d.kind), d.object.encode()))
    found += [RoleDependency("elsewhere", name, count) for name, count in sorted(elsewhere.items())]
    return found


def owned_outside(conn: psycopg.Connection, role: str, schema: str) -> list[str]:
    """What REASSIGN OWNED BY `role` / DROP OWNED BY `role` would change outside `schema`, labelled:

    - "table scratch.t (owned: REASSIGN OWNED hands it to the admin)": objects the role owns in this
      database (schemas other than `schema` included) and shared ones (databases, tablespaces);
    - "privileges on table public.settings (granted: DROP OWNED revokes them)";
    - "policy p on table app.t (names the role: ...)";
    - "database otherdb: N object(s) or privileges there, ...": other databases, counted.

    One catalog query; deterministic order. Empty when the role does not exist.
    """
    return [d.describe() for d in role_dependencies(conn, role, schema)]


@dataclass(frozen=True)
class Keeps:
    schema_exists: bool
    pgcrypto: dict | None  # {"schema": ..., "version": ...}
    contents: tuple[tuple[str, str, int], ...]  # (kind, owner, count) of the schema's own objects


def destroy_keeps(conn: psycopg.Connection, schema: str) -> Keeps:
    """pgcrypto's location and what `schema` holds (by kind and owner), extension members aside. One query."""
    ((exists, pgcrypto, contents),) = _execute(conn, KEEPS_SQL, {"schema": schema})
    return Keeps(bool(exists), pgcrypto, tuple((k, o, int(n)) for k, o, n in contents))


# -- the ops.verify family ------------------------------------------------------------

class DestroyData:
    """The family's answers, each fetched when a selected check first needs it."""

    def __init__(self, conn: psycopg.Connection, schema: str, role: str, admin: str | None,
                 drop_cascade: bool | None):
        self.conn, self.schema, self.role, self.admin, self.drop_cascade = conn, schema, role, admin, drop_cascade

    @cached_property
    def dependents(self) -> list[Dependent]:
        return dependent_objects(self.conn, self.schema)

    @cached_property
    def role_deps(self) -> list[RoleDependency]:
        return role_dependencies(self.conn, self.role, self.schema)

    @cached_property
    def keeps(self) -> Keeps:
        return destroy_keeps(self.conn, self.schema)


def cascade_dependents(data: DestroyData) -> list[Finding]:
    return [Finding(Severity.HIGH, d.object,
                    f"outside schema {data.schema}, depends on {', '.join(d.depends_on) or 'an object in it'}: "
                    f"DROP SCHEMA {data.schema} CASCADE drops it; drop or change {d.object} first "
                    f"(or move what it uses out of {data.schema})")
            for d in data.dependents]


def owned_by_role(data: DestroyData) -> list[Finding]:
    admin = data.admin or "the admin"
    findings = []
    for d in data.role_deps:
        if d.kind == "owned":
            findings.append(Finding(Severity.HIGH, d.object, f"owned by {data.role} outside schema {data.schema}: "
                                    f"the role delete's REASSIGN OWNED BY {data.role} TO {admin} takes it over "
                                    f"silently; ALTER ... OWNER TO the role it belongs to before destroying"))
        elif d.kind == "elsewhere":
            findings.append(Finding(Severity.HIGH, f"database {d.object}",
                                    f"{data.role} owns or is granted {d.object_count} object(s) there: REASSIGN/DROP "
                                    f"OWNED run only in this database, so DROP ROLE fails; clean up in {d.object}"))
    return findings


def privileges_of_role(data: DestroyData) -> list[Finding]:
    findings = []
    for d in data.role_deps:
        if d.kind == "privileges":
            findings.append(Finding(Severity.MEDIUM, d.object, f"privileges granted to {data.role} outside schema "
                                    f"{data.schema}: the role delete's DROP OWNED BY {data.role} revokes them "
                                    f"(as intended, if nothing else relies on them)"))
        elif d.kind == "policy":
            findings.append(Finding(Severity.MEDIUM, d.object, f"names {data.role}: DROP OWNED BY {data.role} removes "
                                    f"the role from it, and drops the policy if it names no other role"))
    return findings


def what_destroy_keeps(data: DestroyData) -> list[Finding]:
    keeps = data.keeps
    if not keeps.schema_exists:
        raise NotApplicable(f"schema {data.schema} does not exist")
    findings = []
    pgcrypto = keeps.pgcrypto
    cascade = {True: "umami:dropSchemaCascade=true", False: "umami:dropSchemaCascade=false",
               None: "umami:dropSchemaCascade is not in the outputs (false by default)"}[data.drop_cascade]
    if pgcrypto is None:
        findings.append(Finding(Severity.INFO, "extension pgcrypto", "not installed: nothing to keep"))
    elif pgcrypto["schema"] == data.schema:
        fate = ("dropped with the schema by the cascade" if data.drop_cascade
                else "retained (retainOnDelete), and it keeps the schema from being dropped without cascade")
        findings.append(Finding(Severity.INFO, "extension pgcrypto",
                                f"version {pgcrypto['version']} in schema {data.schema}: {fate}; {cascade}"))
    else:
        findings.append(Finding(Severity.INFO, "extension pgcrypto",
                                f"version {pgcrypto['version']} in schema {pgcrypto['schema']}: not the stack's, "
                                f"left where it is"))
    held = ", ".join(f"{n} {kind}(s) of {owner}" for kind, owner, n in keeps.contents)
    in_schema = bool(keeps.contents) or (pgcrypto is not None and pgcrypto["schema"] == data.schema)
    if data.drop_cascade:
        contents = ", ".join(filter(None, [held, "pgcrypto" if pgcrypto and pgcrypto["schema"] == data.schema
                                           else ""])) or "it is empty"
        fate = f"dropped with everything in it ({contents}) and every dependent DST-001 lists"
    elif in_schema:
        fate = (f"kept: it is not empty ({held or 'pgcrypto'}), so DROP SCHEMA {data.schema} without CASCADE "
                f"fails; the role's objects in it pass to {data.admin or 'the admin'} by REASSIGN OWNED")
    else:
        fate = "empty: dropped"
    findings.append(Finding(Severity.INFO, f"schema {data.schema}", f"{fate}; {cascade}"))
    return findings


CHECKS = declare("destroy", {  # titles, severities, remediations: checks.toml
    "DST-001": cascade_dependents, "DST-002": owned_by_role, "DST-003": privileges_of_role,
    "DST-004": what_destroy_keeps,
})
