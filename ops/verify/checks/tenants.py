"""Cross-tenant isolation: every principal against every isolated schema, in a bounded number of queries.

Principals: the umami role, each tenant's role `tenant_<name>` (the outputs' `tenants`; when they
declare none, the active rows of the `tenantRegistry` table) and the application roles (the
catalog's, less the tenants, plus the registry's service role). Isolated areas: umami's schema
and each tenant's schema (the registry's `schema_name`, else `tenant_<name>`). Application roles
have no area here. For every ordered pair (A, B), B isolated, A must not reach B's area: USAGE or
CREATE on B's schema, privileges on B's tables, views, columns and sequences, EXECUTE on B's
functions, B's future objects through default privileges, B's role or its schema's owner through
a membership (inherited or by SET ROLE), or ownership of anything in B's schema. A grant counts
whether it names A, a role A reaches or PUBLIC; a finding names the pair and carries the fix.

EXECUTE: PostgreSQL grants EXECUTE on every new function to PUBLIC. A function runs with its caller's
rights unless it is SECURITY DEFINER, and nobody calls it by name without USAGE on its schema. So
PUBLIC's EXECUTE is reported only on a SECURITY DEFINER function whose schema A can use (A then runs
B's code with B's rights); an EXECUTE granted to A or a role A reaches is always reported.

Each pair is reported once, by one family: (umami → B) by umami's own families, which audit all
umami holds outside its schema (ISO-010..050); (A → umami) for an application role by the reverse
family. For a tenant reaching umami's schema the matrix leaves out what those checks already name:
grantees of the schema (ISO-060), members of umami (ISO-012), default privileges in its schema or for
umami (ISO-051), PUBLIC's grants (ISO-061) and umami's own onward grants there (ISO-063).

Row-level security, the second line of a schema-per-tenant design, is checked in the tenants' schemas
and the registry's: policies on a table whose RLS is off, RLS without FORCE (the owner bypasses it),
permissive policies whose USING or WITH CHECK is `true`, SECURITY DEFINER functions without their own
search_path.

Set-based: each principal's reach (memberships and PUBLIC) is computed once in Python from the
principals query; the catalogs are then asked only for ACL entries whose grantee is one of those roles
or PUBLIC, on objects in an isolated schema, and for the objects there owned by a role some principal
reaches. Queries: the principals and default privileges (shared with the catalog audit), the registry
(only when read), the areas' schemas, their relations and columns, the functions, row-level security:
at most 7, whatever the number of tenants. All go through the catalog audit's counter.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable

import psycopg
from psycopg import sql

from facts import tenant_role, tenant_schema
from ops.core.errors import OpsError
from ops.verify import fixes
from ops.verify.checks.base import Finding, NotApplicable, Severity, declare
from ops.verify.checks.catalog import AclRow, Catalog, DefaultAcl
from ops.verify.checks.defaults import OBJECT_TYPES, PUBLIC_BY_DEFAULT
from ops.verify.checks.defaults import _revoke as revoke_default  # the one spelling of that statement
from ops.verify.checks.ownership import ALTER_KEYWORDS
from ops.verify.checks.principals import PUBLIC, Path, Principals, Role
from ops.verify.checks.privileges import RELKINDS

UMAMI, TENANT, APPLICATION = "umami", "tenant", "application"
RELATION_KINDS = ("r", "v", "m", "p", "f", "S")
NAMES_SHOWN = 3  # holders named in a finding's subject before "and N more"

AREAS_SQL = """
SELECT n.oid, n.nspname AS name, n.nspowner AS owner, a.grantor, a.grantee, a.privilege_type AS privilege
FROM pg_namespace n
LEFT JOIN LATERAL aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a ON true
WHERE n.nspname = ANY(%(names)s::name[])
"""

# ACL entries of the areas' relations and columns naming a principal's role or PUBLIC (the owner's
# own entries aside: ownership is its own row), then what a reachable role other than the area's
# principal owns there. Only non-NULL ACLs are exploded: a NULL ACL grants the owner alone. The area's
# own principal's entries are kept: whoever reaches that role (TEN-006) holds them too.
RELATIONS_SQL = f"""
WITH area AS (SELECT * FROM unnest(%(areas)s::oid[], %(principals)s::oid[]) AS a(nsp, principal))
SELECT x.kind, x.oid, x.nsp_oid, x.name, x.relkind, x.detail, x.owner, (x.a).grantor, (x.a).grantee,
       (x.a).privilege_type AS privilege, (x.a).is_grantable AS grantable
