"""The plan: each declared postgresql resource diffed against the state (create, update, replace,
delete, same)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from facts import SECRET_MASK
from ops.engine.program import Resource
from ops.engine.provider_sql import DEFAULT_PRIVILEGES, EXTENSION, FORCE_NEW, GRANT, ROLE, SCHEMA, normalized
from ops.rehearse.state import State

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


# Ties between independent resources: the order the README's privilege model lists them in.
TYPE_RANK = {ROLE: 0, SCHEMA: 1, GRANT: 2, DEFAULT_PRIVILEGES: 3, EXTENSION: 4}


def dependency_order(resources: list[Resource]) -> list[Resource]:
    """Dependencies first, ties by type then name: the program registers resources concurrently,
    so its order varies between runs; this one does not (and a destroy runs it in reverse)."""
    pending = {r.urn: r for r in resources}
    ordered: list[Resource] = []
    while pending:
        ready = [r for r in pending.values() if not any(d in pending for d in r.dependencies)]
        if not ready:  # a cycle cannot come from a Pulumi program; keep going by name
            ready = list(pending.values())
        first = min(ready, key=lambda r: (TYPE_RANK.get(r.type, len(TYPE_RANK)), r.name, r.urn))
        ordered.append(first)
        del pending[first.urn]
    return ordered


def make_plan(resources: list[Resource], state: State) -> list[PlanItem]:
    plan = []
    declared = set()
    for resource in dependency_order([r for r in resources if is_postgresql(r.type) and r.custom]):
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


