"""Default privileges that would leak objects created in the future, in either direction.

Outward: objects other roles create outside the schema would be granted to umami (or PUBLIC).
Inward: objects umami creates, or anyone creates in the schema, would be granted to others.
The model's own entries (FOR ROLE admin IN SCHEMA umami ... TO umami) are neither.
An entry is revoked as the role it is for (FOR ROLE needs that role's privileges);
one umami holds through a membership is left by cutting the membership instead.
"""

from __future__ import annotations

from ops.verify import fixes
from ops.verify.checks.base import Finding, Severity, declare
from ops.verify.checks.catalog import Catalog, DefaultAcl
from ops.verify.checks.principals import PUBLIC

# pg_default_acl.defaclobjtype, as ALTER DEFAULT PRIVILEGES names them (in lower case).
OBJECT_TYPES = {"r": "tables", "S": "sequences", "f": "functions", "T": "types", "n": "schemas"}
# PostgreSQL grants EXECUTE on functions and USAGE on types to PUBLIC by default anyway.
PUBLIC_BY_DEFAULT = ("f", "T")


def _describe(catalog: Catalog, entry: DefaultAcl) -> str:
    p = catalog.principals
    where = f"in schema {entry.schema}" if entry.nsp_oid else "in every schema"
    return f"for role {p.name(entry.role)} {where} on {OBJECT_TYPES.get(entry.objtype, entry.objtype)}"


def _revoke(catalog: Catalog, entries: list[DefaultAcl]) -> fixes.Repair:
    """ALTER DEFAULT PRIVILEGES ... REVOKE for entries of one role, schema, object type and grantee."""
    p = catalog.principals
    e = entries[0]
    where = f" IN SCHEMA {fixes.ident(e.schema)}" if e.nsp_oid else ""
    privileges = ", ".join(sorted({x.privilege for x in entries}))
    statement = (f"ALTER DEFAULT PRIVILEGES FOR ROLE {fixes.role(p, e.role)}{where} REVOKE {privileges} "
                 f"ON {OBJECT_TYPES[e.objtype].upper()} FROM {fixes.role(p, e.grantee)};")
    return fixes.as_role(p, e.role, (statement,))


def _findings(catalog: Catalog, entries: list[DefaultAcl], holder, repair) -> list[Finding]:
    """One finding per role, schema, object type and grantee, with `repair(entries)` as its fix."""
    grouped: dict[tuple[int, int, str, int], list[DefaultAcl]] = {}
    for e in entries:
        grouped.setdefault((e.role, e.nsp_oid, e.objtype, e.grantee), []).append(e)
    described = sorted(((_describe(catalog, g[0]), holder(g[0]), g) for g in grouped.values()), key=lambda d: d[:2])
    return [fixes.finding(Severity.HIGH, subject, f"{', '.join(sorted({e.privilege for e in group}))} to {who}",
                          repair(group))
            for subject, who, group in described]


def outward(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    grantees = p.umami_grantees()
    entries = [e for e in catalog.default_acls
               if e.grantee in grantees and e.role != p.umami.oid and e.nsp_oid != p.schema_oid
               and not (e.grantee == PUBLIC and e.objtype in PUBLIC_BY_DEFAULT)]
    return _findings(catalog, entries, lambda e: p.via(e.grantee, p.umami_reach, p.umami.name),
                     lambda group: fixes.for_holder(p, group[0].grantee, _revoke(catalog, group)))


def inward(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    entries = [e for e in catalog.default_acls
               if (e.role == p.umami.oid or e.nsp_oid == p.schema_oid)
               and e.grantee not in (p.umami.oid, e.role)
               and not (e.grantee == PUBLIC and e.objtype in PUBLIC_BY_DEFAULT)]
    return _findings(catalog, entries, lambda e: p.name(e.grantee), lambda group: _revoke(catalog, group))


CHECKS = declare("defaults", {  # titles, severities, remediations: checks.toml
    "ISO-050": outward, "ISO-051": inward,
})
