"""Who is who in the database: roles, memberships and the effective reach of a role.

Built from one catalog query (`ops.verify.checks.catalog`). A role can use the
privileges of every role it reaches through `pg_auth_members`: inherited when
every member on the path has INHERIT, otherwise by `SET ROLE` (PostgreSQL 15
allows SET ROLE along any membership path). The owner of the current database
is also an implicit member of `pg_database_owner`. PUBLIC (oid 0) applies to all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

PUBLIC = 0
DATABASE_OWNER_ROLE = "pg_database_owner"
# Roles that belong to the platform, never to the application (RDS/Aurora and PostgreSQL's own).
PLATFORM_ROLE_PREFIXES = ("pg_", "rds")


class Role(NamedTuple):
    oid: int
    name: str
    superuser: bool
    inherit: bool
    createrole: bool
    createdb: bool
    login: bool
    replication: bool
    bypassrls: bool
    connlimit: int


class Path(NamedTuple):
    """A membership path from a role (first) to a role it can act as (last)."""

    roles: tuple[int, ...]
    inherited: bool  # False: only usable after SET ROLE (a NOINHERIT member on the way)


class Setting(NamedTuple):
    """One `ALTER ROLE/DATABASE ... SET` entry: database 0 = every database, role 0 = every role."""

    database: int
    role: int
    name: str
    value: str


@dataclass
class Principals:
    """Roles, memberships and settings of one database, plus the roles that matter to the audit."""

    roles: dict[int, Role]
    grants: dict[int, list[int]]  # member -> roles granted to it
    database_oid: int
    database_name: str
    database_owner: int
    schema_oid: int | None
    schema_owner: int | None
    settings: list[Setting]
    lo_compat_privileges: bool
    current_user: str
    umami: Role | None = None
    admin: Role | None = None
    app_roles: list[Role] = field(default_factory=list)
    app_roles_discovered: bool = False
    missing_app_roles: list[str] = field(default_factory=list)

    # -- lookups -----------------------------------------------------------------
    def by_name(self, name: str | None) -> Role | None:
        if not name:
            return None
        if "_by_name" not in self.__dict__:  # built once: the matrix looks up a name per principal
            self.__dict__["_by_name"] = {r.name: r for r in self.roles.values()}
        return self.__dict__["_by_name"].get(name)

    def name(self, oid: int) -> str:
        if oid == PUBLIC:
            return "PUBLIC"
        role = self.roles.get(oid)
        return role.name if role else f"role #{oid}"

    # -- reach -------------------------------------------------------------------
    def reach(self, start: int) -> dict[int, Path]:
        """Every role `start` can act as, itself included, with the shortest path to it."""
        cache = self.__dict__.setdefault("_reach_cache", {})
        if start in cache:
            return cache[start]
        inheriting = self._inheriting()
        paths: dict[int, Path] = {start: Path((start,), True)}
        level = [start]
        while level:  # breadth first, one level of memberships at a time
            next_level = []
            for current in level:
                via = paths[current]
                inherited = via.inherited and current in inheriting
                for granted in self.grants.get(current, ()):
                    if granted not in paths:
                        paths[granted] = Path(via.roles + (granted,), inherited)
                        next_level.append(granted)
            level = next_level
        owner_role = self.by_name(DATABASE_OWNER_ROLE)
        if owner_role and owner_role.oid not in paths and self.database_owner in paths:
            via = paths[self.database_owner]
            paths[owner_role.oid] = Path(via.roles + (owner_role.oid,), via.inherited and via.roles[-1] in inheriting)
        cache[start] = paths
        return paths

    def _inheriting(self) -> frozenset[int]:
        """The roles with INHERIT (a path stays inherited only through them)."""
        if "_inheriting_roles" not in self.__dict__:
            self.__dict__["_inheriting_roles"] = frozenset(oid for oid, role in self.roles.items() if role.inherit)
        return self.__dict__["_inheriting_roles"]

    def describe(self, path: Path) -> str:
        """'umami_user → reporting → pg_monitor (SET ROLE only)'."""
        text = " → ".join(self.name(oid) for oid in path.roles)
        return text if path.inherited else f"{text} (by SET ROLE: a NOINHERIT role on the way)"

    @property
    def umami_reach(self) -> dict[int, Path]:
        return self.reach(self.umami.oid) if self.umami else {}

    def umami_grantees(self) -> frozenset[int]:
        """Grantees whose privileges umami can use: itself, the roles it reaches, PUBLIC."""
        if "_umami_grantees" not in self.__dict__:
            self.__dict__["_umami_grantees"] = frozenset(self.umami_reach) | {PUBLIC}
        return self.__dict__["_umami_grantees"]

    def reached_by(self, target: int) -> frozenset[int]:
        """Every role that can act as `target`, itself included: the roles whose reach() holds it."""
        cache = self.__dict__.setdefault("_reached_by_cache", {})
        if target not in cache:
            members = self._members()
            found = {target}
            level = [target]
            while level:  # the memberships read backwards, one level at a time
                level = [m for granted in level for m in members.get(granted, ()) if m not in found]
                found.update(level)
            owner_role = self.by_name(DATABASE_OWNER_ROLE)
            if owner_role and target == owner_role.oid:  # the database's owner is its implicit member
                found |= self.reached_by(self.database_owner)
            cache[target] = frozenset(found)
        return cache[target]

    def _members(self) -> dict[int, list[int]]:
        """Role -> its direct members (the grants read backwards), built once."""
        if "_members_index" not in self.__dict__:
            members: dict[int, list[int]] = {}
            for member, granted_roles in self.grants.items():
                for granted in granted_roles:
                    members.setdefault(granted, []).append(member)
            self.__dict__["_members_index"] = members
        return self.__dict__["_members_index"]

    def app_holder(self, oid: int) -> tuple[Role, Path] | None:
        """The first application role that can act as `oid`, with its path; None when none can."""
        holders = self.reached_by(oid)
        app = next((a for a in self.app_roles if a.oid in holders), None)
        return (app, self.reach(app.oid)[oid]) if app else None

    def via(self, grantee: int, reach: dict[int, Path], who: str) -> str:
        """How `who` holds a grant made to `grantee`: directly, through PUBLIC or a membership path."""
        if grantee == PUBLIC:
            return f"{who} via PUBLIC"
        path = reach.get(grantee)
        if path is None or len(path.roles) == 1:
            return who
        return f"{who} via {self.describe(path)}"

    # -- settings ----------------------------------------------------------------
    def settings_for(self, role_oid: int) -> list[Setting]:
        """Settings that apply when `role_oid` logs in to this database (role-specific and database-wide)."""
        return [s for s in self.settings
                if s.role in (role_oid, 0) and s.database in (0, self.database_oid)]


def resolve_app_roles(principals: Principals, declared: tuple[str, ...], *, exclude: set[str]) -> None:
    """Fill `app_roles`: the declared ones, or every login role that is neither in `exclude`
    (umami and the admin) nor a platform role (`pg_*`, `rds*`).

    Who runs the audit does not matter: an auditor that is itself an application role is
    discovered like any other, so the same database gives the same verdict whoever audits it.
    """
    if declared:
        principals.app_roles = [r for name in declared if (r := principals.by_name(name))]
        principals.missing_app_roles = [name for name in declared if principals.by_name(name) is None]
        principals.app_roles_discovered = False
        return
    principals.app_roles = sorted(
        (r for r in principals.roles.values()
         if r.login and r.name not in exclude and not r.name.startswith(PLATFORM_ROLE_PREFIXES)),
        key=lambda r: r.name,
    )
    principals.app_roles_discovered = True
