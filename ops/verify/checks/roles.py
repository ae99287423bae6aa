"""The umami role's own attributes and login settings (answered by the principals query)."""

from __future__ import annotations

from ops.verify import fixes
from ops.verify.checks.base import Finding, Severity, declare
from ops.verify.checks.catalog import Catalog
from ops.verify.checks.principals import Setting

# Attributes only a superuser may change, whoever holds them (PostgreSQL 15's ALTER ROLE).
SUPERUSER_ONLY = ("REPLICATION", "BYPASSRLS")


def _attribute(attribute: str, label: str, severity: Severity):
    def evaluate(catalog: Catalog) -> list[Finding]:
        p = catalog.principals
        umami = p.umami
        if getattr(umami, attribute):
            repair = fixes.alter_umami(p, f"NO{label}", needs_superuser=label in SUPERUSER_ONLY)
            return [fixes.finding(severity, umami.name, f"{umami.name} has {label}", repair)]
        return []
    return evaluate


def connection_limit(catalog: Catalog) -> list[Finding]:
    # No SQL: the right limit is the stack's connection budget, which `pulumi up` applies.
    umami = catalog.principals.umami
    if umami.connlimit < 0:
        return [Finding(Severity.MEDIUM, umami.name,
                        f"{umami.name} has no CONNECTION LIMIT: Umami's pool could take every connection")]
    return []


def _reset_role(catalog: Catalog, setting: Setting) -> fixes.Repair:
    """Remove a `role=` login setting where it was made: on umami, on the database, or for everyone."""
    p = catalog.principals
    where = "" if setting.database == 0 else f"IN DATABASE {fixes.ident(p.database_name)} "
    if setting.role == p.umami.oid:
        return fixes.alter_umami(p, f"{where}RESET role")
    if setting.database:
        return fixes.as_member_of(p, p.database_owner, (f"ALTER DATABASE {fixes.ident(p.database_name)} RESET role;",))
    return fixes.superuser_only("ALTER ROLE ALL RESET role; (the setting applies to every role)")


def login_role_switch(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    return [
        fixes.finding(Severity.HIGH, p.umami.name,
                      f"`{s.name}={s.value}` is applied at login "
                      + ("to every role" if s.role == 0 else f"to {p.umami.name}")
                      + (" in every database" if s.database == 0 else f" in {p.database_name}"),
                      _reset_role(catalog, s))
        for s in p.settings_for(p.umami.oid) if s.name == "role"
    ]


CHECKS = declare("roles", {  # titles, severities, remediations: checks.toml
    "ISO-001": _attribute("superuser", "SUPERUSER", Severity.CRITICAL),
    "ISO-002": _attribute("createrole", "CREATEROLE", Severity.HIGH),
    "ISO-003": _attribute("createdb", "CREATEDB", Severity.HIGH),
    "ISO-004": _attribute("replication", "REPLICATION", Severity.HIGH),
    "ISO-005": _attribute("bypassrls", "BYPASSRLS", Severity.HIGH),
    "ISO-006": connection_limit, "ISO-007": login_role_switch,
})
