"""The program run under mocks, pointed at the rehearsal database: config, handler, generated values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from facts import CONFIG_NAMESPACE as NAMESPACE
from facts import DEFAULT_REGION
from facts import RANDOM_PASSWORD as PASSWORD_RESOURCE
from facts import SECRET_VERSION
from ops.core.db import redact
from ops.core.errors import OpsError
from ops.engine.offline import OfflineHandler
from ops.engine.program import ProgramRun, Resource, read_stack_config, run_program
from ops.engine.provider_sql import ROLE, ProviderConnection
from ops.rehearse.database import Database
from ops.rehearse.state import State, random_value

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


def stored_logins(run: ProgramRun) -> dict[str, str]:
    """Role -> plain password, from every database credentials document the program stores (Umami's and
    each tenant's: JSON with `username`, `password` and `schema`)."""
    logins = {}
    for version in run.by_type(SECRET_VERSION):
        try:
            document = json.loads(str(version.inputs.get("secretString", "")))
        except json.JSONDecodeError:
            continue
        if isinstance(document, dict) and {"username", "password", "schema"} <= set(document):
            logins[document["username"]] = document["password"]
    return logins


def role_password(run: ProgramRun) -> str:
    """The umami role's plain password: the generated `...-db-password` (the role's own `password`
    input is a SCRAM verifier, which no client can log in with)."""
    generated = [r for r in run.by_type(PASSWORD_RESOURCE) if r.name.endswith("-db-password")]
    if len(generated) == 1 and generated[0].state.get("result"):
        return generated[0].state["result"]
    return run.one(ROLE).inputs["password"]


