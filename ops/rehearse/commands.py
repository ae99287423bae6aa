"""The rehearsal's two commands as functions (rehearse, destroy) and the files they write."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from facts import CONFIG_NAMESPACE as NAMESPACE
from facts import tenant_role, tenant_schema
from ops.core.db import connect, one_line
from ops.core.errors import OpsError
from ops.core.outputs import StackOutputs, parse_outputs
from ops.core.private_file import write_private
from ops.engine.program import ProgramRun, stack_file
from ops.engine.provider_sql import SCHEMA, ApplyError, Change, Provider, Timeouts
from ops.engine.umami_env import write_umami_env
from ops.rehearse.apply import COULD_NOT_RUN_STATES, Engine, Interrupted, entry_label
from ops.rehearse.database import Database, dsn_database, local_database
from ops.rehearse.plan import PlanItem, is_postgresql, make_plan
from ops.rehearse.stack import RehearsalHandler, role_password, run_stack, stored_logins
from ops.rehearse.state import Entry, State, StateLock, state_dir_for
from ops.tenants import registry as tenant_registry


# -- results ----------------------------------------------------------------------

def pgpass_line(host: str, port: int, dbname: str, user: str, password: str) -> str:
    def esc(value: str) -> str:
        return value.replace("\\", "\\\\").replace(":", "\\:")
    return ":".join(esc(str(v)) for v in (host, port, dbname, user, password))


def write_results(run: ProgramRun, db: Database, base: Path, outputs_path: Path) -> dict[str, Any]:
    outputs = run.outputs_json()
    outputs["rehearsal"] = True
    outputs["rehearsalPassfile"] = str(base / "pgpass")
    write_private(outputs_path, json.dumps(outputs, indent=2, sort_keys=True) + "\n")
    manifest = [{"urn": r.urn, "type": r.type, "name": r.name, "parent": r.parent, "protect": r.protect,
                 "retainOnDelete": r.retain_on_delete, "inputs": r.masked_inputs()} for r in run.resources]
    write_private(base / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    role = run.outputs["dbRole"]
    lines = [pgpass_line(db.admin.host, db.admin.port, db.admin.dbname, role, role_password(run))]
    # Each tenant's login too, so ops (and a DBA) can log in as a tenant role without a password at hand.
    lines += [pgpass_line(db.admin.host, db.admin.port, db.admin.dbname, tenant, password)
              for tenant, password in sorted(stored_logins(run).items()) if tenant != role]
    if db.admin.password:
        lines.append(pgpass_line(db.admin.host, db.admin.port, "*", db.admin.user, db.admin.password))
    write_private(base / "pgpass", "\n".join(lines) + "\n")
    return outputs


def print_changes(changes: list[Change]) -> None:
    for change in changes:
        detail = f"  ({change.detail})" if change.detail else ""
        print(f"  {change.action:<7} {change.label}{detail}")
        for statement in change.statements:
            print(f"            {statement}")


def print_registry(result: "Rehearsal") -> None:
    """The tenant registry's statements and what it lists, when the stack configures one."""
    if result.registry is not None:
        print(f"tenant registry {result.registry.registry.name} (ops.tenants registry, as the admin):")
        for line in result.registry.lines():
            print(line)


def print_manifest(run: ProgramRun) -> None:
    others = [r for r in run.resources if not is_postgresql(r.type)]
    print(f"recorded {len(others)} other resources (not deployed offline):")
    for resource in others:
        print(f"  {resource.type}  {resource.name}")


# -- commands ---------------------------------------------------------------------

@dataclass
class Rehearsal:
    """The result of one rehearsal, for callers (tests, verify)."""

    run: ProgramRun
    changes: list[Change]
    outputs: dict[str, Any]
    outputs_path: Path
    base: Path
    db: Database
    ok: bool
    plan: list[PlanItem] = field(default_factory=list)
    drift: list[Change] = field(default_factory=list)
    preview: bool = False
    committed: list[str] = field(default_factory=list)
    registry: tenant_registry.Outcome | None = None  # the tenant registry, when the stack configures one

    @property
    def role_password(self) -> str:
        return role_password(self.run)


