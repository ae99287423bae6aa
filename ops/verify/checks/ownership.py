"""What the umami role owns, in this database and every other (answered by pg_shdepend).

The model: umami owns the tables Prisma creates in its schema and nothing else;
the schema itself belongs to the admin, so umami cannot grant it to anyone. What umami
owns outside is handed to the admin (who can pass it on to whoever it belongs to):
the admin joins umami for the statement, as ALTER ... OWNER TO needs the old owner's
privileges and membership in the new owner.
"""

from __future__ import annotations

from collections import Counter

from ops.verify import fixes
from ops.verify.checks.base import Finding, Severity, declare
from ops.verify.checks.catalog import Catalog, SharedDependency

# Reported by their own checks: default privileges (ISO-051) and user mappings (ISO-032).
COVERED_ELSEWHERE = ("pg_default_acl", "pg_user_mapping")
# What each object type of pg_identify_object is called in ALTER ... OWNER TO.
ALTER_KEYWORDS = {
    "table": "TABLE", "view": "VIEW", "materialized view": "MATERIALIZED VIEW", "sequence": "SEQUENCE",
    "foreign table": "FOREIGN TABLE", "function": "FUNCTION", "procedure": "PROCEDURE", "aggregate": "AGGREGATE",
    "schema": "SCHEMA", "type": "TYPE", "composite type": "TYPE", "domain": "DOMAIN", "collation": "COLLATION",
    "conversion": "CONVERSION", "language": "LANGUAGE", "large object": "LARGE OBJECT",
    "foreign-data wrapper": "FOREIGN DATA WRAPPER", "server": "SERVER", "event trigger": "EVENT TRIGGER",
    "publication": "PUBLICATION", "subscription": "SUBSCRIPTION", "statistics object": "STATISTICS",
    "text search dictionary": "TEXT SEARCH DICTIONARY", "text search configuration": "TEXT SEARCH CONFIGURATION",
    "database": "DATABASE", "tablespace": "TABLESPACE",
}


def _to_admin(catalog: Catalog, dep: SharedDependency) -> fixes.Repair:
    p = catalog.principals
    keyword = ALTER_KEYWORDS.get(dep.type or "")
    if keyword is None or not dep.identity:
        return fixes.Repair(note=f"no ALTER {dep.type} ... OWNER TO: drop it or change its owner by hand")
    # pg_identify_object's identity is quoted and schema-qualified by PostgreSQL itself.
    new_owner = fixes.admin_role(p)
    return fixes.as_member_of(p, p.umami.oid, (f"ALTER {keyword} {fixes.one_line(dep.identity)} OWNER TO {new_owner};",))


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
        findings.append(fixes.finding(Severity.HIGH, f"{dep.type} {dep.identity}", f"owned by {p.umami.name}",
                                      _to_admin(catalog, dep)))
    for database, count in sorted(elsewhere.items()):
        # No SQL from here: those objects are seen (and altered) only from a session in that database.
        findings.append(Finding(Severity.HIGH, f"database {database}", f"{p.umami.name} owns {count} object(s) there"))
    return findings


def owns_schema(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    if p.schema_owner == p.umami.oid:
        schema = fixes.ident(catalog.schema)
        # The owner's implicit privileges leave with the ownership: the model's grant brings them back.
        repair = fixes.as_member_of(p, p.umami.oid, (f"ALTER SCHEMA {schema} OWNER TO {fixes.admin_role(p)};",
                                                     f"GRANT CREATE, USAGE ON SCHEMA {schema} TO "
                                                     f"{fixes.ident(p.umami.name)};"))
        return [fixes.finding(Severity.MEDIUM, f"schema {catalog.schema}",
                              f"owned by {p.umami.name}, which can then grant it to any role", repair)]
    return []


CHECKS = declare("ownership", {  # titles, severities, remediations: checks.toml
    "ISO-040": owned_outside, "ISO-041": owns_schema,
})
