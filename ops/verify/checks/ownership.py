"""What the umami role owns, in this database and every other (answered by pg_shdepend).

The model: umami owns the tables Prisma creates in its schema and nothing else;
the schema itself belongs to the admin, so umami cannot grant it to anyone.
"""

from __future__ import annotations

from collections import Counter

from ops.verify.checks.base import Finding, Severity, declare
from ops.verify.checks.catalog import Catalog

# Reported by their own checks: default privileges (ISO-051) and user mappings (ISO-032).
COVERED_ELSEWHERE = ("pg_default_acl", "pg_user_mapping")


def owned_outside(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    findings = []
    elsewhere: Counter[str] = Counter()
    for dep in catalog.shared_dependencies:
        if dep.deptype != "o" or dep.catalog in COVERED_ELSEWHERE:
            continue
        if dep.dbid not in (0, p.database_oid):
            elsewhere[dep.database or f"database #{dep.dbid}"] += 1
            continue
        if dep.schema == catalog.schema or (dep.type == "schema" and dep.name == catalog.schema):
            continue  # inside the schema (the schema itself: ISO-041)
        if dep.schema and dep.schema.startswith("pg_temp"):
            continue  # a session's temporary objects; TEMPORARY itself is ISO-027
        findings.append(Finding(Severity.HIGH, f"{dep.type} {dep.identity}", f"owned by {p.umami.name}"))
    for database, count in sorted(elsewhere.items()):
        findings.append(Finding(Severity.HIGH, f"database {database}", f"{p.umami.name} owns {count} object(s) there"))
    return findings


def owns_schema(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    if p.schema_owner == p.umami.oid:
        return [Finding(Severity.MEDIUM, f"schema {catalog.schema}",
                        f"owned by {p.umami.name}, which can then grant it to any role")]
    return []


CHECKS = declare("ownership", {  # titles, severities, remediations: checks.toml
    "ISO-040": owned_outside, "ISO-041": owns_schema,
})
