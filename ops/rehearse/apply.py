"""Applying a plan step by step as `pulumi up` would, with refresh, the never-adopt guard, the
preflight and the destroy guards; state is written after each step."""

from __future__ import annotations

import json
from typing import Any, Callable

import psycopg

from facts import CONFIG_NAMESPACE as NAMESPACE
from ops.core.db import one_line
from ops.core.errors import OpsError
from ops.engine.program import Resource
from ops.engine.provider_sql import (DELETE_BEFORE_REPLACE, EXTENSION, GRANT, ROLE, SCHEMA, ApplyError, Change,
                                     Provider, normalized)
from ops.rehearse.plan import PlanItem, _show, is_postgresql
from ops.rehearse.state import Entry, State
from ops.verify.checks.destroy import dependents_outside, owned_outside

# Failures that mean "could not run" (exit 2): a lock or statement timeout, a cancel, a read-only
# or full database, too many connections.
PAST = {"create": "created", "update": "updated", "replace": "replaced"}
COULD_NOT_RUN_STATES = {"55P03", "57014", "25006", "53100", "53300", "57P01"}



# -- the engine -------------------------------------------------------------------------

class Interrupted(Exception):
    """SIGINT/SIGTERM: the current step was rolled back."""


class Engine:
    """Applies a plan step by step, writing state after each, as `pulumi up` would."""

    def __init__(self, provider: Provider, state: State):
        self.provider = provider
        self.state = state
        self.changes: list[Change] = []
        self.done: list[str] = []  # what committed, for messages
        self.current: str | None = None
        # Each role's schema (from its schema Grant), remembered when a destroy deletes the Grant before the role.
        self.role_schemas: dict[str, str] = {}

    # ---- refresh ----
    def refresh(self) -> list[Change]:
        """`--refresh`: the provider's Read of everything in state; drift shown and kept in state."""
        drift = []
        for urn in list(self.state.order):
            entry = self.state.resources.get(urn)
            if entry is None or not is_postgresql(entry["type"]):
                continue
            try:
                now = self.provider.read(entry["type"], entry["outputs"])
            except (ApplyError, psycopg.Error) as exc:
                raise OpsError(f"refresh of {Entry(urn, entry).type.split(':')[-1]} {entry['name']} failed: "
                               f"{exc if isinstance(exc, ApplyError) else one_line(exc)}") from None
            label = Entry(urn, entry)
            if now is None:
                drift.append(Change(label, "deleted", "gone from the catalog: removed from state"))
                self.state.forget(urn)
                continue
            changed = [k for k in sorted(set(now) | set(entry["outputs"]))
                       if normalized(k, now.get(k)) != normalized(k, entry["outputs"].get(k))]
            if changed:
                drift.append(Change(label, "drifted", "; ".join(
                    f"{k}: {_show(k, entry['outputs'].get(k))} -> {_show(k, now.get(k))}" for k in changed)))
                entry["outputs"] = now
                self.state.record(urn, entry)
        return drift

    # ---- guards ----
    def never_adopt(self, plan: list[PlanItem], config: dict[str, Any], declared_by: dict[str, str]) -> None:
        """Refuse (before any change) a role or schema that exists and is not this stack's, or a role that
        is the admin or an application role; `declared_by` names the config key=value behind each name."""
        conn = self.provider.conn()
        current, session = conn.execute("SELECT current_user, session_user").fetchone()
        admins = {self.provider.connection.username, current, session}
        app_roles = config.get(f"{NAMESPACE}:applicationRoles") or []
        if isinstance(app_roles, str):
            try:
                app_roles = json.loads(app_roles)
            except json.JSONDecodeError:
                app_roles = [app_roles]
        problems: list[tuple[str, str]] = []  # (the config key=value behind it, the refusal)
        for item in plan:
            if item.resource is None or item.action not in ("create", "update", "replace"):
                continue
            name = item.resource.inputs.get("name")
            old_name = item.old["outputs"].get("name") if item.old else None
            key = declared_by.get(name, f"{item.type.split(':')[-1].lower()} {name}")
            if item.type == ROLE:
                if name in admins:
                    problems.append((key, f"{key} is the admin login the provider connects as; the stack's "
                                          "roles must be new, dedicated roles"))
                elif name in app_roles:
                    problems.append((key, f"{key} is an application role ({NAMESPACE}:applicationRoles); the "
                                          "stack's roles must be new, dedicated roles"))
                elif name != old_name and conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                                       (name,)).fetchone():
                    problems.append((key, f"{key}: role {name} already exists and is not in this stack's state: "
                                          "the rehearsal never adopts it (a real `up` would fail on CREATE ROLE); to "
                                          f"adopt it deliberately: pulumi import {ROLE} {item.resource.name} {name}"))
            elif item.type == SCHEMA:
                database = item.resource.inputs.get("database") or self.provider.connection.database
                if name != old_name and self.provider.conn(database).execute(
                        "SELECT 1 FROM pg_namespace WHERE nspname = %s", (name,)).fetchone():
                    problems.append((key, f"{key}: schema {name} already exists in database {database} and is "
                                          "not in this stack's state: the rehearsal never adopts it; to adopt it "
                                          f"deliberately: pulumi import {SCHEMA} {item.resource.name} "
                                          f"{database}.{name}"))
        if problems:  # the first in full, the others by the key that declares them: still one line
            others = ", ".join(key for key, _ in problems[1:])
            raise OpsError(problems[0][1] + (f" (also refused: {others})" if others else ""))

    def preflight(self, plan: list[PlanItem]) -> None:
        """Before the first change: a writable database, CREATEROLE, a way to create the schema."""
        changing = [i for i in plan if i.action != "same"]
        if not changing:
            return
        conn = self.provider.conn()
        user, su, createrole, read_only, recovery = conn.execute(
            "SELECT current_user, rolsuper, rolcreaterole, current_setting('default_transaction_read_only'), "
            "pg_is_in_recovery() FROM pg_roles WHERE rolname = current_user").fetchone()
        where = f"{self.provider.connection.host}:{self.provider.connection.port}/{self.provider.connection.database}"
        if recovery:
            raise OpsError(f"{where} is a read-only standby (pg_is_in_recovery); point --dsn at the writer")
        if read_only == "on":
            raise OpsError(f"{where} has default_transaction_read_only=on for {user}; nothing can be applied")
        roles = [i for i in changing if i.type == ROLE]
        if roles and not (su or createrole):
            raise OpsError(f"the admin {user} lacks CREATEROLE: it cannot {roles[0].action} {roles[0].label}; "
                           "use Aurora's master user (CREATEROLE, rds_superuser)")
        for item in changing:
            if item.type == SCHEMA and item.action == "create":
                database = item.resource.inputs.get("database") or self.provider.connection.database
                owner, owner_su, can_create, member = self.provider.conn(database).execute(
                    "SELECT r.rolname, r.rolsuper, has_database_privilege(current_database(), 'CREATE'), "
                    "pg_has_role(current_user, r.oid, 'MEMBER') FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba "
                    "WHERE d.datname = current_database()").fetchone()
                # The provider grants itself the owner's role (withRolesGranted) unless superuser, owner,
                # member already, or the owner is a superuser (then it needs CREATE on the database).
                ok = su or owner == user or (member and can_create) or (not owner_su and (createrole or member)) \
                    or (owner_su and can_create)
                if not ok:
                    raise OpsError(f"the admin {user} cannot create schema {item.resource.inputs['name']} in "
                                   f"{database}: it is not the owner ({owner}), cannot grant itself {owner}'s role "
                                   "(no CREATEROLE) and has no CREATE on the database")
            if item.type == EXTENSION and item.action == "create" and not su:
                database = item.resource.inputs.get("database") or self.provider.connection.database
                exists, can_create = self.provider.conn(database).execute(
                    "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = %s), "
                    "has_database_privilege(current_database(), 'CREATE')", (item.resource.inputs["name"],)).fetchone()
                if not exists and not can_create:
                    raise OpsError(f"the admin {user} cannot create extension {item.resource.inputs['name']} in "
                                   f"{database}: no CREATE on the database (a real `up` fails there with permission "
                                   "denied); GRANT CREATE ON DATABASE to it, or install the extension first")

    # ---- apply ----
    def apply(self, plan: list[PlanItem]) -> bool:
        """Run the plan; False when a step failed (the rest is skipped, as `pulumi up` stops)."""
        deferred: list[PlanItem] = []
        failed = False
        for item in plan:
            if failed:
                if item.resource is not None or item.action == "delete":
                    self.changes.append(Change(item.resource or Entry(item.urn, item.old), "skip",
                                               "not attempted: an earlier step failed"))
                continue
            if item.action == "delete":
                deferred.append(item)
                continue
            failed = not self._apply_one(item, deferred)
        if not failed:
            for pending in list(self.state.pending_deletes):
                deferred.insert(0, PlanItem("delete", pending["urn"], None, pending))
            for item in deferred:
                if failed:
                    self.changes.append(Change(Entry(item.urn, item.old), "skip", "not attempted: an earlier step failed"))
                    continue
                failed = not self._delete_one(item)
        return not failed

    def _entry(self, resource: Resource, outputs: dict[str, Any]) -> dict[str, Any]:
        return {"type": resource.type, "name": resource.name, "inputs": resource.inputs, "outputs": outputs,
                "dependencies": resource.dependencies, "protect": resource.protect,
                "retainOnDelete": resource.retain_on_delete, "urn": resource.urn}

    def _apply_one(self, item: PlanItem, deferred: list[PlanItem]) -> bool:
        resource = item.resource
        if item.action == "same":
            self.changes.append(Change(resource, "same"))
            entry = dict(item.old)
            entry.update(self._entry(resource, item.old["outputs"]))
            self.state.record(item.urn, entry)
            return True
        change = Change(resource, item.action, item.diff_text())
        self.changes.append(change)
        return self._step(item.label, change, lambda: self._apply_change(item, change))

    def _apply_change(self, item: PlanItem, change: Change) -> bool:
        resource = item.resource
        if item.action == "create":
            outputs = self.provider.create(resource.type, resource.inputs, change)
        elif item.action == "update":
            outputs = self.provider.update(resource.type, item.old["outputs"], resource.inputs, change)
        else:  # replace
            if resource.type in DELETE_BEFORE_REPLACE or resource.delete_before_replace:
                change.detail = (change.detail + "; " if change.detail else "") + "delete-before-replace"
                self.provider.delete(resource.type, item.old["outputs"], change)
                self.state.forget(item.urn)
                self.done.append(f"deleted old {item.label}")
            else:
                change.detail = (change.detail + "; " if change.detail else "") + "create-before-delete"
                self.state.pending_deletes.append({**item.old, "urn": item.urn})
                self.state.save()
            outputs = self.provider.create(resource.type, resource.inputs, change)
        self.state.record(item.urn, self._entry(resource, outputs))
        self.done.append(f"{PAST[item.action]} {item.label}")
        return True

    def _step(self, label: str, change: Change, work: Callable[[], bool]) -> bool:
        """Run one step as the current one: an interrupt stops the run, an ApplyError fails `change`."""
        try:
            self.current = label
            return work()
        except KeyboardInterrupt:
            raise Interrupted(self._interrupted_line()) from None
        except ApplyError as exc:
            return self._failed(change, exc)
        finally:
            self.current = None

    def _failed(self, change: Change, exc: ApplyError) -> bool:
        change.action, change.detail = "failed", str(exc)
        if exc.sqlstate in COULD_NOT_RUN_STATES:
            raise OpsError(f"{change.label}: {exc}; rolled back; {self.committed_text()}") from None
        return False

    def committed_text(self) -> str:
        return "committed before it: " + (", ".join(self.done) if self.done else "nothing")

    def _interrupted_line(self) -> str:
        return f"interrupted during {self.current or 'the run'}: that step was rolled back; {self.committed_text()}"

    def _delete_one(self, item: PlanItem) -> bool:
        entry = Entry(item.urn, item.old)
        change = Change(entry, "delete")
        self.changes.append(change)
        return self._step(entry_label(entry), change, lambda: self.delete_entry(entry, change))

    def delete_entry(self, entry: Entry, change: Change) -> bool:
        """Delete one resource of the state, with the rehearsal's guards; True when done (or kept)."""
        outputs = entry.outputs
        pending = entry.data in self.state.pending_deletes
        if entry.data.get("retainOnDelete"):
            change.action = "retain"
            where = f" in schema {outputs.get('schema')}" if entry.type == EXTENSION else ""
            change.detail = f"retainOnDelete: {entry.type.split(':')[-1].lower()} {outputs.get('name')}{where} stays"
            self._forget(entry, pending)
            return True
        if entry.type == SCHEMA:
            self._guard_schema(entry, change)
        if entry.type == ROLE:
            self._guard_role(entry)
        self.provider.delete(entry.type, outputs, change)
        self._forget(entry, pending)
        self.done.append(f"deleted {entry_label(entry)}")
        return True

    def _forget(self, entry: Entry, pending: bool) -> None:
        if entry.type == GRANT:  # its role's schema, for the role's delete guard once both are gone
            self.role_schemas[entry.outputs.get("role")] = entry.outputs.get("schema")
        if pending:
            self.state.pending_deletes.remove(entry.data)
            self.state.save()
        else:
            self.state.forget(entry.urn)

    def _guard_schema(self, entry: Entry, change: Change) -> None:
        """Refuse a cascade that would reach outside the schema (ops.verify.checks.destroy.dependents_outside)."""
        outputs = entry.outputs
        if not outputs.get("dropCascade"):
            return  # RESTRICT: PostgreSQL itself refuses a schema that is not empty
        conn = self.provider.conn(outputs.get("database"))
        outside = dependents_outside(conn, outputs["name"])
        if outside:
            raise OpsError(f"refused: DROP SCHEMA {outputs['name']} CASCADE would also drop, outside the schema: "
                           + "; ".join(outside) + f"; {self.committed_text()}")
        extensions = [e for (e,) in conn.execute(
            "SELECT extname FROM pg_extension WHERE extnamespace = %s::regnamespace ORDER BY 1",
            (outputs["name"],)).fetchall()] if conn.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", (outputs["name"],)).fetchone() else []
        if extensions:
            change.detail = f"CASCADE also drops extension(s) {', '.join(extensions)} (in the schema)"

    def _guard_role(self, entry: Entry) -> None:
        """REASSIGN OWNED / DROP OWNED would take whatever the role owns or holds outside the schema."""
        role = entry.outputs["name"]
        schema = next((e["outputs"]["schema"] for e in self.state.resources.values()
                       if e["type"] == GRANT and e["outputs"].get("role") == role),
                      self.role_schemas.get(role) or (entry.outputs.get("searchPaths") or [""])[0])
        conn = self.provider.conn()
        outside = owned_outside(conn, role, schema or "")
        if outside:
            raise OpsError(f"refused: deleting role {entry.outputs['name']} (REASSIGN OWNED, DROP OWNED) would "
                           "reach outside the schema: " + "; ".join(outside) + f"; {self.committed_text()}")


def entry_label(entry: Entry) -> str:
    return f"{entry.type.split(':')[-1]} {entry.name}"


