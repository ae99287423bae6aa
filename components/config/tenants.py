"""The tenants section: schema-per-tenant names, their connection limit, and the tenant registry.

`umami:tenants` is a list of names (a YAML list in the stack file, or a JSON list as a plain value)
or `file:PATH`, a file with one name per line (`#` starts a comment, blank lines are ignored), for
hundreds of tenants. Each name gives schema and role `tenant_<name>` (facts.tenant_schema /
tenant_role), so a name is 1-40 lowercase letters, digits and `_`, starting with a letter: the
object names stay plain identifiers far below PostgreSQL's 63 bytes. A name is refused when it is
listed twice, or when its schema or role would be one the stack already uses: Umami's schema or
role, the admin, an application role, the registry's schema or its service role. Existing schemas
and roles that are not the stack's are found in the catalog, by the rehearsal before any change
(ops/rehearse/apply.py), and by `pulumi up` itself (CREATE ROLE fails on an existing role).

`umami:tenantRegistry` (`schema.table`, off by default) names the table of tenants that
`python -m ops.tenants registry --apply` keeps in step with the list; `umami:tenantServiceRole`,
an existing role and required with it, is the only role that may read it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from components.config.database import DatabaseConfig, identifier_problem, keyword_problem, role_problem
from components.config.reader import Reader
from components.config.secrets import SecretsConfig
from facts import tenant_role, tenant_schema

TENANT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
NAME_RULE = "use 1-40 lowercase letters, digits and _, starting with a letter (schema and role tenant_<name>)"
FILE_PREFIX = "file:"
MAX_TENANTS = 1000
DEFAULT_TENANT_CONNECTION_LIMIT = 5  # a tenant's own tools, not a pooled service: a small ceiling
MAX_TENANT_CONNECTION_LIMIT = 500
SECRET_NAME_LIMIT = 512  # Secrets Manager's longest secret name


@dataclass(frozen=True)
class TenantsConfig:
    """The declared tenants and the registry that lists them (both empty by default)."""

    names: tuple[str, ...] = ()
    connection_limit: int = DEFAULT_TENANT_CONNECTION_LIMIT
    secret_base: str = ""  # tenant NAME's credentials are stored as <secret_base>/tenants/NAME
    registry: str | None = None  # "schema.table"
    service_role: str | None = None

    def secret_name(self, name: str) -> str:
        return tenant_secret_name(self.secret_base, name)


def tenant_secret_name(secret_base: str, name: str) -> str:
    """The Secrets Manager name of tenant `name`'s credentials, beside Umami's own secret."""
    return f"{secret_base}/tenants/{name}"


def name_problem(value: str) -> str | None:
    return None if TENANT_NAME.match(value) else f"is not a tenant name; {NAME_RULE}"


def _names_from_file(reader: Reader, value: str) -> list[tuple[str, str]]:
    """(name, where) for each name in the file `value` names; unreadable files are a problem."""
    path = Path(value[len(FILE_PREFIX):].strip()).expanduser()
    shown = value[len(FILE_PREFIX):].strip()
    if not shown:
        reader.fail("tenants", value, "names no file; use file:PATH (one tenant name per line)")
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reader.fail("tenants", value, f"cannot be read ({getattr(exc, 'strerror', None) or type(exc).__name__}); "
                    "use file:PATH of a UTF-8 file with one tenant name per line")
        return []
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        name = line.split("#", 1)[0].strip()
        if name:
            entries.append((name, f"({shown} line {number}) "))
    return entries


def _declared(reader: Reader) -> list[tuple[object, str]]:
    """The configured entries as (value, where in a file), unvalidated."""
    value = reader.raw("tenants")
    if value is None:
        return []
    if value.startswith(FILE_PREFIX):
        return _names_from_file(reader, value)
    try:
        values = json.loads(value)
    except ValueError:
        values = None
    if not isinstance(values, list):
        reader.fail("tenants", value, "is not a list of names; use a YAML or JSON list, or file:PATH with one "
                    "name per line")
        return []
    return [(entry, "") for entry in values]


def _taken(db: DatabaseConfig, reader: Reader) -> dict[str, str]:
    """Names the stack already uses for schemas or roles, and the key that uses each."""
    taken = {db.schema: f"{reader.key('schemaName')} (Umami's schema)",
             db.role: f"{reader.key('roleName')} (Umami's role)"}
    if db.admin_username:
        taken[db.admin_username] = f"{reader.key('adminUsername')} (the admin)"
    for role in db.application_roles:
        taken.setdefault(role, f"an application role ({reader.key('applicationRoles')})")
    return taken


def read_names(reader: Reader, db: DatabaseConfig) -> tuple[str, ...]:
    """`umami:tenants`, each name checked, none twice, none colliding with what the stack uses."""
    taken = _taken(db, reader)
    names: list[str] = []
    entries = _declared(reader)
    for entry, where in entries:
        if not isinstance(entry, str):
            reader.fail("tenants", entry, f"{where}is not a string; list tenant names")
            continue
        problem = name_problem(entry)
        if problem:
            reader.fail("tenants", entry, where + problem)
        elif entry in names:
            reader.fail("tenants", entry, f"{where}is listed twice; list each tenant once")
        elif tenant_role(entry) in taken:
            reader.fail("tenants", entry, f"{where}gives schema and role {tenant_role(entry)}, which is "
                        f"{taken[tenant_role(entry)]}; choose another tenant name")
        else:
            names.append(entry)
    if len(entries) > MAX_TENANTS:
        reader.fail("tenants", f"[{len(entries)} entries]", f"is too long; declare at most {MAX_TENANTS} tenants")
    return tuple(names)


def read_registry(reader: Reader, db: DatabaseConfig, names: tuple[str, ...]) -> str | None:
    """`umami:tenantRegistry` as `schema.table`, outside Umami's and every tenant's schema."""
    value = reader.string("tenantRegistry")
    if value is None:
        return None
    parts = value.split(".")
    if len(parts) != 2:
        reader.fail("tenantRegistry", value, "is not schema.table; use e.g. public.tenants")
        return None
    problems = [f"has {part}, which {problem}" for part in parts
                if (problem := identifier_problem(part) or keyword_problem(part, "public.tenants"))]
    schema = parts[0]
    if not problems and schema == "information_schema":
        problems.append("is in information_schema; use e.g. public.tenants")
    elif not problems and schema == db.schema:
        problems.append(f"is in Umami's schema ({reader.key('schemaName')}); use e.g. public.tenants")
    elif not problems and schema in {tenant_schema(n) for n in names}:
        problems.append("is in a tenant's schema, where that tenant could reach it; use e.g. public.tenants")
    if problems:
        reader.fail("tenantRegistry", value, problems[0])
        return None
    return value


def read_service_role(reader: Reader, db: DatabaseConfig, names: tuple[str, ...]) -> str | None:
    """`umami:tenantServiceRole`: required with the registry, meaningless without it, and never a
    role whose reach the isolation checks bound (Umami's, a tenant's) or the registry's owner."""
    role = reader.string("tenantServiceRole", check=role_problem)
    with_registry = reader.raw("tenantRegistry") is not None
    if role is None:
        if with_registry and "tenantServiceRole" not in reader.nulls:
            reader.problems.append(f"{reader.key('tenantServiceRole')} is required with "
                                   f"{reader.key('tenantRegistry')}: the one role that may read the registry")
        return None
    if not with_registry:
        reader.fail("tenantServiceRole", role, f"needs {reader.key('tenantRegistry')}; set both or neither")
    elif role == db.role:
        reader.fail("tenantServiceRole", role, "is Umami's role, which must reach nothing outside its schema; "
                    "name the service's own role")
    elif role in {tenant_role(n) for n in names}:
        reader.fail("tenantServiceRole", role, "is a tenant's role, which must reach nothing outside its schema; "
                    "name the service's own role")
    elif role == db.admin_username:
        reader.fail("tenantServiceRole", role, "is the admin, which owns the registry; name the service's own role")
    return role


def read_tenants(reader: Reader, db: DatabaseConfig, secrets: SecretsConfig) -> TenantsConfig:
    names = read_names(reader, db)
    for name in names:
        if len(tenant_secret_name(secrets.db_secret_name, name)) > SECRET_NAME_LIMIT:
            reader.fail("tenants", name, f"makes its secret name ({reader.key('secretName')}/tenants/{name}) longer "
                        f"than {SECRET_NAME_LIMIT} characters; shorten {reader.key('secretName')}")
    return TenantsConfig(
        names=names,
        connection_limit=reader.integer("tenantConnectionLimit", DEFAULT_TENANT_CONNECTION_LIMIT, 1,
                                        MAX_TENANT_CONNECTION_LIMIT, " connections per tenant role"),
        secret_base=secrets.db_secret_name,
        registry=read_registry(reader, db, names),
        service_role=read_service_role(reader, db, names),
    )
