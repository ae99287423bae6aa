"""The umami role's own attributes and login settings (answered by the principals query)."""

from __future__ import annotations

from ops.verify.checks.base import Finding, Severity, declare
from ops.verify.checks.catalog import Catalog


def _attribute(attribute: str, label: str, severity: Severity):
    def evaluate(catalog: Catalog) -> list[Finding]:
        umami = catalog.principals.umami
        if getattr(umami, attribute):
            return [Finding(severity, umami.name, f"{umami.name} has {label}")]
        return []
    return evaluate


def connection_limit(catalog: Catalog) -> list[Finding]:
    umami = catalog.principals.umami
    if umami.connlimit < 0:
        return [Finding(Severity.MEDIUM, umami.name,
                        f"{umami.name} has no CONNECTION LIMIT: Umami's pool could take every connection")]
    return []


def login_role_switch(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    return [
        Finding(Severity.HIGH, p.umami.name,
                f"`{s.name}={s.value}` is applied at login "
                + ("to every role" if s.role == 0 else f"to {p.umami.name}")
                + (" in every database" if s.database == 0 else f" in {p.database_name}"))
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
