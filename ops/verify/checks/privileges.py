"""What the umami role can reach outside its schema, as effective access.

Answered by the relation-ACL and object-ACL queries. A grant counts when it is
made to umami, to a role umami reaches (inherited or by SET ROLE), or to PUBLIC.
An object privilege is *effective* when umami can also use the object's schema
(USAGE through the same kinds of grantee); otherwise it is *latent*, one
`GRANT USAGE` away, and reported with a lower severity. Privileges that an
extension's install script granted (pg_init_privs) are informational.
Objects umami owns are reported once, by the ownership checks.
"""

from __future__ import annotations

from collections import defaultdict

from ops.verify import fixes
from ops.verify.checks.base import Finding, FixAs, Severity, declare
from ops.verify.checks.catalog import AclRow, Catalog
from ops.verify.checks.principals import PUBLIC

RELKINDS = {"r": "table", "v": "view", "m": "materialized view", "p": "partitioned table", "f": "foreign table",
            "S": "sequence"}


def _outside(catalog: Catalog, rows: list[AclRow]) -> list[AclRow]:
    """Rows for grantees umami can use, outside its schema, on objects umami does not own."""
    p = catalog.principals
    grantees = p.umami_grantees()
    return [r for r in rows
            if r.nsp_oid != p.schema_oid and r.grantee in grantees and r.owner != p.umami.oid]


def _schema_usable(catalog: Catalog, nsp_oid: int | None) -> bool:
    return bool(catalog.schema_usage.get(nsp_oid, set()) & catalog.principals.umami_grantees())


def _grouped(catalog: Catalog, rows: list[AclRow], *, effective: Severity, latent: Severity) -> list[Finding]:
    """One finding per object and grantee, severity by whether its schema is usable."""
    p = catalog.principals
    groups: dict[tuple, list[AclRow]] = defaultdict(list)
    for row in rows:
        groups[(row.kind, row.qualified, row.grantee, row.nsp_oid, row.detail if row.kind == "relation" else "")].append(row)
    findings = []
    for (kind, qualified, grantee, nsp_oid, relkind), group in groups.items():
        privileges = ", ".join(sorted({r.privilege for r in group}))
        what = RELKINDS.get(relkind, kind) if kind == "relation" else kind
        holder = p.via(grantee, p.umami_reach, p.umami.name)
        if all(r.initial for r in group):
            severity, note = Severity.INFO, "granted by the extension's install script"
        elif nsp_oid is None or _schema_usable(catalog, nsp_oid):
            severity, note = effective, "schema usable: effective now"
        else:
            severity, note = latent, "schema not usable: latent, one GRANT USAGE away"
        findings.append(fixes.finding(severity, f"{what} {qualified}", f"{privileges} for {holder} ({note})",
                                      fixes.revoke_for_umami(p, group)))
    return findings


def relations(catalog: Catalog) -> list[Finding]:
    rows = [r for r in _outside(catalog, catalog.relation_acls) if r.kind == "relation" and r.detail != "S"]
    return _grouped(catalog, rows, effective=Severity.CRITICAL, latent=Severity.MEDIUM)


def columns(catalog: Catalog) -> list[Finding]:
    rows = [r for r in _outside(catalog, catalog.relation_acls) if r.kind == "column"]
    return _grouped(catalog, rows, effective=Severity.CRITICAL, latent=Severity.MEDIUM)


def sequences(catalog: Catalog) -> list[Finding]:
    rows = [r for r in _outside(catalog, catalog.relation_acls) if r.kind == "relation" and r.detail == "S"]
    return _grouped(catalog, rows, effective=Severity.HIGH, latent=Severity.LOW)


