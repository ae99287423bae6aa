"""Offline rehearsal: the unchanged Pulumi program against a real PostgreSQL, no cloud.

    python -m ops.rehearse --stack dev [--dsn URL] [--refresh] [--preview] [--destroy]
                           [--write-outputs FILE] [--set KEY=VALUE] [--umami-env FILE]
                           [--lock-timeout MS] [--statement-timeout MS]
    python -m ops.rehearse --stack dev --stop       # stop the throwaway cluster

It behaves as `pulumi up` with the postgresql provider does (ops.provider_sql has the
provider's statements, cited):

- The program runs under Pulumi's mocks; its `postgresql:*` resources are diffed against
  the rehearsal's state (`state.json`: each applied resource's inputs and outputs, i.e. what
  the provider's Read returned), never against the live catalog: drift is invisible unless
  `--refresh`, which first reads every resource in state (the provider's Read) and shows
  what drifted, as `pulumi up --refresh` does. Plan actions: create, update (in place; a role
  or schema `name` change is `ALTER ... RENAME`), replace (a ForceNew input changed: a Grant
  delete-first, everything else create-first with the old one deleted at the end), delete
  (in state, no longer declared), same. `--preview` prints the plan and changes nothing.
- Never adopt: a role or schema that exists but is not in state stops the run before any
  change, naming the `pulumi import` command that would adopt it deliberately; the role can
  never be the admin the provider logs in as (compared with the login actually used at run
  time) or one of `umami:applicationRoles`.
- Before the first change a preflight checks the admin (CREATEROLE for role changes; a way
  to create the schema: superuser, owner of the database, member of its owner, able to
  grant itself the owner's role as the provider does, or CREATE on the database), that the
  database is writable, and the output paths. Every connection has lock_timeout and
  statement_timeout; each resource is one transaction; state is written after each step.
  A lock file keeps two runs off the same state. Could not run (bad input, refusal, lock or
  statement timeout) is exit 2 and one line; a failed step is exit 1 with what committed
  before it; SIGINT/SIGTERM roll the current step back and exit 130 with one line.
- Destroy deletes what state holds in reverse order, as `pulumi destroy --run-program`
  (the program supplies the current admin login, so a rotated admin password works). A
  retained resource is only forgotten: pgcrypto always, and the schema unless
  umami:dropSchemaCascade is set (the program marks it retainOnDelete, so `pulumi destroy`
  keeps it too); the destroy then ends with exit 0 and a `kept:` line naming each object
  left in place. With dropCascade a cascade is refused
  while objects outside the schema depend on it (ops.checks.destroy.dependents_outside);
  a role delete is refused while the role owns or holds anything outside the schema
  (owned_outside), since REASSIGN/DROP OWNED would take it. A destroy that stops midway
  says what it already did; rerunning it completes it.

Files under .rehearsal/<stack>/ (0600 where they hold secrets): state.json, outputs.json
(like `pulumi stack output --json`), manifest.json (resources, secrets masked), pgpass
(libpq passfile for the umami role and the admin), lock. The admin password is never
stored for --dsn (the program gets the current one each run). With --umami-env FILE,
Umami's environment as a dotenv file (ops.umami_env).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import logging
import os
import secrets
import signal
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from facts import CONFIG_NAMESPACE as NAMESPACE
from facts import DEFAULT_REGION, SECRET_MASK
from facts import RANDOM_PASSWORD as PASSWORD_RESOURCE
from ops import pgcluster
from ops.checks.destroy import dependents_outside, owned_outside
from ops import cli
from ops.cli import progress
from ops.db import Target, connect, one_line, redact, target_from_dsn
from ops.errors import OpsError
from ops.offline import OfflineHandler
from ops.private_file import write_private
from ops.program import (PROJECT_ROOT, ProgramRun, Resource, parse_overrides, read_stack_config, run_program,
                         stack_file)
from ops.provider_sql import (DELETE_BEFORE_REPLACE, EXTENSION, FORCE_NEW, ROLE, SCHEMA, ApplyError,
                              Change, Provider, ProviderConnection, Timeouts, normalized)
from ops.umami_env import write_umami_env

STATE_ROOT = PROJECT_ROOT / ".rehearsal"
# Failures that mean "could not run" (exit 2): a lock or statement timeout, a cancel, a read-only
# or full database, too many connections.
PAST = {"create": "created", "update": "updated", "replace": "replaced"}
COULD_NOT_RUN_STATES = {"55P03", "57014", "25006", "53100", "53300", "57P01"}


# -- state ----------------------------------------------------------------------

@dataclass
class State:
    """What survives between runs: generated values, the local cluster's logins, and the
    resources applied (inputs and outputs, like a Pulumi checkpoint)."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "State":
        if path.exists():
            try:
                return cls(path, json.loads(path.read_text()))
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise OpsError(f"rehearsal state {path} is corrupt; delete {path.parent} to start over") from None
        return cls(path, {})

    def save(self) -> None:
        write_private(self.path, json.dumps(self.data, indent=2, sort_keys=True))

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.data.setdefault("resources", {})

    @property
    def order(self) -> list[str]:
        return self.data.setdefault("order", [])

    @property
    def pending_deletes(self) -> list[dict[str, Any]]:
        """Replaced resources whose old instance still has to be deleted (Pulumi's `delete: true`)."""
        return self.data.setdefault("pendingDeletes", [])

    def record(self, urn: str, entry: dict[str, Any]) -> None:
        self.resources[urn] = entry
        if urn not in self.order:
            self.order.append(urn)
        self.save()

    def forget(self, urn: str) -> None:
        self.resources.pop(urn, None)
        if urn in self.order:
            self.order.remove(urn)
        self.save()


