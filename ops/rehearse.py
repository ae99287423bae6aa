"""Offline rehearsal: the unchanged Pulumi program against a real PostgreSQL, no cloud.

    python -m ops.rehearse --stack dev [--dsn URL] [--destroy] [--outputs FILE] [--set KEY=VALUE]
                           [--umami-env FILE]
    python -m ops.rehearse --stack dev --stop       # stop the throwaway cluster

The program runs under Pulumi's mocks. Every `postgresql:*` resource is applied
with the provider's SQL (ops.provider_sql) in dependency order; `random:*`
resources get real random values (kept in the state file so a second run changes
nothing); every other resource is recorded in a manifest. Without --dsn a
throwaway Aurora-like PostgreSQL 15 is started under .rehearsal/<stack>/ with an
application schema, data and role, and left running for ops.verify.

Files written under .rehearsal/<stack>/ (mode 0600 where they hold secrets):
outputs.json (like `pulumi stack output --json`), manifest.json (resources,
secret inputs masked), pgpass (libpq passfile for the umami role and the admin),
state.json (generated values and cluster passwords). With --umami-env FILE, the
Umami container's environment as a dotenv file (ops.umami_env), to run the
pinned Umami image locally against the rehearsal (compose.yaml).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from ops import pgcluster
from ops.db import Target, connect, redact, target_from_dsn
from ops.cli import progress, run_command_line
from ops.errors import OpsError
from ops.offline import OfflineHandler
from ops.private_file import write_private
from ops.umami_env import write_umami_env
from ops.program import PROJECT_ROOT, ProgramRun, Resource, parse_overrides, read_stack_config, run_program
from ops.provider_sql import ApplyError, Change, PostgresApplier, ProviderConnection

NAMESPACE = "umami"
STATE_ROOT = PROJECT_ROOT / ".rehearsal"



# -- state ----------------------------------------------------------------------

@dataclass
class State:
    """What must survive between runs: generated values, the local cluster's logins."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "State":
        if path.exists():
            try:
                return cls(path, json.loads(path.read_text()))
            except json.JSONDecodeError:
                raise OpsError(f"rehearsal state {path} is corrupt; delete {path.parent} to start over") from None
        return cls(path, {})

    def save(self) -> None:
        write_private(self.path, json.dumps(self.data, indent=2, sort_keys=True))


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


# -- the handler: what happens to each declared resource -----------------------------

class RehearsalHandler(OfflineHandler):
    """Applies postgresql resources (or records them for destroy); remembers random values."""

    def __init__(self, state: State, region: str, admin_secret: dict[str, str], apply: bool):
        super().__init__(region=region, random_value=self.remembered_random, admin_secret=admin_secret)
        self.state = state
        self.apply = apply
        self.providers: dict[str, ProviderConnection] = {}
        self.appliers: dict[str, PostgresApplier] = {}
        self.changes: list[Change] = []
        self.failed: set[str] = set()

    def remembered_random(self, resource: Resource) -> str:
        values = self.state.data.setdefault("random", {})
        if resource.urn not in values:
            values[resource.urn] = random_value(resource)
        return values[resource.urn]

    def new_resource(self, resource: Resource) -> tuple[str, dict[str, Any]]:
        rid, state = super().new_resource(resource)
        if resource.type == "pulumi:providers:postgresql":
            self.providers[f"{resource.urn}::{rid}"] = ProviderConnection.from_inputs(resource.inputs)
        elif resource.type.startswith("postgresql:") and self.apply:
            self.changes.append(self.apply_one(resource))
        return rid, state

    def applier_for(self, resource: Resource) -> PostgresApplier:
        if resource.provider not in self.providers:
            raise ApplyError("no explicit postgresql provider (the program must pass one)")
        if resource.provider not in self.appliers:
            self.appliers[resource.provider] = PostgresApplier(self.providers[resource.provider])
        return self.appliers[resource.provider]

    def apply_one(self, resource: Resource) -> Change:
        blocked = [dep for dep in resource.dependencies if dep in self.failed]
        if blocked:
            self.failed.add(resource.urn)
            return Change(resource, "skip", "a dependency failed")
        try:
            return self.applier_for(resource).apply(resource)
        except ApplyError as exc:
            self.failed.add(resource.urn)
            return Change(resource, "failed", str(exc))

    def destroy(self, resources: list[Resource]) -> None:
        """Delete postgresql resources in reverse dependency order, as `pulumi destroy` would."""
        for resource in reversed(resources):
            if not resource.type.startswith("postgresql:"):
                continue
            try:
                self.changes.append(self.applier_for(resource).delete(resource))
            except ApplyError as exc:
                self.failed.add(resource.urn)
                self.changes.append(Change(resource, "failed", str(exc)))

    def close(self) -> None:
        for applier in self.appliers.values():
            applier.close()


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
    # TLS only, like RDS: the admin verifies the server against the cluster's own CA.
    admin = Target(host="127.0.0.1", port=cluster.port, dbname=pgcluster.APP_DATABASE,
                   user=admin_user, password=admin_password, sslmode="verify-full",
                   sslrootcert=str(cluster.ca_file))
    return Database(admin=admin, local=cluster, app_role=state.data["cluster"]["app"][0])


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