FROM (
    SELECT 'relation' AS kind, c.oid, c.relnamespace AS nsp_oid, c.relname AS name, c.relkind::text AS relkind,
           NULL::text AS detail, c.relowner AS owner, aclexplode(c.relacl) AS a
    FROM pg_class c JOIN area ON area.nsp = c.relnamespace
    WHERE c.relkind IN {RELATION_KINDS} AND c.relacl IS NOT NULL
    UNION ALL
    SELECT 'column', c.oid, c.relnamespace, c.relname, c.relkind::text, att.attname::text, c.relowner,
           aclexplode(att.attacl)
    FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid JOIN area ON area.nsp = c.relnamespace
    WHERE att.attacl IS NOT NULL AND att.attnum > 0 AND NOT att.attisdropped
) x
WHERE (x.a).grantee = ANY(%(grantees)s::oid[]) AND (x.a).grantee <> x.owner
UNION ALL
SELECT 'owner', c.oid, c.relnamespace, c.relname, c.relkind::text, NULL, c.relowner, NULL, c.relowner, 'OWNER', false
FROM pg_class c JOIN area ON area.nsp = c.relnamespace
WHERE c.relkind IN {RELATION_KINDS} AND c.relowner <> area.principal AND c.relowner = ANY(%(grantees)s::oid[])
"""

# Every routine in the areas and the registry's schema, with the EXECUTE entries that name a
# principal's role or PUBLIC (PostgreSQL's default included) and whether it pins its search_path.
FUNCTIONS_SQL = """
SELECT p.oid, p.pronamespace AS nsp_oid, n.nspname AS schema, p.oid::regprocedure::text AS signature,
       p.proowner AS owner, p.prosecdef AS definer,
       EXISTS (SELECT 1 FROM unnest(p.proconfig) s WHERE starts_with(s, 'search_path=')) AS pinned,
       (SELECT json_agg(json_build_array(a.grantor::int8, a.grantee::int8))
          FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
         WHERE a.privilege_type = 'EXECUTE' AND a.grantee = ANY(%(grantees)s::oid[]) AND a.grantee <> p.proowner
       ) AS executors
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.pronamespace = ANY(%(schemas)s::oid[])
"""

RLS_SQL = """
SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relowner AS owner, c.relrowsecurity AS enabled,
       c.relforcerowsecurity AS forced, pol.polname AS policy, pol.polpermissive AS permissive,
       pg_get_expr(pol.polqual, pol.polrelid) AS using_expr, pg_get_expr(pol.polwithcheck, pol.polrelid) AS check_expr
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_policy pol ON pol.polrelid = c.oid
WHERE c.relnamespace = ANY(%(schemas)s::oid[]) AND c.relkind IN ('r', 'p') AND (c.relrowsecurity OR pol.oid IS NOT NULL)
"""


# -- the model ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Area:
    """An isolated schema: its oid, name and owner."""

    oid: int
    name: str
    owner: int


@dataclass(frozen=True)
class Principal:
    """A role whose reach is checked; isolated principals have an area of their own."""

    oid: int
    name: str
    kind: str  # UMAMI, TENANT or APPLICATION
    area: Area | None = None


@dataclass(frozen=True)
class Holder:
    """A principal holding a grantee's privileges: the grantee itself, a role it reaches, or PUBLIC."""

    principal: Principal
    path: Path | None  # None: through PUBLIC


@dataclass(frozen=True)
class Routine:
    oid: int
    nsp_oid: int
    schema: str
    signature: str
    owner: int
    definer: bool
    pinned: bool
    executors: tuple[tuple[int, int], ...]  # (grantor, grantee) of EXECUTE entries of interest


@dataclass(frozen=True)
class RlsRow:
    oid: int
    schema: str
    name: str
    owner: int
    enabled: bool
    forced: bool
    policy: str | None
    permissive: bool | None
    using_expr: str | None
    check_expr: str | None


