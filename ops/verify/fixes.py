"""The exact SQL that repairs a finding, and who can run it.

Identifiers are always double-quoted with embedded quotes doubled (what PostgreSQL's
quote_ident does when quoting is needed), so a keyword, an upper-case letter or a `"`
in a name stays inside its identifier; PUBLIC is the one grantee written bare. A name
with a line break or another invisible character is written with Unicode escapes
(`U&"a\000Ab"`), so every statement is one line and no name can make a line of a
script look like a comment, a section header or a statement of its own.

Who runs a fix: umami itself for what it granted or set (`FixAs.ROLE`), otherwise the
admin (`FixAs.ADMIN`). A grant is revoked by its grantor: PostgreSQL 15 refuses
`REVOKE ... GRANTED BY` for any role but the current user, so the admin switches to the
grantor with `SET ROLE`, granting itself the grantor's membership for the statement
when it has none (CREATEROLE allows that for any role that is not a superuser). What
only a superuser can change carries no SQL, and the finding says who can.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from ops.verify.checks.base import Finding, FixAs, Severity
from ops.verify.checks.catalog import AclRow
from ops.verify.checks.principals import DATABASE_OWNER_ROLE, PUBLIC, Path, Principals

# -- quoting ---------------------------------------------------------------------------

def ident(name: str) -> str:
    """`name` as a quoted SQL identifier on one line."""
    if name.isprintable():
        return '"' + name.replace('"', '""') + '"'
    return 'U&"' + "".join(_unicode_escaped(c) for c in name) + '"'


def _unicode_escaped(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if char == '"':
        return '""'
    if char.isprintable():
        return char
    code = ord(char)
    return f"\\{code:04X}" if code <= 0xFFFF else f"\\+{code:06X}"


_QUOTED_NAME = re.compile(r'"((?:[^"]|"")*)"')


def one_line(sql_text: str) -> str:
    """SQL text PostgreSQL quoted itself (a regprocedure, pg_identify_object's identity) with every
    quoted name that holds an invisible character rewritten as `ident` writes it."""
    return _QUOTED_NAME.sub(lambda m: ident(m.group(1).replace('""', '"')), sql_text)


def qualified(*parts: str) -> str:
    return ".".join(ident(part) for part in parts)


def role(p: Principals, oid: int) -> str:
    """A role as a grantee or member: PUBLIC bare, every other name quoted."""
    return "PUBLIC" if oid == PUBLIC else ident(p.name(oid))


_NAME_TOKENS = re.compile(r'"(?:[^"]|"")*"|[.(]')  # a quoted name, a dot or the argument list's start


def function_name(schema: str, signature: str) -> str:
    """A function as REVOKE names it, from its `regprocedure` text (quoted by PostgreSQL already,
    schema-qualified only when the function is not on the audit's search_path)."""
    for token in _NAME_TOKENS.finditer(signature):
        if token.group() == ".":
            return one_line(signature)
        if token.group() == "(":
            break
    return f"{ident(schema)}.{one_line(signature)}"


# -- who runs it -----------------------------------------------------------------------

@dataclass(frozen=True)
class Repair:
    """Statements (each ending in `;`) and who runs them; `note` says who else must act when SQL cannot."""

    statements: tuple[str, ...] = ()
    fix_as: FixAs = FixAs.ADMIN
    note: str = ""


def admin_role(p: Principals) -> str:
    """The admin as a role specification: its name, or CURRENT_USER when the audit does not know it."""
    return ident(p.admin.name) if p.admin else "CURRENT_USER"


def superuser_only(why: str) -> Repair:
    """No SQL the admin or umami could run; the note says why."""
    return Repair(note=f"only a superuser can fix it: {why}")


def as_member_of(p: Principals, oid: int, statements: Iterable[str]) -> Repair:
    """The admin runs `statements` with the privileges of role `oid` (as its owner would), joining it
    for the statements when it is not a member yet."""
    statements = tuple(statements)
    if p.admin and (p.admin.oid == oid or oid in p.reach(p.admin.oid)):
        return Repair(statements)
    member_of = p.roles.get(oid)
    if member_of is None or member_of.superuser:
        return superuser_only(f"it needs the privileges of {p.name(oid)}, a superuser")
    target = ident(member_of.name)
    return Repair((f"GRANT {target} TO {admin_role(p)};", *statements, f"REVOKE {target} FROM {admin_role(p)};"))


def as_role(p: Principals, oid: int, statements: Iterable[str]) -> Repair:
    """`statements` run as role `oid` itself (a grant's grantor, whose grants only it can revoke)."""
    statements = tuple(statements)
    if oid == p.umami.oid:
        return Repair(statements, FixAs.ROLE)
    if p.admin and oid == p.admin.oid:
        return Repair(statements)
    target = p.roles.get(oid)
    if target is None or target.superuser:
        return superuser_only(f"granted by {p.name(oid)}, a superuser")
    body = (f"SET ROLE {ident(target.name)};", *statements, "RESET ROLE;")
    if p.admin is None or oid in p.reach(p.admin.oid):
        return Repair(body)  # an unknown admin is not given memberships it might already hold
    return as_member_of(p, oid, body)


def combined(p: Principals, repairs: Iterable[Repair]) -> Repair:
    """One finding's repairs as one: the admin runs umami's part as umami when the two are mixed."""
    repairs = list(repairs)
    notes = "; ".join(dict.fromkeys(r.note for r in repairs if r.note))
    parts = [r for r in repairs if r.statements]
    if parts and all(r.fix_as == FixAs.ROLE for r in parts):
        return Repair(tuple(s for r in parts for s in r.statements), FixAs.ROLE, notes)
    statements: list[str] = []
    for r in parts:
        if r.fix_as == FixAs.ROLE:
            r = as_member_of(p, p.umami.oid, (f"SET ROLE {ident(p.umami.name)};", *r.statements, "RESET ROLE;"))
        statements += r.statements
    return Repair(tuple(statements), FixAs.ADMIN, notes)


def alter_umami(p: Principals, clause: str, *, needs_superuser: bool = False) -> Repair:
    """`ALTER ROLE umami <clause>`: the admin's CREATEROLE suffices unless umami is a superuser (then
    umami itself can), has REPLICATION, or the clause changes a superuser-only attribute."""
    statement = f"ALTER ROLE {ident(p.umami.name)} {clause};"
    if p.umami.superuser:
        return Repair((statement,), FixAs.ROLE)
    if needs_superuser:
        return superuser_only(f"{statement} changes a superuser-only attribute")
    if p.umami.replication:
        return superuser_only(f"{statement} alters a role with REPLICATION")
    return Repair((statement,))


# -- memberships -----------------------------------------------------------------------

def revoke_membership(p: Principals, granted: int, member: int) -> Repair:
    """REVOKE granted FROM member: CREATEROLE manages every membership but a superuser role's."""
    statement = f"REVOKE {role(p, granted)} FROM {role(p, member)};"
    if p.name(granted) == DATABASE_OWNER_ROLE:
        return Repair(note=f"{p.name(member)} is in {DATABASE_OWNER_ROLE} by owning the database: change its owner")
    target = p.roles.get(granted)
    if target is not None and target.superuser:
        if granted == p.umami.oid:
            return Repair((statement,), FixAs.ROLE)  # umami, a superuser, can let go of its members itself
        return superuser_only(f"{target.name} is a superuser role")
    return Repair((statement,))


def leave_path(p: Principals, path: Path) -> Repair:
    """Cut umami's membership path at its first step (the membership umami holds directly)."""
    return revoke_membership(p, path.roles[1], path.roles[0])


def for_holder(p: Principals, grantee: int, direct: Repair) -> Repair:
    """A grant to umami or PUBLIC is revoked (`direct`); one umami holds through a membership is
    left by cutting that membership, never by revoking what the other role holds."""
    if grantee in (PUBLIC, p.umami.oid):
        return direct
    return leave_path(p, p.umami_reach[grantee])


# -- privileges ------------------------------------------------------------------------

def on_object(row: AclRow) -> str:
    """The `ON ...` part of GRANT/REVOKE for the object of an ACL row."""
    if row.kind == "relation":
        return f"{'SEQUENCE' if row.detail == 'S' else 'TABLE'} {qualified(row.schema, row.name)}"
    if row.kind == "column":
        return f"TABLE {qualified(row.schema, row.name)}"
    if row.kind == "function":
        return f"FUNCTION {function_name(row.schema, row.name)}"
    if row.kind == "large object":
        return f"LARGE OBJECT {int(row.oid)}"
    keyword = {"schema": "SCHEMA", "database": "DATABASE", "foreign-data wrapper": "FOREIGN DATA WRAPPER",
               "foreign server": "FOREIGN SERVER"}[row.kind]
    return f"{keyword} {ident(row.name)}"


def _privileges(rows: list[AclRow]) -> str:
    privileges = dict.fromkeys(f"{r.privilege} ({ident(r.detail)})" if r.kind == "column" else r.privilege
                               for r in sorted(rows, key=lambda r: r.privilege))
    return ", ".join(privileges)


def revoke(p: Principals, rows: list[AclRow], *, grant_option: bool = False) -> Repair:
    """REVOKE the privileges of `rows` (one object, one grantee) as each row's grantor."""
    by_grantor: dict[int, list[AclRow]] = {}
    for row in rows:
        by_grantor.setdefault(row.grantor, []).append(row)
    what = "GRANT OPTION FOR " if grant_option else ""
    cascade = " CASCADE" if grant_option else ""  # onward grants made with the option go with it
    return combined(p, (
        as_role(p, grantor, (f"REVOKE {what}{_privileges(group)} ON {on_object(group[0])} "
                             f"FROM {role(p, group[0].grantee)}{cascade};",))
        for grantor, group in sorted(by_grantor.items())))


def revoke_for_umami(p: Principals, rows: list[AclRow]) -> Repair:
    """What umami holds through `rows` (one object, one grantee) taken away."""
    return for_holder(p, rows[0].grantee, revoke(p, rows))


# -- findings --------------------------------------------------------------------------

def finding(severity: Severity, subject: str, evidence: str, repair: Repair) -> Finding:
    """A finding with its repair; informational findings need none. When no SQL can be run by the
    admin or umami, the evidence says who can."""
    if severity == Severity.INFO:
        return Finding(severity, subject, evidence)
    if repair.note:
        evidence = f"{evidence} ({repair.note})"
    return Finding(severity, subject, evidence, repair.statements, repair.fix_as)


# -- a fix script ----------------------------------------------------------------------

# Run order inside a section: revokes first (they name today's grantors and owners), then
# ownership, then the role's attributes, and umami's own NOSUPERUSER last of all.
RUN_ORDER = {"ISO-040": 1, "ISO-041": 1, "ISO-002": 2, "ISO-003": 2, "ISO-004": 2, "ISO-005": 2, "ISO-007": 2,
             "ISO-001": 3}


@dataclass(frozen=True)
class Step:
    """One finding's fix in a script: what it repairs and the statements, run together."""

    check_id: str
    subject: str
    statements: tuple[str, ...]


def script_steps(entries: Iterable[tuple[str, Finding]], fix_as: FixAs) -> list[Step]:
    """The steps `fix_as` runs, in a safe order, a fix repeated by several findings kept once."""
    seen: set[tuple[str, ...]] = set()
    steps = []
    for check_id, f in sorted(entries, key=lambda e: RUN_ORDER.get(e[0], 0)):
        if f.fix and f.fix_as == fix_as and f.fix not in seen:
            seen.add(f.fix)
            steps.append(Step(check_id, f.subject, f.fix))
    return steps