def run_stack(stack: str, db: Database, state: State, overrides: dict[str, str], apply: bool
              ) -> tuple[ProgramRun, RehearsalHandler]:
    config, secret_keys = rehearsal_config(stack, db, overrides)
    region = str(config.get("aws:region", "eu-west-1"))
    handler = RehearsalHandler(state, region, {"username": db.admin.user, "password": db.admin.password or ""}, apply)
    try:
        run = run_program(handler, stack=stack, config=config, secret_keys=secret_keys)
    except Exception as exc:  # noqa: BLE001 the program's own errors (ConfigError is one line per problem)
        handler.close()
        raise OpsError(redact(str(exc)).strip() or type(exc).__name__) from None
    return run, handler


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
    role = run.one("postgresql:index/role:Role")
    lines = [pgpass_line(db.admin.host, db.admin.port, db.admin.dbname, role.inputs["name"], role.inputs["password"])]
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
    others = [r for r in run.resources if not r.type.startswith("postgresql:")]
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


def rehearse(stack: str, *, dsn: str | None = None, outputs_path: Path | None = None,
             overrides: dict[str, str] | None = None, state_root: Path | None = None) -> Rehearsal:
    base = (state_root / stack) if state_root else state_dir_for(stack, dsn)
    state = State.load(base / "state.json")
    db = Database(admin=target_from_dsn(dsn)) if dsn else local_database(state, base)
    connect(db.admin, read_only=False).close()  # unreachable or refused: one line, nothing half-applied
    run, handler = run_stack(stack, db, state, overrides or {}, apply=True)
    handler.close()
    state.save()
    outputs = write_results(run, db, base, outputs_path or base / "outputs.json")
    ok = not handler.failed
    return Rehearsal(run, handler.changes, outputs, outputs_path or base / "outputs.json", base, db, ok)


def destroy(stack: str, *, dsn: str | None = None, overrides: dict[str, str] | None = None,
            state_root: Path | None = None) -> tuple[list[Change], bool]:
    base = (state_root / stack) if state_root else state_dir_for(stack, dsn)
    state = State.load(base / "state.json")
    db = Database(admin=target_from_dsn(dsn)) if dsn else local_database(state, base)
    connect(db.admin, read_only=False).close()
    run, handler = run_stack(stack, db, state, overrides or {}, apply=False)
    protected = [r for r in run.resources if r.type.startswith("postgresql:") and r.protect]
    if protected:
        handler.close()
        raise OpsError(f"{protected[0].name} is protected ({NAMESPACE}:protectStatefulResources=true); "
                       f"destroy with --set {NAMESPACE}:protectStatefulResources=false")
    try:
        handler.destroy(run.resources)
    finally:
        handler.close()
    return handler.changes, not handler.failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.rehearse", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="stack whose Pulumi.<stack>.yaml to rehearse")
    parser.add_argument("--dsn", help="admin DSN of an existing database (default: a throwaway local one)")
    parser.add_argument("--destroy", action="store_true", help="issue the provider's delete SQL")
    parser.add_argument("--outputs", type=Path, help="where to write the stack outputs JSON")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    parser.add_argument("--stop", action="store_true", help="stop the throwaway cluster of this stack")
    parser.add_argument("--umami-env", type=Path, metavar="FILE",
                        help="also write the Umami container's environment as a dotenv file (mode 0600), "
                             "with the CA bundle beside it, to run Umami locally against the rehearsal")
    return run_command_line(run_command, parser.parse_args(argv))


def run_command(args: argparse.Namespace) -> int:
    overrides = parse_overrides(args.set, NAMESPACE)
    if args.stop:
        state = State.load(state_dir_for(args.stack, None) / "state.json")
        if "cluster" in state.data:
            pgcluster.LocalCluster(state_dir_for(args.stack, None) / "cluster", state.data["cluster"]["port"]).stop()
        print("throwaway cluster stopped")
        return 0
    if args.destroy:
        changes, ok = destroy(args.stack, dsn=args.dsn, overrides=overrides)
        print("destroy:")
        print_changes(changes)
        print("destroy complete" if ok else "destroy FAILED: see the failed resources above")
        return 0 if ok else 1
    if args.umami_env:
        check_writable(args.umami_env)
    result = rehearse(args.stack, dsn=args.dsn, outputs_path=args.outputs, overrides=overrides)
    print(f"rehearsal of stack {args.stack} into {result.db.admin.describe()}:")
    print_changes(result.changes)
    print_manifest(result.run)
    print(f"outputs written to {result.outputs_path}")
    if not result.ok:
        print("rehearsal FAILED: see the failed resources above")
        return 1
    if args.umami_env:
        write_umami_env(result.run, args.umami_env)
        print(f"Umami's environment written to {args.umami_env} (run it: README, \"Umami locally\")")
    from ops.rehearsal_checks import check_rehearsal
    return check_rehearsal(result)


def check_writable(path: Path) -> None:
    """Refuse an output file that cannot be written before anything is applied."""
    folder = path.resolve().parent
    existing = next(p for p in (folder, *folder.parents) if p.exists())  # the folders below it get created
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise OpsError(f"--umami-env {path}: {existing} is not a writable folder")


if __name__ == "__main__":
    sys.exit(main())