@dataclass(frozen=True)
class TenantList:
    """Who the tenants are, as (name, schema) pairs, and a note when the list may be partial."""

    tenants: tuple[tuple[str, str], ...]
    note: str = ""


def registry_name(value: str) -> tuple[str, str]:
    """`schema.table` as its two names; anything else is bad input (one line, the output's key)."""
    schema, dot, table = value.partition(".")
    if not dot or not schema or not table or "." in table:
        raise OpsError(f"tenantRegistry={value!r} is not schema.table")
    return schema, table


class Matrix:
    """The principals, their areas and everything of interest in them, loaded through `catalog`'s counter."""

    def __init__(self, catalog: Catalog, tenant_list: TenantList, *, registry_schema: str | None = None,
                 service_role: str | None = None):
        self.catalog = catalog
        self.tenant_list = tenant_list
        self.registry_schema = registry_schema
        self.service_role = service_role

    @property
    def p(self) -> Principals:
        return self.catalog.principals

    # -- who -------------------------------------------------------------------------
    @cached_property
    def _roles_by_name(self) -> dict[str, Role]:
        return {r.name: r for r in self.p.roles.values()}

    @cached_property
    def _area_rows(self) -> list:
        names = [self.catalog.schema] + [schema for _, schema in self.tenant_list.tenants]
        if self.registry_schema:
            names.append(self.registry_schema)
        return self.catalog.fetch(AREAS_SQL, {"names": sorted(set(names))})

    @cached_property
    def _schemas(self) -> dict[str, Area]:
        return {r.name: Area(r.oid, r.name, r.owner) for r in self._area_rows}

    @cached_property
    def principals(self) -> list[Principal]:
        """Umami, the tenants whose role and schema exist, then the application roles."""
        p = self.p
        umami = Principal(p.umami.oid, p.umami.name, UMAMI, self._schemas.get(self.catalog.schema))
        tenants = [Principal(role.oid, role.name, TENANT, self._schemas[schema])
                   for name, schema in self.tenant_list.tenants
                   if (role := self._roles_by_name.get(tenant_role(name))) and schema in self._schemas]
        isolated = {umami.oid} | {t.oid for t in tenants}
        apps = list(p.app_roles)
        service = self._roles_by_name.get(self.service_role or "")
        if service is not None and service not in apps:
            apps.append(service)
        applications = [Principal(r.oid, r.name, APPLICATION) for r in sorted(apps, key=lambda r: r.name)
                        if r.oid not in isolated]
        return [umami, *tenants, *applications]

    @cached_property
    def missing(self) -> list[str]:
        """Declared tenants without their role or schema (nothing to isolate yet)."""
        lines = []
        for name, schema in self.tenant_list.tenants:
            absent = []
            if schema not in self._schemas:
                absent.append(f"schema {schema}")
            if tenant_role(name) not in self._roles_by_name:
                absent.append(f"role {tenant_role(name)}")
            if absent:
                lines.append(f"tenant {name}: {' and '.join(absent)} not found")
        return lines

    @cached_property
    def isolated(self) -> list[Principal]:
        return [x for x in self.principals if x.area is not None]

    @cached_property
    def area_by_oid(self) -> dict[int, Principal]:
        return {x.area.oid: x for x in self.isolated}

    @cached_property
    def _app_role_oids(self) -> frozenset[int]:
        return frozenset(r.oid for r in self.p.app_roles)

    def trusted(self, b: Principal) -> frozenset[int]:
        """Roles whose privileges in B's area are the model: B itself and the admin (else the schema's owner)."""
        return self._trusted[b.oid]

    @cached_property
    def _trusted(self) -> dict[int, frozenset[int]]:
        return {b.oid: frozenset({b.oid, self.p.admin.oid if self.p.admin else b.area.owner}) for b in self.isolated}

    def reported(self, a: Principal, b: Principal) -> bool:
        """Whether the matrix reports the pair A → B (the module's docstring says who reports the others)."""
        return a.oid != b.oid and a.kind != UMAMI and not (b.kind == UMAMI and a.oid in self._app_role_oids)

    # -- reach -----------------------------------------------------------------------
    def reach(self, principal: Principal) -> dict[int, Path]:
        return self.p.reach(principal.oid)

    @cached_property
    def holders(self) -> dict[int, list[Holder]]:
        """Grantee -> the principals holding its privileges (PUBLIC: every principal)."""
        held: dict[int, list[Holder]] = defaultdict(list)
        for principal in self.principals:
            for oid, path in self.reach(principal).items():
                held[oid].append(Holder(principal, path))
            held[PUBLIC].append(Holder(principal, None))
        return held

    @cached_property
    def grantees(self) -> list[int]:
        """Every role some principal reaches, and PUBLIC: the only grantees worth fetching."""
        return sorted(self.holders)

    def holders_in(self, b: Principal, grantee: int) -> list[Holder]:
        """The principals holding `grantee`'s privileges whose pair with B the matrix reports."""
        return [h for h in self.holders.get(grantee, ()) if self.reported(h.principal, b)]

    # -- what is in the areas ----------------------------------------------------------
    @cached_property
    def schema_entries(self) -> dict[int, list]:
        """Area oid -> its schema's ACL entries (owner's included)."""
        entries: dict[int, list] = defaultdict(list)
        for row in self._area_rows:
            if row.oid in self.area_by_oid and row.grantee is not None:
                entries[row.oid].append(row)
        return entries

    @cached_property
    def schema_users(self) -> dict[int, frozenset[int]]:
        """Area oid -> roles with USAGE on it (its owner included)."""
        return {oid: frozenset({row.grantee for row in rows if row.privilege == "USAGE"}
                               | {self.area_by_oid[oid].area.owner})
                for oid, rows in self.schema_entries.items()}

    def can_use(self, holder: Holder, b: Principal) -> bool:
        users = self.schema_users.get(b.area.oid, frozenset({b.area.owner}))
        return PUBLIC in users or any(oid in users for oid in self.reach(holder.principal))

    @cached_property
    def relation_rows(self) -> list:
        areas = self.isolated
        return self.catalog.fetch(RELATIONS_SQL, {"areas": [x.area.oid for x in areas],
                                                  "principals": [x.oid for x in areas],
                                                  "grantees": self.grantees})

    @cached_property
    def rls_schemas(self) -> list[Area]:
        """The tenants' schemas and the registry's: where row-level security is checked."""
        areas = [x.area for x in self.isolated if x.kind == TENANT]
        registry = self._schemas.get(self.registry_schema or "")
        if registry is not None and registry not in areas:
            areas.append(registry)
        return areas

    @cached_property
    def routines(self) -> list[Routine]:
        schemas = sorted({x.area.oid for x in self.isolated} | {a.oid for a in self.rls_schemas})
        rows = self.catalog.fetch(FUNCTIONS_SQL, {"schemas": schemas, "grantees": self.grantees})
        return [Routine(r.oid, r.nsp_oid, r.schema, r.signature, r.owner, r.definer, r.pinned,
                        tuple((grantor, grantee) for grantor, grantee in r.executors or ())) for r in rows]

    @cached_property
    def rls_rows(self) -> list[RlsRow]:
        rows = self.catalog.fetch(RLS_SQL, {"schemas": [a.oid for a in self.rls_schemas]})
        return [RlsRow(*r) for r in rows]

    def load(self) -> "Matrix":
        """Every query now (the checks then only evaluate): the bounded set the module's docstring lists."""
        _ = self.principals, self.relation_rows, self.routines, self.rls_rows, self.catalog.default_acls
        return self

    # -- answers the benchmark compares with has_*_privilege ------------------------------
    def inherited_grantees(self, principal: Principal) -> frozenset[int]:
        """The grantees whose privileges `principal` uses without SET ROLE (has_*_privilege's view), and PUBLIC."""
        return frozenset(oid for oid, path in self.reach(principal).items() if path.inherited) | {PUBLIC}

    @cached_property
    def relation_grantees(self) -> dict[int, frozenset[int]]:
        """Relation oid -> roles holding some privilege on it or a column of it (owners other than the
        area's principal included); objects absent here grant only their owner."""
        held: dict[int, set[int]] = defaultdict(set)
        for row in self.relation_rows:
            held[row.oid].add(row.grantee)
        return {oid: frozenset(grantees) for oid, grantees in held.items()}

    def reaches_relation(self, principal: Principal, oid: int, owner: int) -> bool:
        grantees = self.inherited_grantees(principal)
        return owner in grantees or bool(self.relation_grantees.get(oid, frozenset()) & grantees)

    def reaches_schema(self, principal: Principal, area: Area) -> bool:
        grantees = self.inherited_grantees(principal)
        entries = {row.grantee for row in self.schema_entries.get(area.oid, ())}
        return area.owner in grantees or bool(entries & grantees)