@dataclass
class Entry:
    """A resource as the state knows it (for labels of resources no longer declared)."""

    urn: str
    data: dict[str, Any]

    @property
    def type(self) -> str:
        return self.data["type"]

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def outputs(self) -> dict[str, Any]:
        return self.data["outputs"]


def random_value(resource: Resource) -> str:
    """A real random value honouring RandomPassword's length, specials and minimums."""
    inputs = resource.inputs
    length = int(inputs.get("length", 32))
    classes = {
        "lower": (string.ascii_lowercase, inputs.get("lower", True), int(inputs.get("minLower", 0))),
        "upper": (string.ascii_uppercase, inputs.get("upper", True), int(inputs.get("minUpper", 0))),
        "numeric": (string.digits, inputs.get("numeric", True), int(inputs.get("minNumeric", 0))),
        "special": (inputs.get("overrideSpecial") or "!@#$%&*()-_=+[]{}<>:?",
                    inputs.get("special", True), int(inputs.get("minSpecial", 0))),
    }
    alphabet = "".join(chars for chars, enabled, _ in classes.values() if enabled)
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(length))
        if all(sum(c in chars for c in value) >= minimum
               for chars, enabled, minimum in classes.values() if enabled):
            return value


# -- the handler: records the program, remembers random values ------------------------

class RehearsalHandler(OfflineHandler):
    """Records what the program declares; random values are real and kept in state."""

    def __init__(self, state: State, region: str, admin_secret: dict[str, str]):
        super().__init__(region=region, random_value=self.remembered_random, admin_secret=admin_secret)
        self.state = state
        self.providers: dict[str, ProviderConnection] = {}

    def remembered_random(self, resource: Resource) -> str:
        values = self.state.data.setdefault("random", {})
        if resource.urn not in values:
            values[resource.urn] = random_value(resource)
        return values[resource.urn]

    def new_resource(self, resource: Resource) -> tuple[str, dict[str, Any]]:
        rid, state = super().new_resource(resource)
        if resource.type == "pulumi:providers:postgresql":
            self.providers[f"{resource.urn}::{rid}"] = ProviderConnection.from_inputs(resource.inputs)
        return rid, state


# -- where the rehearsal runs -------------------------------------------------------