def definer_functions(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    rows = [r for r in catalog.object_acls
            if r.kind == "function" and r.privilege == "EXECUTE" and r.owner not in p.umami_reach]
    return _grouped(catalog, rows, effective=Severity.HIGH, latent=Severity.LOW)


def _schema_rows(catalog: Catalog, privilege: str) -> list[AclRow]:
    return [r for r in _outside(catalog, catalog.object_acls) if r.kind == "schema" and r.privilege == privilege]


def create_on_schemas(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    return [fixes.finding(Severity.HIGH, f"schema {r.name}", f"CREATE for {p.via(r.grantee, p.umami_reach, p.umami.name)}",
                          fixes.revoke_for_umami(p, [r]))
            for r in _schema_rows(catalog, "CREATE") if r.grantee != PUBLIC]  # PUBLIC: ISO-033


def usage_on_schemas(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    return [fixes.finding(Severity.INFO if r.initial else Severity.LOW, f"schema {r.name}",
                          f"USAGE for {p.via(r.grantee, p.umami_reach, p.umami.name)}"
                          + (" (granted by the extension that created the schema)" if r.initial else ""),
                          fixes.revoke_for_umami(p, [r]))
            for r in _schema_rows(catalog, "USAGE")
            if not (r.grantee == PUBLIC and r.name == "public")]  # PostgreSQL's default


def _database_rows(catalog: Catalog, privilege: str, *, current: bool) -> list[AclRow]:
    p = catalog.principals
    return [r for r in catalog.object_acls
            if r.kind == "database" and r.privilege == privilege and (r.oid == p.database_oid) == current
            and r.grantee in p.umami_grantees() and r.owner != p.umami.oid]


def create_on_database(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    return [fixes.finding(Severity.HIGH, f"database {r.name}", f"CREATE for {p.via(r.grantee, p.umami_reach, p.umami.name)}",
                          fixes.revoke_for_umami(p, [r]))
            for r in _database_rows(catalog, "CREATE", current=True)]


def _beyond_default(catalog: Catalog, privilege: str, current: bool, severity: Severity,
                    default_note: str) -> list[Finding]:
    """A database privilege: PUBLIC's (PostgreSQL's default) is info, anything granted further is `severity`."""
    p = catalog.principals
    return [fixes.finding(Severity.INFO if r.grantee == PUBLIC else severity, f"database {r.name}",
                          f"{privilege} for PUBLIC ({default_note})" if r.grantee == PUBLIC
                          else f"{privilege} for {p.via(r.grantee, p.umami_reach, p.umami.name)}",
                          fixes.revoke_for_umami(p, [r]))
            for r in _database_rows(catalog, privilege, current=current)]


def temp_on_database(catalog: Catalog) -> list[Finding]:
    return _beyond_default(catalog, "TEMPORARY", True, Severity.LOW, "PostgreSQL's default")


def connect_elsewhere(catalog: Catalog) -> list[Finding]:
    return _beyond_default(catalog, "CONNECT", False, Severity.MEDIUM,
                           "PostgreSQL's default; pg_hba.conf may still refuse")


def grants_beyond_database(catalog: Catalog) -> list[Finding]:
    """Grants to umami recorded in pg_shdepend that this database's catalogs cannot show."""
    p = catalog.principals
    findings = []
    for dep in catalog.shared_dependencies:
        if dep.deptype != "a":
            continue
        if dep.dbid not in (0, p.database_oid):
            findings.append(Finding(Severity.MEDIUM, f"database {dep.database}",
                                    f"{p.umami.name} is granted privileges on {dep.catalog} objects there"))
        elif dep.dbid == 0 and dep.catalog != "pg_database":  # databases: ISO-026..028
            findings.append(Finding(Severity.MEDIUM, dep.identity or dep.catalog,
                                    f"{p.umami.name} is granted privileges on {dep.type} {dep.identity}"))
    return findings


def large_objects(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    findings = []
    if p.lo_compat_privileges:
        findings.append(Finding(Severity.HIGH, "lo_compat_privileges",
                                "lo_compat_privileges = on: every large object is readable and writable by any role"))
    rows = [r for r in _outside(catalog, catalog.object_acls) if r.kind == "large object"]
    findings += _grouped(catalog, rows, effective=Severity.HIGH, latent=Severity.HIGH)
    return findings


def foreign_servers(catalog: Catalog) -> list[Finding]:
    rows = [r for r in _outside(catalog, catalog.object_acls) if r.kind in ("foreign-data wrapper", "foreign server")]
    return _grouped(catalog, rows, effective=Severity.HIGH, latent=Severity.HIGH)


def _drop_mapping(catalog: Catalog, row: AclRow, owners: dict[str, int]) -> fixes.Repair:
    """A server's owner drops any of its mappings; umami its own one on a server it can use."""
    p = catalog.principals
    statement = f"DROP USER MAPPING FOR {fixes.role(p, row.grantee)} SERVER {fixes.ident(row.name)};"
    if row.name not in owners:
        return fixes.Repair(note=f"only the owner of server {row.name} can drop it")
    if row.grantee == p.umami.oid:
        return fixes.Repair((statement,), FixAs.ROLE)
    return fixes.for_holder(p, row.grantee, fixes.as_role(p, owners[row.name], (statement,)))


def user_mappings(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    owners = {r.name: r.owner for r in _outside(catalog, catalog.object_acls) if r.kind == "foreign server"}
    findings = []
    for row in (r for r in catalog.object_acls if r.kind == "user mapping"):
        holder = "PUBLIC" if row.grantee == PUBLIC else p.via(row.grantee, p.umami_reach, p.umami.name)
        repair = _drop_mapping(catalog, row, owners)
        if row.name in owners:
            findings.append(fixes.finding(Severity.HIGH, f"user mapping on {row.name}",
                                          f"mapping for {holder}, and the server is usable: remote logins are "
                                          "available", repair))
        else:
            findings.append(fixes.finding(Severity.MEDIUM, f"user mapping on {row.name}",
                                          f"mapping for {holder} (server not usable yet)", repair))
    return findings


def public_create(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    return [fixes.finding(Severity.MEDIUM, f"schema {r.name}", "CREATE granted to PUBLIC: every role, umami included, "
                                                               "can create objects there", fixes.revoke(p, [r]))
            for r in catalog.object_acls
            if r.kind == "schema" and r.privilege == "CREATE" and r.grantee == PUBLIC and r.oid != p.schema_oid]


CHECKS = declare("privileges", {  # titles, severities, remediations: checks.toml
    "ISO-020": relations, "ISO-021": columns, "ISO-022": sequences, "ISO-023": definer_functions,
    "ISO-024": create_on_schemas, "ISO-025": usage_on_schemas, "ISO-026": create_on_database,
    "ISO-027": temp_on_database, "ISO-028": connect_elsewhere, "ISO-029": grants_beyond_database,
    "ISO-030": large_objects, "ISO-031": foreign_servers, "ISO-032": user_mappings, "ISO-033": public_create,
})