# -- loading ----------------------------------------------------------------------------

def tenant_list(catalog: Catalog, tenants: Iterable[str], registry: str | None) -> TenantList:
    """The declared tenants, else the registry's active rows (one query), else none."""
    declared = tuple((name, tenant_schema(name)) for name in tenants)
    if declared or not registry:
        return TenantList(declared)
    schema, table = registry_name(registry)
    statement = sql.SQL("SELECT name, schema_name FROM {} WHERE active ORDER BY name").format(
        sql.Identifier(schema, table))
    try:
        rows = catalog.fetch(statement, {})
    except psycopg.Error as exc:
        if not catalog.conn.autocommit:
            catalog.conn.rollback()
        reason = exc.diag.message_primary or type(exc).__name__
        return TenantList((), note=f"the tenant registry {registry} could not be read as "
                               f"{catalog.principals.current_user} ({reason}): the matrix covers umami and "
                               "the application roles only")
    return TenantList(tuple((r.name, r.schema_name or tenant_schema(r.name)) for r in rows))


def load_matrix(catalog: Catalog, *, tenants: Iterable[str], registry: str | None,
                service_role: str | None) -> Matrix:
    """The family's data; not applicable when there are neither tenants nor a registry."""
    tenants = tuple(tenants)
    if not tenants and not registry:
        raise NotApplicable("no tenants: the outputs declare none and configure no tenantRegistry")
    registry_schema = registry_name(registry)[0] if registry else None
    listed = tenant_list(catalog, tenants, registry)
    return Matrix(catalog, listed, registry_schema=registry_schema, service_role=service_role).load()


