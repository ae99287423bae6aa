"""Role memberships of the umami role, direct and transitive (answered by the principals query).

Every path counts, inherited or usable only by SET ROLE: in PostgreSQL 15 a member
can SET ROLE to any role it reaches, whatever INHERIT says.
"""

from __future__ import annotations

from ops.verify import fixes
from ops.verify.checks.base import Finding, Severity, declare
from ops.verify.checks.catalog import Catalog
from ops.verify.checks.principals import DATABASE_OWNER_ROLE

# Predefined roles (and Aurora's rds_superuser) that reach every application's data, files or sessions.
DANGEROUS_ROLES = {
    "rds_superuser": Severity.CRITICAL,
    "pg_read_all_data": Severity.CRITICAL,
    "pg_write_all_data": Severity.CRITICAL,
    "pg_read_server_files": Severity.CRITICAL,
    "pg_write_server_files": Severity.CRITICAL,
    "pg_execute_server_program": Severity.CRITICAL,
    "pg_read_all_stats": Severity.HIGH,
    "pg_monitor": Severity.HIGH,
    "pg_signal_backend": Severity.HIGH,
}


def _memberships(catalog: Catalog):
    p = catalog.principals
    for oid, path in p.umami_reach.items():
        name = p.name(oid)
        # The database owner's implicit pg_database_owner membership is reported as ownership (ISO-040).
        if oid == p.umami.oid or name == DATABASE_OWNER_ROLE:
            continue
        yield name, path


def dangerous_memberships(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    return [fixes.finding(DANGEROUS_ROLES[name], name, f"member: {p.describe(path)}", fixes.leave_path(p, path))
            for name, path in _memberships(catalog) if name in DANGEROUS_ROLES]


def other_memberships(catalog: Catalog) -> list[Finding]:
    p = catalog.principals
    return [fixes.finding(Severity.HIGH, name, f"member: {p.describe(path)}", fixes.leave_path(p, path))
            for name, path in _memberships(catalog) if name not in DANGEROUS_ROLES]


def acting_as_umami(catalog: Catalog) -> list[Finding]:
    """Direct members of the umami role other than the admin and the application roles (ISO-066)."""
    p = catalog.principals
    allowed = {r.oid for r in p.app_roles} | ({p.admin.oid} if p.admin else set())
    members = sorted(member for member, granted in p.grants.items() if p.umami.oid in granted)
    return [fixes.finding(Severity.MEDIUM, p.name(m), f"{p.name(m)} is a member of {p.umami.name} and can act as it",
                          fixes.revoke_membership(p, p.umami.oid, m))
            for m in members if m not in allowed]


CHECKS = declare("memberships", {  # titles, severities, remediations: checks.toml
    "ISO-010": dangerous_memberships, "ISO-011": other_memberships, "ISO-012": acting_as_umami,
})
