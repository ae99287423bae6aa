"""Reverse isolation: the application's roles must not reach Umami's schema or act as umami.

Application roles come from the outputs (`applicationRoles`) or, when none are
listed, are discovered as every login role other than umami, the admin/auditor
and platform roles. Their reach includes every role they can SET ROLE to.
Answered from the principals, relation-ACL and object-ACL queries.
"""

from __future__ import annotations

from ops.verify.checks.base import Finding, Severity, declare
from ops.verify.checks.catalog import AclRow, Catalog
from ops.verify.checks.principals import PUBLIC, Path, Role


def _app_grantees(catalog: Catalog) -> dict[int, tuple[Role, Path] | None]:
    """Grantees through which an application role gets access: its reach and PUBLIC (umami: ISO-066)."""
    p = catalog.principals
    reach: dict[int, tuple[Role, Path] | None] = {oid: v for oid, v in p.app_reach().items() if oid != p.umami.oid}
    reach[PUBLIC] = None
    return reach


def _holder(catalog: Catalog, grantee: int, via: tuple[Role, Path] | None) -> str:
    p = catalog.principals
    if via is None:
        return "PUBLIC"
    app, path = via
    return p.describe(path) if len(path.roles) > 1 else app.name


def _in_schema(catalog: Catalog, kinds: tuple[str, ...]) -> list[AclRow]:
    rows = catalog.relation_acls + catalog.object_acls
    return [r for r in rows if r.kind in kinds and r.nsp_oid == catalog.principals.schema_oid]


def schema_access(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    app = _app_grantees(catalog)
    trusted = {p.umami.oid, p.schema_owner} | ({p.admin.oid} if p.admin else set())
    findings = []
    for row in _in_schema(catalog, ("schema",)):
        if row.grantee in app:
            findings.append(Finding(Severity.HIGH, f"schema {row.name}",
                                    f"{row.privilege} for {_holder(catalog, row.grantee, app[row.grantee])}"))
        elif row.grantee not in trusted:
            findings.append(Finding(Severity.MEDIUM, f"schema {row.name}",
                                    f"{row.privilege} for {p.name(row.grantee)} (neither umami nor the admin)"))
    return findings


def object_access(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    app = _app_grantees(catalog)
    usage = catalog.schema_usage.get(p.schema_oid, set())
    grouped: dict[tuple[str, int], set[str]] = {}
    for row in _in_schema(catalog, ("relation", "column")):
        if row.grantee in app:
            grouped.setdefault((row.qualified, row.grantee), set()).add(row.privilege)
    findings = []
    for (qualified, grantee), privileges in sorted(grouped.items()):
        via = app[grantee]
        # The grant is usable when the same application role (or PUBLIC) can also use the schema.
        reachable = {PUBLIC} | (set(p.reach(via[0].oid)) if via else set())
        effective = bool(usage & reachable)
        findings.append(Finding(
            Severity.HIGH if effective else Severity.MEDIUM, qualified,
            f"{', '.join(sorted(privileges))} for {_holder(catalog, grantee, via)}"
            + ("" if effective else " (schema not usable by it: latent)")))
    return findings


def grant_options(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    return [Finding(Severity.MEDIUM, row.qualified, f"{row.privilege} WITH GRANT OPTION for {p.umami.name}")
            for row in _in_schema(catalog, ("schema", "relation", "column"))
            if row.grantee == p.umami.oid and row.grantable and row.owner != p.umami.oid]


def onward_grants(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    app = _app_grantees(catalog)
    grouped: dict[tuple[str, int], set[str]] = {}
    for row in _in_schema(catalog, ("relation", "column")):
        if row.owner == p.umami.oid and row.grantee not in app and row.grantee != p.umami.oid:
            grouped.setdefault((row.qualified, row.grantee), set()).add(row.privilege)
    return [Finding(Severity.MEDIUM, qualified, f"{', '.join(sorted(privs))} granted to {p.name(grantee)}")
            for (qualified, grantee), privs in sorted(grouped.items())]


def _mentions_schema(value: str, schema: str) -> bool:
    return schema in (part.strip().strip('"') for part in value.split(","))


def search_paths(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    findings = []
    for setting in p.settings:
        if setting.name != "search_path" or not _mentions_schema(setting.value, catalog.schema):
            continue
        if setting.role == 0 and setting.database in (0, p.database_oid):
            where = "every database" if setting.database == 0 else f"database {p.database_name}"
            findings.append(Finding(Severity.MEDIUM, where, f"search_path={setting.value} for every role"))
        elif setting.role in {r.oid for r in p.app_roles} and setting.database in (0, p.database_oid):
            findings.append(Finding(Severity.MEDIUM, p.name(setting.role), f"search_path={setting.value}"))
    return findings


def privileged_app_roles(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    rds = p.by_name("rds_superuser")
    findings = []
    for app in p.app_roles:
        if app.superuser:
            findings.append(Finding(Severity.HIGH, app.name, "SUPERUSER: reverse isolation cannot be enforced"))
        elif rds and rds.oid in p.reach(app.oid):
            findings.append(Finding(Severity.HIGH, app.name,
                                    f"member: {p.describe(p.reach(app.oid)[rds.oid])}: "
                                    "reverse isolation cannot be enforced"))
    return findings


def acting_as_umami(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    return [Finding(Severity.HIGH, app.name, f"member: {p.describe(p.reach(app.oid)[p.umami.oid])}")
            for app in p.app_roles if p.umami.oid in p.reach(app.oid)]


CHECKS = declare("reverse", {  # titles, severities, remediations: checks.toml
    "ISO-060": schema_access, "ISO-061": object_access, "ISO-062": grant_options, "ISO-063": onward_grants,
    "ISO-064": search_paths, "ISO-065": privileged_app_roles, "ISO-066": acting_as_umami,
})