# -- wording ----------------------------------------------------------------------------

def _names(holders: list[Holder]) -> str:
    names = sorted({h.principal.name for h in holders})
    shown = ", ".join(names[:NAMES_SHOWN])
    return f"{shown} and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else shown


def _pair(holders: list[Holder], b: Principal) -> str:
    """'tenant_a → tenant_b' (or several holders → tenant_b)."""
    return f"{_names(holders)} → {b.name}"


def _via(m: Matrix, grantee: int, holders: list[Holder]) -> str:
    """How the holders get a grant made to `grantee`: directly, via PUBLIC, or via memberships."""
    if grantee == PUBLIC:
        return " via PUBLIC"
    paths = sorted({m.p.describe(h.path) for h in holders if h.path and len(h.path.roles) > 1})
    if not paths:
        return ""
    more = f"; {len(paths) - NAMES_SHOWN} more" if len(paths) > NAMES_SHOWN else ""
    return f" via {'; '.join(paths[:NAMES_SHOWN])}{more}"


def _qualified(schema: str, name: str) -> str:
    return f"{schema}.{name}"


# -- schema access ------------------------------------------------------------------------

def schema_access(m: Matrix) -> list[Finding]:
    findings = [Finding(Severity.INFO, "tenants", line) for line in m.missing]
    if m.tenant_list.note:
        findings.append(Finding(Severity.INFO, "tenants", m.tenant_list.note))
    for b in m.isolated:
        if b.kind == UMAMI:
            continue  # ISO-060 names every grantee on umami's schema
        by_grantee: dict[int, list] = defaultdict(list)
        for row in m.schema_entries.get(b.area.oid, ()):
            if row.grantee not in m.trusted(b) and row.grantee != b.area.owner:
                by_grantee[row.grantee].append(row)
        for grantee, rows in sorted(by_grantee.items()):
            holders = m.holders_in(b, grantee)
            if not holders:
                continue
            privileges = sorted({r.privilege for r in rows})
            acl = [AclRow("schema", b.area.oid, b.area.oid, b.area.name, b.area.name, None, b.area.owner, r.grantor,
                          r.grantee, r.privilege, False, True, False) for r in rows]
            findings.append(fixes.finding(Severity.HIGH if "CREATE" in privileges else Severity.MEDIUM,
                                          _pair(holders, b),
                                          f"{', '.join(privileges)} on schema {b.area.name}{_via(m, grantee, holders)}",
                                          fixes.revoke(m.p, acl)))
    return findings


