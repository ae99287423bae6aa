"""The umami role's own attributes and login settings (answered by the principals query)."""

from __future__ import annotations

from ops.verify.checks.base import Check, Finding, Severity
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


CHECKS = (
    Check("ISO-001", "umami role is not a superuser", Severity.CRITICAL,
          "ALTER ROLE <umami role> NOSUPERUSER;", _attribute("superuser", "SUPERUSER", Severity.CRITICAL)),
    Check("ISO-002", "umami role cannot create roles", Severity.HIGH,
          "ALTER ROLE <umami role> NOCREATEROLE;", _attribute("createrole", "CREATEROLE", Severity.HIGH)),
    Check("ISO-003", "umami role cannot create databases", Severity.HIGH,
          "ALTER ROLE <umami role> NOCREATEDB;", _attribute("createdb", "CREATEDB", Severity.HIGH)),
    Check("ISO-004", "umami role has no replication", Severity.HIGH,
          "ALTER ROLE <umami role> NOREPLICATION;", _attribute("replication", "REPLICATION", Severity.HIGH)),
    Check("ISO-005", "umami role does not bypass row-level security", Severity.HIGH,
          "ALTER ROLE <umami role> NOBYPASSRLS;", _attribute("bypassrls", "BYPASSRLS", Severity.HIGH)),
    Check("ISO-006", "umami role has a connection limit", Severity.MEDIUM,
          "Set umami:connectionLimit (the stack applies CONNECTION LIMIT) or ALTER ROLE <umami role> CONNECTION LIMIT 10;",
          connection_limit),
    Check("ISO-007", "no role switch at login (role= setting)", Severity.HIGH,
          "ALTER ROLE <umami role> [IN DATABASE <db>] RESET role; (or ALTER DATABASE <db> RESET role)",
          login_role_switch),
)