def check_writable(path: Path, option: str) -> None:
    """Refuse an output file that cannot be written, before anything is applied (missing folders
    are created when writing: the nearest existing one must be a writable folder)."""
    path = Path(path).expanduser()
    if path.exists() and (path.is_dir() or not os.access(path, os.W_OK)):
        raise OpsError(f"{option} {path}: not a writable file")
    folder = path.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise OpsError(f"{option} {path}: {folder} is not a writable folder")


def _prepare(stack: str, dsn: str | None, state_root: Path | None) -> tuple[Path, Database | None]:
    stack_file(stack)  # a bad or missing stack: one line, before any cluster starts
    db = dsn_database(dsn) if dsn else None
    base = (state_root / stack) if state_root else state_dir_for(stack, dsn)
    return base, db


def _provider(run: ProgramRun, handler: RehearsalHandler, timeouts: Timeouts) -> Provider:
    used = {r.provider for r in run.resources if is_postgresql(r.type) and r.custom}
    if any(p not in handler.providers for p in used):
        raise OpsError("a postgresql resource has no explicit postgresql provider (the program must pass one)")
    if len(used) > 1:
        raise OpsError("the rehearsal handles one postgresql provider per program")
    connection = handler.providers[used.pop()] if used else next(iter(handler.providers.values()))
    return Provider(connection, timeouts)


def rehearse(stack: str, *, dsn: str | None = None, outputs_path: Path | None = None,
             overrides: dict[str, str] | None = None, state_root: Path | None = None,
             refresh: bool = False, preview: bool = False, timeouts: Timeouts = Timeouts(),
             umami_env: Path | None = None) -> Rehearsal:
    base, db = _prepare(stack, dsn, state_root)
    for path, option in ((outputs_path, "--write-outputs"), (umami_env, "--umami-env")):
        if path is not None:
            check_writable(path, option)
    with StateLock(base, stack):
        state = State.load(base / "state.json")
        db = db or local_database(state, base)
        connect(db.admin, read_only=False, statement_timeout_ms=timeouts.statement_ms,
                lock_timeout_ms=timeouts.lock_ms).close()  # unreachable or refused: one line, nothing applied
        run, handler, config = run_stack(stack, db, state, overrides or {})
        declared = parse_outputs(run.outputs_json(), "the program's outputs")
        registry = tenant_registry.Registry.of(declared)
        provider = _provider(run, handler, timeouts)
        engine = Engine(provider, state)
        kept = None
        try:
            drift = engine.refresh() if refresh else []
            plan = make_plan(run.resources, state)
            engine.never_adopt(plan, config, declared_by(declared))
            if registry is not None:
                tenant_registry.check(provider.conn(), registry)
            if preview:
                if registry is not None:
                    kept = tenant_registry.sync(provider.conn(), registry, declared.database.tenants, apply=False)
                return Rehearsal(run, [], {}, outputs_path or base / "outputs.json", base, db, True,
                                 plan=plan, drift=drift, preview=True, registry=kept)
            engine.preflight(plan)
            ok = engine.apply(plan)
            if ok and registry is not None:
                kept = _keep_registry(provider, registry, declared.database.tenants, engine)
        except psycopg.OperationalError as exc:
            raise OpsError(f"{one_line(exc)}; {engine.committed_text()}") from None
        finally:
            provider.close()
            state.save()
        target = outputs_path or base / "outputs.json"
        outputs = write_results(run, db, base, target)
        if ok and umami_env is not None:
            write_umami_env(run, umami_env)
        return Rehearsal(run, engine.changes, outputs, target, base, db, ok, plan=plan, drift=drift,
                         committed=engine.done, registry=kept)


def declared_by(outputs: StackOutputs) -> dict[str, str]:
    """Each role and schema name the program declares -> the config `key=value` that declares it, for the
    refusals that must name it."""
    names = {outputs.database.role: f"{NAMESPACE}:roleName={outputs.database.role}",
             outputs.database.schema: f"{NAMESPACE}:schemaName={outputs.database.schema}"}
    for tenant in outputs.database.tenants:
        names[tenant_role(tenant)] = f"{NAMESPACE}:tenants={tenant} ({tenant_role(tenant)})"
        names[tenant_schema(tenant)] = f"{NAMESPACE}:tenants={tenant} ({tenant_schema(tenant)})"
    return names