# -- relations, columns, sequences --------------------------------------------------------

def _acl_row(m: Matrix, b: Principal, row) -> AclRow:
    detail = row.detail if row.kind == "column" else row.relkind
    return AclRow(row.kind, row.oid, row.nsp_oid, b.area.name, row.name, detail, row.owner, row.grantor,
                  row.grantee, row.privilege, row.grantable, True, False)


def _grants(m: Matrix, *, sequences: bool) -> list[Finding]:
    groups: dict[tuple, list] = defaultdict(list)
    for row in m.relation_rows:
        b = m.area_by_oid.get(row.nsp_oid)
        if row.kind == "owner" or b is None or (row.relkind == "S") != sequences:
            continue
        if row.grantee in m.trusted(b):
            continue  # B's own privileges (or the admin's): reaching them is a membership (TEN-006)
        if b.kind == UMAMI and (row.grantee == PUBLIC or row.owner == m.p.umami.oid):
            continue  # ISO-061 (PUBLIC) and ISO-063 (umami's onward grants) report these
        groups[(b, row.oid, row.kind, row.grantee)].append(row)
    effective, latent = (Severity.HIGH, Severity.LOW) if sequences else (Severity.CRITICAL, Severity.MEDIUM)
    findings = []
    for (b, _, kind, grantee), rows in groups.items():
        holders = m.holders_in(b, grantee)
        if not holders:
            continue
        first = rows[0]
        what = RELKINDS.get(first.relkind, "relation")
        privileges = ", ".join(sorted({f"{r.privilege} ({r.detail})" if kind == "column" else r.privilege
                                       for r in rows}))
        usable = any(m.can_use(h, b) for h in holders)
        note = "schema usable: effective now" if usable else "schema not usable: latent, one GRANT USAGE away"
        findings.append(fixes.finding(
            effective if usable else latent, _pair(holders, b),
            f"{privileges} on {what} {_qualified(b.area.name, first.name)}{_via(m, grantee, holders)} ({note})",
            fixes.revoke(m.p, [_acl_row(m, b, r) for r in rows])))
    return findings


def relations(m: Matrix) -> list[Finding]:
    return _grants(m, sequences=False)


def sequences(m: Matrix) -> list[Finding]:
    return _grants(m, sequences=True)


# -- functions -----------------------------------------------------------------------------

def _routine_name(routine: Routine) -> str:
    return fixes.function_name(routine.schema, routine.signature)


def _revoke_execute(m: Matrix, routine: Routine, grantor: int, grantee: int) -> fixes.Repair:
    # ROUTINE covers functions and procedures alike.
    statement = f"REVOKE EXECUTE ON ROUTINE {_routine_name(routine)} FROM {fixes.role(m.p, grantee)};"
    return fixes.as_role(m.p, grantor, (statement,))


def functions(m: Matrix) -> list[Finding]:
    findings = []
    for routine in m.routines:
        b = m.area_by_oid.get(routine.nsp_oid)
        if b is None:
            continue  # the registry's schema: only its row-level security is checked (TEN-013)
        runs_as = f"SECURITY DEFINER: runs as {m.p.name(routine.owner)}" if routine.definer else "runs with the caller's rights"
        for grantor, grantee in routine.executors:
            if grantee in m.trusted(b):
                continue
            holders = m.holders_in(b, grantee)
            usable = [h for h in holders if m.can_use(h, b)]
            if grantee == PUBLIC:
                # PostgreSQL's default on every function: a leak only on a definer whose schema A can use.
                holders = usable if routine.definer else []
            if not holders:
                continue
            if routine.definer:
                severity = Severity.HIGH if usable else Severity.LOW
            else:
                severity = Severity.LOW
            findings.append(fixes.finding(severity, _pair(holders, b),
                                          f"EXECUTE on {routine.signature} in schema {b.area.name}"
                                          f"{_via(m, grantee, holders)} ({runs_as})",
                                          _revoke_execute(m, routine, grantor, grantee)))
    return findings


# -- default privileges ----------------------------------------------------------------------

