"""Reverse isolation: the application's roles must not reach Umami's schema or act as umami.

Application roles come from the outputs (`applicationRoles`) or, when none are
listed, are discovered as every login role other than umami, the admin/auditor
and platform roles. Their reach includes every role they can SET ROLE to.
Answered from the principals, relation-ACL and object-ACL queries.

A grant to PUBLIC or to a role the application reaches is revoked from that grantee;
when the grantee is umami, the admin or an object's owner (their privileges are the
model), the application's membership that reaches it is cut instead.
"""

from __future__ import annotations

from ops.verify import fixes
from ops.verify.checks.base import Finding, Severity, declare
from ops.verify.checks.catalog import AclRow, Catalog
from ops.verify.checks.principals import PUBLIC, Path, Role, Setting


class _AppGrantees:
    """Grantees through which an application role gets access: the roles it can act as, and PUBLIC
    (umami: ISO-066). `holders[grantee]` is the first such application role and its path (None: PUBLIC)."""

    def __init__(self, catalog: Catalog):
        self.p = catalog.principals

    def __contains__(self, grantee: int) -> bool:
        return grantee == PUBLIC or (grantee != self.p.umami.oid and self.p.app_holder(grantee) is not None)

    def __getitem__(self, grantee: int) -> tuple[Role, Path] | None:
        return None if grantee == PUBLIC else self.p.app_holder(grantee)


def _holder(catalog: Catalog, grantee: int, via: tuple[Role, Path] | None) -> str:
    p = catalog.principals
    if via is None:
        return "PUBLIC"
    app, path = via
    return p.describe(path) if len(path.roles) > 1 else app.name


def _trusted(catalog: Catalog) -> set[int]:
    p = catalog.principals
    return {p.umami.oid, p.schema_owner} | ({p.admin.oid} if p.admin else set())


def _revoke_from_app(catalog: Catalog, rows: list[AclRow], via: tuple[Role, Path] | None) -> fixes.Repair:
    """Take the access of `rows` (one object, one grantee) away from the application."""
    p = catalog.principals
    grantee = rows[0].grantee
    if via is not None and (grantee in _trusted(catalog) or grantee == rows[0].owner):
        _, path = via
        return fixes.revoke_membership(p, path.roles[-1], path.roles[-2])
    return fixes.revoke(p, rows)


def _in_schema(catalog: Catalog, kinds: tuple[str, ...]) -> list[AclRow]:
    rows = catalog.relation_acls + catalog.object_acls
    return [r for r in rows if r.kind in kinds and r.nsp_oid == catalog.principals.schema_oid]


