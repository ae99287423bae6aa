"""Desired state: everything the privilege model grants the umami role is there.

The isolation families look for access beyond the model; this one for what the model
declares and the database lacks or has changed: a revoked schema grant or default
privilege, a role that cannot log in, another connection limit, role settings that differ.
PostgreSQL lets a role change its own session defaults (`ALTER ROLE umami_user SET ...`),
so a setting the role gave itself is drift like one the admin made.

The model is rebuilt from the stack outputs (privilege_model.py, as the program builds it)
and compared with the catalog data the other families already loaded: no query of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ops.verify.checks.base import Finding, NotApplicable, Severity, declare
from ops.verify.checks.catalog import Catalog
from ops.verify.checks.context import Context
from ops.verify.checks.principals import Setting
from privilege_model import (
    DECLARED_SETTINGS, GRANTED_ATTRIBUTES, IDLE_IN_TRANSACTION_TIMEOUT, ROLE_ATTRIBUTES, SEARCH_PATH,
    STATEMENT_TIMEOUT, PrivilegeModel, model_for,
)

# pg_default_acl.defaclobjtype of each object type the model covers.
CATALOG_OBJECT_TYPES = {"table": "r", "sequence": "S"}
# pg_roles columns (principals.Role fields) of the attributes the model grants; the ones it denies
# (SUPERUSER, CREATEDB, ...) are the roles family's (ISO-001..005).
ROLE_COLUMNS = {"LOGIN": "login", "INHERIT": "inherit"}
# What a missing grant breaks.
SCHEMA_PRIVILEGE_LOSS = {"USAGE": "Umami cannot reach any object in its schema",
                         "CREATE": "Prisma's migrations cannot create Umami's tables"}
ATTRIBUTE_LOSS = {"LOGIN": (Severity.HIGH, "Umami cannot log in"),
                  "INHERIT": (Severity.LOW, "the role differs from the model (it holds no membership to inherit)")}
# The outputs that carry each declared timeout (older outputs lack them).
TIMEOUT_OUTPUTS = {STATEMENT_TIMEOUT: "dbStatementTimeoutMs", IDLE_IN_TRANSACTION_TIMEOUT: "dbIdleInTransactionTimeoutMs"}
# Reported by ISO-007 (a role switch at login), not again here.
ROLE_SWITCH_SETTING = "role"
# Always searched first anyway: naming it adds no schema to the path.
IMPLICIT_SCHEMAS = ("pg_catalog",)
# PostgreSQL's time units, in milliseconds (a value without a unit is in the setting's unit, ms here).
TIME_UNITS_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
TIME_VALUE = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-z]*)\s*$")


@dataclass(frozen=True)
class Desired:
    """The declared model and the catalog data it is checked against."""

    model: PrivilegeModel
    catalog: Catalog


def load(ctx: Context) -> Desired:
    """The model as the program declared it, from the outputs (and the admin the audit knows)."""
    db = ctx.outputs.database
    catalog = ctx.catalog
    return Desired(model_for(database=db.name, schema=db.schema, role=db.role, admin_role=catalog.admin_role,
                             connection_limit=db.connection_limit, statement_timeout_ms=db.statement_timeout_ms,
                             idle_in_transaction_timeout_ms=db.idle_in_transaction_timeout_ms), catalog)


# -- grants -----------------------------------------------------------------------------------

def schema_privileges(desired: Desired) -> list[Finding]:
    model, catalog = desired.model, desired.catalog
    p = catalog.principals
    held = {r.privilege for r in catalog.object_acls
            if r.kind == "schema" and r.oid == p.schema_oid and r.grantee == p.umami.oid}
    return [Finding(Severity.HIGH, f"schema {model.schema}",
                    f"{model.role} lacks {privilege} on it: {SCHEMA_PRIVILEGE_LOSS[privilege]}",
                    fix=(model.schema_grant_sql((privilege,)),))
            for privilege in model.schema_privileges if privilege not in held]


def default_privileges(desired: Desired) -> list[Finding]:
    model, catalog = desired.model, desired.catalog
    p = catalog.principals
    if not model.admin_role:
        raise NotApplicable("the admin role is not known (no dbAdminRole in the outputs, no admin login): "
                            "whose default privileges to look for")
    if p.admin is None:
        raise NotApplicable(f"the admin role {model.admin_role} does not exist in {p.database_name}")
    findings = []
    for declared in model.default_privileges:
        held = {e.privilege for e in catalog.default_acls
                if e.role == p.admin.oid and e.nsp_oid == p.schema_oid and e.grantee == p.umami.oid
                and e.objtype == CATALOG_OBJECT_TYPES[declared.object_type]}
        missing = tuple(privilege for privilege in declared.privileges if privilege not in held)
        if missing:
            objects = declared.objects.lower()
            findings.append(Finding(
                Severity.MEDIUM, f"default privileges for role {model.admin_role} in schema {model.schema} on {objects}",
                f"{model.role} lacks {', '.join(missing)}: {objects} the admin creates there are not usable by Umami",
                fix=(model.default_privileges_sql(declared.object_type, missing),)))
    return findings


# -- the role -----------------------------------------------------------------------------------

def login_and_inherit(desired: Desired) -> list[Finding]:
    model, umami = desired.model, desired.catalog.principals.umami
    findings = []
    for attribute in (a for a in ROLE_ATTRIBUTES if a in GRANTED_ATTRIBUTES):
        if not getattr(umami, ROLE_COLUMNS[attribute]):
            severity, loss = ATTRIBUTE_LOSS[attribute]
            findings.append(Finding(severity, model.role, f"{model.role} has NO{attribute}: {loss}",
                                    fix=(model.attributes_sql((attribute,)),)))
    return findings


def connection_limit(desired: Desired) -> list[Finding]:
    model, umami = desired.model, desired.catalog.principals.umami
    if model.connection_limit is None:
        raise NotApplicable("the outputs have no dbConnectionLimit (written before it was exported)")
    if umami.connlimit < 0:
        raise NotApplicable(f"{model.role} has no CONNECTION LIMIT at all (ISO-006 reports that)")
    if umami.connlimit == model.connection_limit:
        return []
    effect = ("Umami's pools, a rolling deployment and ops need up to the declared number"
              if umami.connlimit < model.connection_limit else
              "Umami may take more of the database's connections than the stack budgeted")
    return [Finding(Severity.MEDIUM, model.role,
                    f"CONNECTION LIMIT {umami.connlimit}, declared {model.connection_limit} (dbConnectionLimit): {effect}",
                    fix=(model.connection_limit_sql(),))]


# -- role settings -------------------------------------------------------------------------------

def role_settings(desired: Desired) -> list[Finding]:
    """Exactly the declared settings, for every database: each one missing, different, set again for
    this database only, or a setting the model does not declare at all is reported."""
    model, p = desired.model, desired.catalog.principals
    own = [s for s in p.settings if s.role == p.umami.oid and s.name != ROLE_SWITCH_SETTING]
    everywhere = {s.name: s.value for s in own if s.database == 0}
    unknown = [name for name in DECLARED_SETTINGS if model.setting(name) is None]
    findings = []
    for name in DECLARED_SETTINGS:
        if name in unknown:
            continue
        if name not in everywhere:
            findings.append(Finding(Severity.MEDIUM, f"{model.role} {name}",
                                    f"not set; declared {name}={model.setting(name)}", fix=(model.setting_sql(name),)))
        elif difference := _difference(model, name, everywhere[name]):
            findings.append(Finding(_severity(model, name, everywhere[name]), f"{model.role} {name}",
                                    f"{name}={everywhere[name]}: {difference}", fix=(model.setting_sql(name),)))
    for setting in own:
        if setting.database == 0 and setting.name in DECLARED_SETTINGS:
            continue  # compared above
        findings.append(_undeclared(model, p.database_name, setting))
    if unknown:
        keys = ", ".join(TIMEOUT_OUTPUTS[name] for name in unknown)
        findings.append(Finding(Severity.INFO, model.role, f"{', '.join(unknown)} not compared: the outputs have no "
                                                           f"{keys} (written before they were exported)"))
    return findings


def _undeclared(model: PrivilegeModel, database: str, setting: Setting) -> Finding:
    """A role setting outside the model: any setting for this database only, or an undeclared one."""
    where = f"in database {database} only" if setting.database else "in every database"
    if setting.database and setting.name in DECLARED_SETTINGS:
        declared = model.setting(setting.name)
        meaning = f"overrides the declared {setting.name}={declared} there" if declared else "overrides the declared one there"
    else:
        meaning = "the model declares no such setting"
    return Finding(_severity(model, setting.name, setting.value), f"{model.role} {setting.name}",
                   f"{setting.name}={setting.value} is set for {model.role} {where}: {meaning}",
                   fix=(model.reset_sql(setting.name, database if setting.database else None),))


def _severity(model: PrivilegeModel, name: str, value: str) -> Severity:
    """HIGH for a search_path naming another schema (unqualified names may resolve there), else MEDIUM."""
    return Severity.HIGH if name == SEARCH_PATH and _other_schemas(model, value) else Severity.MEDIUM


def _difference(model: PrivilegeModel, name: str, value: str) -> str | None:
    """Why `value` (as pg_db_role_setting holds it) is not the declared value; None when equivalent."""
    if name == SEARCH_PATH:
        if schema_list(value) == list(model.search_path):
            return None
        others = _other_schemas(model, value)
        names = f"names {', '.join(others)} besides {model.schema}" if others else "differs"
        return f"{names}; declared {SEARCH_PATH}={model.setting(SEARCH_PATH)}"
    declared = int(model.setting(name))
    found = milliseconds(value)
    if found is not None and round(found) == declared:
        return None
    shown = "not a time" if found is None else f"{int(found) if found.is_integer() else found} ms"
    return f"{shown}, declared {declared} ms{' (none)' if declared == 0 else ''}"


def _other_schemas(model: PrivilegeModel, value: str) -> list[str]:
    return [s for s in schema_list(value) if s and s not in model.search_path and s not in IMPLICIT_SCHEMAS]


def schema_list(value: str) -> list[str]:
    """A search_path value as its schema names: split at commas outside double quotes, unquoted."""
    names, current, quoted, i = [], [], False, 0
    while i < len(value):
        char = value[i]
        if char == '"':
            if quoted and value[i + 1:i + 2] == '"':
                current.append('"')
                i += 1
            else:
                quoted = not quoted
        elif char == "," and not quoted:
            names.append("".join(current))
            current = []
        elif quoted or not char.isspace():  # outside quotes, spaces only surround the commas
            current.append(char)
        i += 1
    names.append("".join(current))
    return names


def milliseconds(value: str) -> float | None:
    """A time setting's value in milliseconds ('30s', '30000', '1min'); None when it is not a time."""
    match = TIME_VALUE.match(value)
    if not match or match.group(2) not in ("", *TIME_UNITS_MS):
        return None
    return float(match.group(1)) * TIME_UNITS_MS.get(match.group(2), 1)


CHECKS = declare("desired", {  # titles, severities, remediations: checks.toml
    "DES-001": schema_privileges, "DES-002": default_privileges, "DES-003": login_and_inherit,
    "DES-004": connection_limit, "DES-005": role_settings,
})