def _keep_registry(provider: Provider, registry: tenant_registry.Registry, tenants: tuple[str, ...],
                   engine: Engine) -> tenant_registry.Outcome:
    """The tenant registry, once the program's resources are in place (as `ops.tenants registry --apply`)."""
    try:
        return tenant_registry.sync(provider.conn(), registry, tenants, apply=True)
    except OpsError as exc:
        raise OpsError(f"{exc}; {engine.committed_text()}") from None


@dataclass
class Destroyed:
    changes: list[Change]
    ok: bool
    kept: list[str]
    done: list[str]

    def __iter__(self):  # (changes, ok) = destroy(...)
        return iter((self.changes, self.ok))


def destroy(stack: str, *, dsn: str | None = None, overrides: dict[str, str] | None = None,
            state_root: Path | None = None, timeouts: Timeouts = Timeouts(), preview: bool = False) -> Destroyed:
    base, db = _prepare(stack, dsn, state_root)
    with StateLock(base, stack):
        state = State.load(base / "state.json")
        db = db or local_database(state, base)
        connect(db.admin, read_only=False, statement_timeout_ms=timeouts.statement_ms,
                lock_timeout_ms=timeouts.lock_ms).close()
        run, handler, _ = run_stack(stack, db, state, overrides or {})
        protected = [r for r in run.resources if is_postgresql(r.type) and r.protect and r.urn in state.resources]
        if protected:
            raise OpsError(f"{protected[0].name} is protected ({NAMESPACE}:protectStatefulResources=true); "
                           f"destroy with --set {NAMESPACE}:protectStatefulResources=false")
        provider = _provider(run, handler, timeouts)
        engine = Engine(provider, state)
        kept: list[str] = []
        failed_urns: set[str] = set()
        try:
            items = [Entry(p["urn"], p) for p in state.pending_deletes]
            items += [Entry(urn, state.resources[urn]) for urn in reversed(state.order) if urn in state.resources
                      and is_postgresql(state.resources[urn]["type"])]
            if preview:
                return Destroyed([Change(e, "delete") for e in items], True, [], [])
            if items:
                engine.preflight([PlanItem("delete", e.urn, None, e.data) for e in items])
            for entry in items:
                dependents = [u for u, e in state.resources.items() if entry.urn in e.get("dependencies", [])]
                if dependents:
                    engine.changes.append(Change(entry, "skip", "a resource that depends on it is still there"))
                    failed_urns.add(entry.urn)
                    continue
                change = Change(entry, "delete")
                engine.changes.append(change)
                engine.current = entry_label(entry)
                try:
                    engine.delete_entry(entry, change)
                except KeyboardInterrupt:
                    raise Interrupted(engine._interrupted_line().replace("committed before it", "already done")
                                      + "; rerun the destroy to complete it") from None
                except OpsError as exc:
                    raise OpsError(f"destroy stopped at {entry_label(entry)}: {exc}".replace(
                        "committed before it", "already done") + "; rerun the destroy to complete it") from None
                except ApplyError as exc:
                    change.action, change.detail = "failed", str(exc)
                    if exc.sqlstate in COULD_NOT_RUN_STATES:
                        raise OpsError(f"destroy stopped at {entry_label(entry)}: {exc}; rolled back; already done: "
                                       + (", ".join(engine.done) or "nothing") + "; rerun the destroy to complete it"
                                       ) from None
                    if exc.sqlstate == "2BP01" and entry.type == SCHEMA:
                        change.detail += (": the schema still holds Umami's tables; umami:dropSchemaCascade=true "
                                          "drops them with it")
                    failed_urns.add(entry.urn)
                finally:
                    engine.current = None
                if change.action == "retain":
                    kept.append(f"{entry_label(entry)} ({change.detail})")
        except psycopg.OperationalError as exc:
            raise OpsError(f"{one_line(exc)}; already done: {', '.join(engine.done) or 'nothing'}") from None
        finally:
            provider.close()
            state.save()
        return Destroyed(engine.changes, not failed_urns, kept, engine.done)