def _areas_of(m: Matrix, entry: DefaultAcl) -> list[Principal]:
    """The isolated principals whose area gets objects under `entry`: its schema's, or for an entry in
    every schema, the principal it is for and every area whose trusted roles include that role."""
    if entry.nsp_oid:
        b = m.area_by_oid.get(entry.nsp_oid)
        return [b] if b else []
    return [b for b in m.isolated if entry.role in m.trusted(b)]


def default_privileges(m: Matrix) -> list[Finding]:
    groups: dict[tuple, list[DefaultAcl]] = defaultdict(list)
    for entry in m.catalog.default_acls:
        if entry.grantee == entry.role or (entry.grantee == PUBLIC and entry.objtype in PUBLIC_BY_DEFAULT):
            continue
        for b in _areas_of(m, entry):
            if entry.grantee in m.trusted(b):
                continue
            if b.kind == UMAMI and (entry.nsp_oid == b.area.oid or entry.role == b.oid):
                continue  # ISO-051 reports every default privilege in umami's schema or for umami
            groups[(b, entry.role, entry.nsp_oid, entry.objtype, entry.grantee)].append(entry)
    findings = []
    for (b, role, nsp_oid, objtype, grantee), entries in groups.items():
        holders = m.holders_in(b, grantee)
        if not holders:
            continue
        where = f"in schema {entries[0].schema}" if nsp_oid else "in any schema"
        privileges = ", ".join(sorted({e.privilege for e in entries}))
        findings.append(fixes.finding(
            Severity.HIGH, _pair(holders, b),
            f"{privileges} on the {OBJECT_TYPES.get(objtype, objtype)} {m.p.name(role)} creates {where}"
            f"{_via(m, grantee, holders)}",
            revoke_default(m.catalog, entries)))
    return findings


# -- memberships --------------------------------------------------------------------------

def memberships(m: Matrix) -> list[Finding]:
    # Role -> the isolated principals whose area that role's privileges open: B itself, and the admin
    # (or the schema's owner) for every area.
    opens: dict[int, list[Principal]] = defaultdict(list)
    for b in m.isolated:
        for oid in m.trusted(b):
            opens[oid].append(b)
    findings = []
    for a in m.principals:
        for oid, path in sorted(m.reach(a).items()):
            if oid == a.oid:
                continue
            for b in opens.get(oid, ()):
                if not m.reported(a, b) or (b.kind == UMAMI and oid == b.oid):
                    continue  # acting as umami: ISO-012 names umami's members
                role = m.p.name(oid)
                what = f"can act as {role}" if oid == b.oid else f"can act as {role}, which owns schema {b.area.name}"
                findings.append(fixes.finding(Severity.HIGH, f"{a.name} → {b.name}",
                                              f"member: {m.p.describe(path)} ({what})",
                                              fixes.revoke_membership(m.p, path.roles[-1], path.roles[-2])))
    return findings


# -- ownership ----------------------------------------------------------------------------

def _to_admin(m: Matrix, owner: int, keyword: str, name: str) -> fixes.Repair:
    """Hand an object to the admin: ALTER ... OWNER TO needs the old owner's privileges."""
    return fixes.as_member_of(m.p, owner, (f"ALTER {keyword} {name} OWNER TO {fixes.admin_role(m.p)};",))


def _ownership_finding(m: Matrix, b: Principal, owner: int, what: str, repair: fixes.Repair) -> Finding | None:
    holders = m.holders_in(b, owner)
    if not holders:
        return None
    return fixes.finding(Severity.HIGH, _pair(holders, b), f"owns {what}{_via(m, owner, holders)}", repair)


