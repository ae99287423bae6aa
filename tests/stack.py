"""Run the Pulumi program offline with the dev stack's config plus overrides."""

from __future__ import annotations

from typing import Any

from ops.engine.offline import OfflineHandler
from ops.engine.program import ProgramRun, Resource, read_stack_config, run_program


def dev_config(overrides: dict[str, Any] | None = None, remove: tuple[str, ...] = ()) -> dict[str, Any]:
    config = read_stack_config("dev")
    for key in remove:
        config.pop(key, None)
    for key, value in (overrides or {}).items():
        config[key if ":" in key else f"umami:{key}"] = value
    return config


def run_dev(overrides: dict[str, Any] | None = None, remove: tuple[str, ...] = (),
            handler: OfflineHandler | None = None, secret_keys: tuple[str, ...] = ()) -> ProgramRun:
    return run_program(handler or OfflineHandler(), stack="dev",
                       config=dev_config(overrides, remove), secret_keys=secret_keys)


def named(run: ProgramRun, type_token: str, name: str) -> Resource:
    """The one resource of `type_token` called `name` (the stack declares several task definitions,
    log groups, roles, random bytes, ...)."""
    found = [r for r in run.by_type(type_token) if r.name == name]
    assert len(found) == 1, f"{type_token} {name}: {len(found)} found"
    return found[0]
