"""Default privileges that would leak objects created in the future, in either direction.

Outward: objects other roles create outside the schema would be granted to umami (or PUBLIC).
Inward: objects umami creates, or anyone creates in the schema, would be granted to others.
The model's own entries (FOR ROLE admin IN SCHEMA umami ... TO umami) are neither.
"""

from __future__ import annotations

from ops.verify.checks.base import Finding, Severity, declare
from ops.verify.checks.catalog import Catalog, DefaultAcl
from ops.verify.checks.principals import PUBLIC

OBJECT_TYPES = {"r": "tables", "S": "sequences", "f": "functions", "T": "types", "n": "schemas"}
# PostgreSQL grants EXECUTE on functions and USAGE on types to PUBLIC by default anyway.
PUBLIC_BY_DEFAULT = ("f", "T")


def _describe(catalog: Catalog, entry: DefaultAcl) -> str:
    p = catalog.principals
    where = f"in schema {entry.schema}" if entry.nsp_oid else "in every schema"
    return f"for role {p.name(entry.role)} {where} on {OBJECT_TYPES.get(entry.objtype, entry.objtype)}"


def _findings(catalog: Catalog, entries: list[DefaultAcl], holder) -> list[Finding]:
    grouped: dict[tuple[str, str], set[str]] = {}
    for entry in entries:
        grouped.setdefault((_describe(catalog, entry), holder(entry)), set()).add(entry.privilege)
    return [Finding(Severity.HIGH, subject, f"{', '.join(sorted(privs))} to {who}")
            for (subject, who), privs in sorted(grouped.items())]


def outward(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    grantees = p.umami_grantees()
    entries = [e for e in catalog.default_acls
               if e.grantee in grantees and e.role != p.umami.oid and e.nsp_oid != p.schema_oid
               and not (e.grantee == PUBLIC and e.objtype in PUBLIC_BY_DEFAULT)]
    return _findings(catalog, entries, lambda e: p.via(e.grantee, p.umami_reach, p.umami.name))


def inward(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    entries = [e for e in catalog.default_acls
               if (e.role == p.umami.oid or e.nsp_oid == p.schema_oid)
               and e.grantee not in (p.umami.oid, e.role)
               and not (e.grantee == PUBLIC and e.objtype in PUBLIC_BY_DEFAULT)]
    return _findings(catalog, entries, lambda e: p.name(e.grantee))


CHECKS = declare("defaults", {  # titles, severities, remediations: checks.toml
    "ISO-050": outward, "ISO-051": inward,
})