def ownership(m: Matrix) -> list[Finding]:
    found: list[Finding | None] = []
    for b in m.isolated:
        if b.area.owner not in m.trusted(b):
            found.append(_ownership_finding(m, b, b.area.owner, f"schema {b.area.name}",
                                            _to_admin(m, b.area.owner, "SCHEMA", fixes.ident(b.area.name))))
    for row in m.relation_rows:
        b = m.area_by_oid.get(row.nsp_oid)
        if row.kind != "owner" or b is None or row.owner in m.trusted(b):
            continue
        kind = RELKINDS.get(row.relkind, "table")
        keyword = ALTER_KEYWORDS.get("table" if kind == "partitioned table" else kind, "TABLE")
        found.append(_ownership_finding(m, b, row.owner, f"{kind} {_qualified(b.area.name, row.name)}",
                                        _to_admin(m, row.owner, keyword, fixes.qualified(b.area.name, row.name))))
    for routine in m.routines:
        b = m.area_by_oid.get(routine.nsp_oid)
        if b is None or routine.owner in m.trusted(b):
            continue
        found.append(_ownership_finding(m, b, routine.owner, f"function {routine.signature} in schema {b.area.name}",
                                        _to_admin(m, routine.owner, "ROUTINE", _routine_name(routine))))
    return [f for f in found if f is not None]


# -- row-level security ---------------------------------------------------------------------

def _tables(m: Matrix) -> dict[int, list[RlsRow]]:
    tables: dict[int, list[RlsRow]] = defaultdict(list)
    for row in m.rls_rows:
        tables[row.oid].append(row)
    return tables


def _as_owner(m: Matrix, row: RlsRow, clause: str) -> fixes.Repair:
    return fixes.as_member_of(m.p, row.owner, (f"ALTER TABLE {fixes.qualified(row.schema, row.name)} {clause};",))


def policies_without_rls(m: Matrix) -> list[Finding]:
    findings = []
    for rows in _tables(m).values():
        first = rows[0]
        policies = sorted(r.policy for r in rows if r.policy)
        if policies and not first.enabled:
            # Forced as well, or the fix would leave the owner bypassing them (TEN-011).
            clause = "ENABLE ROW LEVEL SECURITY" + ("" if first.forced else ", FORCE ROW LEVEL SECURITY")
            findings.append(fixes.finding(
                Severity.MEDIUM, f"table {_qualified(first.schema, first.name)}",
                f"policies {', '.join(policies)} but row-level security is off: they filter nothing",
                _as_owner(m, first, clause)))
    return findings


def rls_not_forced(m: Matrix) -> list[Finding]:
    return [fixes.finding(Severity.LOW, f"table {_qualified(rows[0].schema, rows[0].name)}",
                          f"row-level security without FORCE: its owner {m.p.name(rows[0].owner)} bypasses the policies",
                          _as_owner(m, rows[0], "FORCE ROW LEVEL SECURITY"))
            for rows in _tables(m).values() if rows[0].enabled and not rows[0].forced]


def permissive_true(m: Matrix) -> list[Finding]:
    # No SQL: the repair is the tenant predicate the policy should have, which only its author knows.
    findings = []
    for row in m.rls_rows:
        clauses = [name for name, expr in (("USING", row.using_expr), ("WITH CHECK", row.check_expr))
                   if expr is not None and expr.strip().lower() == "true"]
        if row.policy and row.permissive and clauses:
            findings.append(Finding(Severity.MEDIUM, f"policy {row.policy} on {_qualified(row.schema, row.name)}",
                                    f"permissive with {' and '.join(clauses)} (true): every row passes"))
    return findings


def definer_search_path(m: Matrix) -> list[Finding]:
    schemas = {a.oid for a in m.rls_schemas}
    findings = []
    for routine in m.routines:
        if routine.nsp_oid not in schemas or not routine.definer or routine.pinned:
            continue
        statement = (f"ALTER ROUTINE {_routine_name(routine)} SET search_path = "
                     f"{fixes.ident(routine.schema)}, pg_temp;")
        findings.append(fixes.finding(Severity.MEDIUM, f"function {routine.signature} in schema {routine.schema}",
                                      f"SECURITY DEFINER (runs as {m.p.name(routine.owner)}) without its own "
                                      "search_path: the caller's path decides what its unqualified names mean",
                                      fixes.as_member_of(m.p, routine.owner, (statement,))))
    return findings


CHECKS = declare("tenants", {  # titles, severities, remediations: checks.toml
    "TEN-001": schema_access, "TEN-002": relations, "TEN-003": sequences, "TEN-004": functions,
    "TEN-005": default_privileges, "TEN-006": memberships, "TEN-007": ownership,
    "TEN-010": policies_without_rls, "TEN-011": rls_not_forced, "TEN-012": permissive_true,
    "TEN-013": definer_search_path,
})