@dataclass
class Database:
    """The database being rehearsed into and the admin login the provider will use."""

    admin: Target
    local: pgcluster.LocalCluster | None = None
    app_role: str | None = None


def local_database(state: State, base: Path) -> Database:
    """Start (creating on first use) the throwaway Aurora-like cluster of this stack."""
    cluster_state = state.data.get("cluster")
    cluster = pgcluster.LocalCluster(base / "cluster", port=cluster_state["port"] if cluster_state else None)
    if not cluster.initialized():
        progress(f"creating a throwaway Aurora-like PostgreSQL 15 in {cluster.base_dir}")
        superuser_password = pgcluster.new_password()
        cluster.init(superuser_password)
        cluster.start()
        admin, app = pgcluster.bootstrap_aurora_like(cluster, superuser_password)
        state.data["cluster"] = {"port": cluster.port, "superuser_password": superuser_password,
                                 "admin": [admin.user, admin.password], "app": [app.user, app.password]}
        state.save()
    else:
        if not cluster.ca_file.exists():
            raise OpsError(f"the throwaway cluster in {cluster.base_dir} was created without TLS; stop it "
                           f"(--stop) and delete {base} to create a TLS-only one")
        cluster.start()
    admin_user, admin_password = state.data["cluster"]["admin"]
    admin = Target(host="127.0.0.1", port=cluster.port, dbname=pgcluster.APP_DATABASE,
                   user=admin_user, password=admin_password, sslmode="verify-full",
                   sslrootcert=str(cluster.ca_file))
    return Database(admin=admin, local=cluster, app_role=state.data["cluster"]["app"][0])


def _pgpass_unescape(field_text: str) -> list[str]:
    fields, current, escaped = [], "", False
    for char in field_text:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            fields.append(current)
            current = ""
        else:
            current += char
    fields.append(current)
    return fields


def dsn_database(dsn: str) -> Database:
    """The --dsn admin; without a password in the DSN, libpq's: PGPASSWORD, then the passfile
    (the DSN's passfile, PGPASSFILE or ~/.pgpass; ignored, as libpq does, when group/world readable)."""
    target = target_from_dsn(dsn)
    if target.password:
        return Database(admin=target)
    if os.environ.get("PGPASSWORD"):
        return Database(admin=Target(**{**target.__dict__, "password": os.environ["PGPASSWORD"]}))
    passfile = Path(target.passfile or os.environ.get("PGPASSFILE") or Path.home() / ".pgpass").expanduser()
    if passfile.is_file():
        if passfile.stat().st_mode & 0o077:
            raise OpsError(f"--dsn has no password and the passfile {passfile} is readable by others "
                           "(libpq ignores it): chmod 0600 it, or set PGPASSWORD")
        for line in passfile.read_text().splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            fields = _pgpass_unescape(line)
            if len(fields) < 5:
                continue
            host, port, db, user, password = fields[0], fields[1], fields[2], fields[3], ":".join(fields[4:])
            wanted = (target.host, str(target.port), target.dbname, target.user)
            if all(pattern in ("*", value) for pattern, value in zip((host, port, db, user), wanted)):
                return Database(admin=Target(**{**target.__dict__, "password": password}))
    raise OpsError(f"--dsn {redact(dsn)!r} has no password, PGPASSWORD is unset and {passfile} has no entry "
                   f"for {target.describe()}")


def state_dir_for(stack: str, dsn: str | None) -> Path:
    if not dsn:
        return STATE_ROOT / stack
    target = target_from_dsn(dsn)
    digest = hashlib.sha256(f"{target.host}:{target.port}/{target.dbname}".encode()).hexdigest()[:8]
    return STATE_ROOT / f"{stack}-{digest}"