def schema_access(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    app = _AppGrantees(catalog)
    trusted = _trusted(catalog)
    findings = []
    for row in _in_schema(catalog, ("schema",)):
        if row.grantee in app:
            findings.append(fixes.finding(Severity.HIGH, f"schema {row.name}",
                                          f"{row.privilege} for {_holder(catalog, row.grantee, app[row.grantee])}",
                                          _revoke_from_app(catalog, [row], app[row.grantee])))
        elif row.grantee not in trusted:
            findings.append(fixes.finding(Severity.MEDIUM, f"schema {row.name}",
                                          f"{row.privilege} for {p.name(row.grantee)} (neither umami nor the admin)",
                                          fixes.revoke(p, [row])))
    return findings


def object_access(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    app = _AppGrantees(catalog)
    usage = catalog.schema_usage.get(p.schema_oid, set())
    grouped: dict[tuple[str, int], list[AclRow]] = {}
    for row in _in_schema(catalog, ("relation", "column")):
        if row.grantee in app:
            grouped.setdefault((row.qualified, row.grantee), []).append(row)
    findings = []
    for (qualified, grantee), rows in sorted(grouped.items()):
        privileges = {r.privilege for r in rows}
        via = app[grantee]
        # The grant is usable when the same application role (or PUBLIC) can also use the schema.
        reachable = {PUBLIC} | (set(p.reach(via[0].oid)) if via else set())
        effective = bool(usage & reachable)
        findings.append(fixes.finding(
            Severity.HIGH if effective else Severity.MEDIUM, qualified,
            f"{', '.join(sorted(privileges))} for {_holder(catalog, grantee, via)}"
            + ("" if effective else " (schema not usable by it: latent)"), _revoke_from_app(catalog, rows, via)))
    return findings


def grant_options(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    return [fixes.finding(Severity.MEDIUM, row.qualified, f"{row.privilege} WITH GRANT OPTION for {p.umami.name}",
                          fixes.revoke(p, [row], grant_option=True))
            for row in _in_schema(catalog, ("schema", "relation", "column"))
            if row.grantee == p.umami.oid and row.grantable and row.owner != p.umami.oid]


def onward_grants(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    app = _AppGrantees(catalog)
    grouped: dict[tuple[str, int], list[AclRow]] = {}
    for row in _in_schema(catalog, ("relation", "column")):
        if row.owner == p.umami.oid and row.grantee not in app and row.grantee != p.umami.oid:
            grouped.setdefault((row.qualified, row.grantee), []).append(row)
    return [fixes.finding(Severity.MEDIUM, qualified, f"{', '.join(sorted({r.privilege for r in rows}))} granted to "
                                                      f"{p.name(grantee)}", fixes.revoke(p, rows))
            for (qualified, grantee), rows in sorted(grouped.items())]


def _path_elements(value: str) -> list[str]:
    """A search_path value's schema names as PostgreSQL reads them: quoted kept, unquoted lower-cased."""
    parts = (part.strip() for part in value.split(","))
    return [part[1:-1].replace('""', '"') if len(part) > 1 and part[0] == part[-1] == '"' else part.lower()
            for part in parts if part]


def _mentions_schema(value: str, schema: str) -> bool:
    return schema in _path_elements(value)


def _without_schema(catalog: Catalog, setting: Setting) -> fixes.Repair:
    """The same search_path setting, where it was made, minus the schema (reset when nothing is left)."""
    p = catalog.principals
    kept = [fixes.ident(name) for name in _path_elements(setting.value) if name != catalog.schema]
    change = f"SET search_path TO {', '.join(kept)}" if kept else "RESET search_path"
    if setting.role == 0 and setting.database == 0:
        return fixes.superuser_only(f"ALTER ROLE ALL {change}; (the setting applies to every role)")
    if setting.role == 0:
        return fixes.as_member_of(p, p.database_owner, (f"ALTER DATABASE {fixes.ident(p.database_name)} {change};",))
    role = p.roles[setting.role]
    where = f" IN DATABASE {fixes.ident(p.database_name)}" if setting.database else ""
    statement = f"ALTER ROLE {fixes.ident(role.name)}{where} {change};"
    if role.superuser or role.replication:
        return fixes.superuser_only(f"{statement} alters a superuser or replication role")
    return fixes.Repair((statement,))


def search_paths(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    findings = []
    for setting in p.settings:
        if setting.name != "search_path" or not _mentions_schema(setting.value, catalog.schema):
            continue
        if setting.role == 0 and setting.database in (0, p.database_oid):
            where = "every database" if setting.database == 0 else f"database {p.database_name}"
            findings.append(fixes.finding(Severity.MEDIUM, where, f"search_path={setting.value} for every role",
                                          _without_schema(catalog, setting)))
        elif setting.role in {r.oid for r in p.app_roles} and setting.database in (0, p.database_oid):
            findings.append(fixes.finding(Severity.MEDIUM, p.name(setting.role), f"search_path={setting.value}",
                                          _without_schema(catalog, setting)))
    return findings


def privileged_app_roles(catalog: Catalog) -> list[Finding]:
    # No SQL: taking SUPERUSER or rds_superuser from the application is the application's change to make.
    p = catalog.principals
    rds = p.by_name("rds_superuser")
    findings = []
    for app in p.app_roles:
        if app.superuser:
            findings.append(Finding(Severity.HIGH, app.name, "SUPERUSER: reverse isolation cannot be enforced"))
        elif rds and app.oid in p.reached_by(rds.oid):
            findings.append(Finding(Severity.HIGH, app.name,
                                    f"member: {p.describe(p.reach(app.oid)[rds.oid])}: "
                                    "reverse isolation cannot be enforced"))
    return findings


def acting_as_umami(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    acting = p.reached_by(p.umami.oid)
    return [fixes.finding(Severity.HIGH, app.name, f"member: {p.describe(path)}",
                          fixes.revoke_membership(p, p.umami.oid, path.roles[-2]))
            for app in p.app_roles if app.oid in acting and (path := p.reach(app.oid)[p.umami.oid])]


CHECKS = declare("reverse", {  # titles, severities, remediations: checks.toml
    "ISO-060": schema_access, "ISO-061": object_access, "ISO-062": grant_options, "ISO-063": onward_grants,
    "ISO-064": search_paths, "ISO-065": privileged_app_roles, "ISO-066": acting_as_umami,
})