def rehearsal_config(stack: str, db: Database, overrides: dict[str, str]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The stack's config, pointed at the rehearsal database; admin credentials injected."""
    config = read_stack_config(stack)
    config.update(overrides)
    admin = db.admin
    config.update({
        f"{NAMESPACE}:dbHost": admin.host,
        f"{NAMESPACE}:dbPort": str(admin.port),
        f"{NAMESPACE}:dbName": admin.dbname,
    })
    # The stack's clients use the admin login's TLS: verify-full with the throwaway cluster's CA,
    # or the DSN's sslmode and sslrootcert (a CA file; libpq's "system" is no file). An explicit
    # --set of either key wins; without a CA from either, the stack's own (default rds) stays.
    mode_key, ca_key = f"{NAMESPACE}:dbSslMode", f"{NAMESPACE}:dbCaCertificate"
    if mode_key not in overrides:
        if admin.sslmode in ("allow", "prefer"):
            raise OpsError(f"--dsn has sslmode={admin.sslmode} (libpq's default when unset); the stack needs "
                           "disable, require, verify-ca or verify-full: put e.g. sslmode=verify-full&sslrootcert=PATH "
                           f"in the DSN, or --set {mode_key}=MODE")
        config[mode_key] = admin.sslmode
    ca_file = db.local.ca_file if db.local is not None else admin.sslrootcert
    if ca_file and ca_file != "system" and ca_key not in overrides:
        config[ca_key] = str(Path(ca_file).expanduser().resolve())
    secret_keys: tuple[str, ...] = ()
    if not config.get(f"{NAMESPACE}:adminSecretArn"):
        # Secret config cannot be decrypted offline: the rehearsal supplies the admin login.
        config[f"{NAMESPACE}:adminUsername"] = admin.user
        config[f"{NAMESPACE}:adminPassword"] = admin.password or ""
        secret_keys = (f"{NAMESPACE}:adminPassword",)
    if db.app_role and not config.get(f"{NAMESPACE}:applicationRoles"):
        config[f"{NAMESPACE}:applicationRoles"] = [db.app_role]
    leftover = sorted(k for k, v in config.items() if isinstance(v, dict) and "secure" in v)
    if leftover:
        raise OpsError(f"config {leftover[0]} is an encrypted secret; override it with --set {leftover[0]}=VALUE")
    return config, secret_keys


def run_stack(stack: str, db: Database, state: State, overrides: dict[str, str]
              ) -> tuple[ProgramRun, RehearsalHandler, dict[str, Any]]:
    """Run the program under mocks (nothing is applied while it runs)."""
    config, secret_keys = rehearsal_config(stack, db, overrides)
    region = str(config.get("aws:region", DEFAULT_REGION))
    handler = RehearsalHandler(state, region, {"username": db.admin.user, "password": db.admin.password or ""})
    try:
        run = run_program(handler, stack=stack, config=config, secret_keys=secret_keys)
    except OpsError:
        raise
    except Exception as exc:  # noqa: BLE001 the program's own errors (ConfigError is one line per problem)
        raise OpsError(redact(str(exc)).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__) from None
    return run, handler, config


def role_password(run: ProgramRun) -> str:
    """The umami role's plain password: the generated `...-db-password` (the role's own `password`
    input is a SCRAM verifier, which no client can log in with)."""
    generated = [r for r in run.by_type(PASSWORD_RESOURCE) if r.name.endswith("-db-password")]
    if len(generated) == 1 and generated[0].state.get("result"):
        return generated[0].state["result"]
    return run.one(ROLE).inputs["password"]


# -- the lock file ------------------------------------------------------------------

class StateLock:
    """An exclusive lock on a state directory for the whole run: a second run is refused."""

    def __init__(self, base: Path, stack: str):
        self.path = base / "lock"
        self.stack = stack
        self.handle = None

    def __enter__(self) -> "StateLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "?"
            self.handle.close()
            raise OpsError(f"another rehearsal of stack {self.stack} is running (lock {self.path} held by "
                           f"pid {holder}); wait for it to finish") from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(str(os.getpid()))
        self.handle.flush()
        return self

    def __exit__(self, *exc) -> None:
        if self.handle:
            self.handle.seek(0)
            self.handle.truncate()
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()


# -- plan -----------------------------------------------------------------------------

@dataclass
class PlanItem:
    action: str  # create | update | replace | delete | same
    urn: str
    resource: Resource | None  # None for a delete
    old: dict[str, Any] | None  # the state entry
    keys: list[str] = field(default_factory=list)  # changed inputs

    @property
    def type(self) -> str:
        return self.resource.type if self.resource else self.old["type"]

    @property
    def label(self) -> str:
        name = self.resource.name if self.resource else self.old["name"]
        return f"{self.type.split(':')[-1]} {name}"

    def diff_text(self) -> str:
        if self.action not in ("update", "replace") or not self.keys:
            return ""
        old, new = self.old["outputs"], self.resource.inputs
        return "; ".join(f"{k}: {_show(k, old.get(k))} -> {_show(k, new.get(k))}" for k in self.keys)

    def describe(self) -> str:
        text = self.diff_text()
        return f"  {self.action:<7} {self.label}" + (f"  ({text})" if text else "")


def _show(key: str, value: Any) -> str:
    if key == "password":
        return SECRET_MASK
    return json.dumps(value, default=str)


def is_postgresql(type_: str) -> bool:
    return type_.startswith("postgresql:")


def diff_keys(resource: Resource, outputs: dict[str, Any]) -> list[str]:
    """Inputs that differ from the state's outputs (what the bridge diffs), ignore_changes honoured."""
    keys = []
    for key, value in resource.inputs.items():
        if key in resource.ignore_changes or key.startswith("__"):
            continue
        if normalized(key, value) != normalized(key, outputs.get(key)):
            keys.append(key)
    return sorted(keys)


def make_plan(resources: list[Resource], state: State) -> list[PlanItem]:
    plan = []
    declared = set()
    for resource in resources:
        if not is_postgresql(resource.type) or not resource.custom:
            continue
        declared.add(resource.urn)
        old = state.resources.get(resource.urn)
        if old is None:
            plan.append(PlanItem("create", resource.urn, resource, None))
            continue
        keys = diff_keys(resource, old["outputs"])
        if not keys:
            action = "same"
        elif set(keys) & FORCE_NEW.get(resource.type, frozenset()):
            action = "replace"
        else:
            action = "update"
        plan.append(PlanItem(action, resource.urn, resource, old, keys))
    for urn in reversed(state.order):
        if urn not in declared and urn in state.resources:
            plan.append(PlanItem("delete", urn, None, state.resources[urn]))
    return plan


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
    def never_adopt(self, plan: list[PlanItem], config: dict[str, Any]) -> None:
        """Refuse (before any change) a role or schema that exists and is not this stack's."""
        conn = self.provider.conn()
        current, session = conn.execute("SELECT current_user, session_user").fetchone()
        admins = {self.provider.connection.username, current, session}
        app_roles = config.get(f"{NAMESPACE}:applicationRoles") or []
        if isinstance(app_roles, str):
            try:
                app_roles = json.loads(app_roles)
            except json.JSONDecodeError:
                app_roles = [app_roles]
        for item in plan:
            if item.resource is None or item.action not in ("create", "update", "replace"):
                continue
            name = item.resource.inputs.get("name")
            old_name = item.old["outputs"].get("name") if item.old else None
            if item.type == ROLE:
                if name in admins:
                    raise OpsError(f"umami:roleName={name} is the admin login the provider connects as; the "
                                   "stack's role must be a new, dedicated role")
                if name in app_roles:
                    raise OpsError(f"umami:roleName={name} is an application role (umami:applicationRoles); the "
                                   "stack's role must be a new, dedicated role")
                if name != old_name and conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
                    raise OpsError(f"role {name} already exists and is not in this stack's state: the rehearsal "
                                   f"never adopts it (a real `up` would fail on CREATE ROLE); to adopt it deliberately: "
                                   f"pulumi import {ROLE} {item.resource.name} {name}")
            elif item.type == SCHEMA:
                database = item.resource.inputs.get("database") or self.provider.connection.database
                if name != old_name and self.provider.conn(database).execute(
                        "SELECT 1 FROM pg_namespace WHERE nspname = %s", (name,)).fetchone():
                    raise OpsError(f"schema {name} already exists in database {database} and is not in this "
                                   f"stack's state: the rehearsal never adopts it; to adopt it deliberately: "
                                   f"pulumi import {SCHEMA} {item.resource.name} {database}.{name}")

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
        try:
            self.current = item.label
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
        try:
            self.current = entry_label(entry)
            return self.delete_entry(entry, change)
        except KeyboardInterrupt:
            raise Interrupted(self._interrupted_line()) from None
        except ApplyError as exc:
            return self._failed(change, exc)
        finally:
            self.current = None

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
        if pending:
            self.state.pending_deletes.remove(entry.data)
            self.state.save()
        else:
            self.state.forget(entry.urn)

    def _guard_schema(self, entry: Entry, change: Change) -> None:
        """Refuse a cascade that would reach outside the schema (ops.checks.destroy.dependents_outside)."""
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
        schema = next((e["outputs"]["name"] for e in self.state.resources.values() if e["type"] == SCHEMA), None)
        conn = self.provider.conn()
        outside = owned_outside(conn, entry.outputs["name"], schema or "")
        if outside:
            raise OpsError(f"refused: deleting role {entry.outputs['name']} (REASSIGN OWNED, DROP OWNED) would "
                           "reach outside the schema: " + "; ".join(outside) + f"; {self.committed_text()}")


def entry_label(entry: Entry) -> str:
    return f"{entry.type.split(':')[-1]} {entry.name}"


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
    role = run.one(ROLE)
    lines = [pgpass_line(db.admin.host, db.admin.port, db.admin.dbname, role.inputs["name"], role_password(run))]
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
        provider = _provider(run, handler, timeouts)
        engine = Engine(provider, state)
        try:
            drift = engine.refresh() if refresh else []
            plan = make_plan(run.resources, state)
            engine.never_adopt(plan, config)
            if preview:
                return Rehearsal(run, [], {}, outputs_path or base / "outputs.json", base, db, True,
                                 plan=plan, drift=drift, preview=True)
            engine.preflight(plan)
            ok = engine.apply(plan)
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
                         committed=engine.done)


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


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr, exit 2 (argparse would add the usage)."""

    def error(self, message: str):  # noqa: D102
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


class _OutputsReads(argparse.Action):
    """--outputs reads in every command; the rehearsal writes its outputs with --write-outputs."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"--outputs reads stack outputs in every command; to write them here use --write-outputs {values}")


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m ops.rehearse", description=__doc__.split("\n\n")[0])
    cli.add_common_arguments(
        parser, example="python -m ops.rehearse --stack dev --write-outputs /tmp/outputs.json",
        environment=("PGPASSWORD, PGPASSFILE", "PG_BIN"),
        exit_codes={0: "rehearsed (or previewed, destroyed, stopped) and isolation confirmed",
                    1: "a step failed (what committed before it is listed) or a rehearsal check failed",
                    130: "interrupted (SIGINT/SIGTERM): the current step rolled back"})
    parser.add_argument("--stack", required=True, metavar="NAME", help="stack whose Pulumi.<stack>.yaml to rehearse")
    parser.add_argument("--dsn", help="admin DSN of an existing database (default: a throwaway local one); "
                                      "without a password, PGPASSWORD or the libpq passfile supplies it")
    parser.add_argument("--destroy", action="store_true", help="delete what the state holds (pulumi destroy)")
    parser.add_argument("--refresh", action="store_true", help="read the catalog first and show drift (pulumi up --refresh)")
    parser.add_argument("--preview", action="store_true", help="print the plan; change nothing")
    parser.add_argument("--write-outputs", type=Path, metavar="FILE",
                        help="where to write the stack outputs JSON (default .rehearsal/<stack>/outputs.json)")
    parser.add_argument("--outputs", action=_OutputsReads, help=argparse.SUPPRESS)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. umami:schemaName=analytics (repeatable)")
    parser.add_argument("--stop", action="store_true", help="stop the throwaway cluster of this stack")
    parser.add_argument("--state-root", type=Path, metavar="DIR",
                        help="keep the state under DIR/<stack> instead of .rehearsal/ (one state per database)")
    parser.add_argument("--lock-timeout", type=int, default=Timeouts.lock_ms, metavar="MS",
                        help=f"lock_timeout of every connection (default {Timeouts.lock_ms} ms)")
    parser.add_argument("--statement-timeout", type=int, default=Timeouts.statement_ms, metavar="MS",
                        help=f"statement_timeout of every connection (default {Timeouts.statement_ms} ms)")
    parser.add_argument("--umami-env", type=Path, metavar="FILE",
                        help="also write the Umami container's environment as a dotenv file (mode 0600), "
                             "with the CA bundle beside it, to run Umami locally against the rehearsal")
    args = cli.parse_args(parser, argv)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    # The program's warnings (pulumi.log.warn) belong to the report on stdout: stderr keeps one error line.
    warnings = logging.StreamHandler(sys.stdout)
    warnings.setFormatter(logging.Formatter("warning: %(message)s"))
    logging.getLogger().addHandler(warnings)
    try:
        return run_command(args)
    except OpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("error: interrupted before any change was applied", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        logging.getLogger().removeHandler(warnings)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_command(args: argparse.Namespace) -> int:
    overrides = parse_overrides(args.set, NAMESPACE)
    if args.lock_timeout <= 0 or args.statement_timeout <= 0:
        raise OpsError("--lock-timeout and --statement-timeout must be positive (milliseconds)")
    timeouts = Timeouts(args.lock_timeout, args.statement_timeout)
    if args.stop:
        stack_file(args.stack)
        state = State.load(state_dir_for(args.stack, None) / "state.json")
        if "cluster" in state.data:
            pgcluster.LocalCluster(state_dir_for(args.stack, None) / "cluster", state.data["cluster"]["port"]).stop()
        print("throwaway cluster stopped")
        return 0
    if args.destroy:
        result = destroy(args.stack, dsn=args.dsn, overrides=overrides, timeouts=timeouts, preview=args.preview,
                         state_root=args.state_root)
        print("destroy plan (preview: nothing changed):" if args.preview else "destroy:")
        print_changes(result.changes)
        if args.preview:
            return 0
        if result.ok:
            print("destroy complete" + (": nothing was in state" if not result.changes else ""))
            for line in result.kept:
                print(f"kept: {line}")
            return 0
        print("destroy FAILED: see the failed resources above; already done: " + (", ".join(result.done) or "nothing"))
        return 1
    result = rehearse(args.stack, dsn=args.dsn, outputs_path=args.write_outputs, overrides=overrides,
                      refresh=args.refresh, preview=args.preview, timeouts=timeouts, umami_env=args.umami_env,
                      state_root=args.state_root)
    if result.drift:
        print("refresh (drift found in the catalog):")
        print_changes(result.drift)
    elif args.refresh:
        print("refresh: no drift")
    if result.preview:
        print(f"plan for stack {args.stack} in {result.db.admin.describe()} (preview: nothing changed):")
        for item in result.plan:
            print(item.describe())
        return 0
    print(f"rehearsal of stack {args.stack} into {result.db.admin.describe()}:")
    print_changes(result.changes)
    print_manifest(result.run)
    print(f"outputs written to {result.outputs_path}")
    if not result.ok:
        print("rehearsal FAILED: see the failed resource above; committed before it: "
              + (", ".join(result.committed) or "nothing"))
        return 1
    if args.umami_env:
        print(f"Umami's environment written to {args.umami_env} (run it: README, \"Umami locally\")")
    from ops.rehearsal_checks import check_rehearsal
    return check_rehearsal(result)


if __name__ == "__main__":
    sys.exit(main())
