"""Read a real `pulumi preview --json` document and review it like an offline plan diff.

The document is Pulumi's preview digest (pkg/backend/display/json.go):
`{"config", "steps": [...], "diagnostics", "duration", "changeSummary"}`, each
step `{"op", "urn", "provider", "oldState", "newState", "diffReasons",
"replaceReasons", "detailedDiff"}`, states in the checkpoint resource format
(`type`, `id`, `inputs`, `outputs`, `protect`, `retainOnDelete`, ...) with
secrets already shown as "[secret]". A replacement may appear as one `replace`
step or, with --show-replacement-steps, as create-replacement / replace /
delete-replaced; they are folded into one change. The same preview streamed as
engine events (PULUMI_ENABLE_STREAMING_JSON_PREVIEW=true, the only JSON with the
policy violations) is read too, through `events`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ops.core import documents
from ops.core.errors import OpsError
from ops.core.jsonfile import read_json
from ops.preview import events
from ops.preview.diff import property_changes
from ops.preview.model import (CREATE, DELETE, READ, REPLACE, SAME, UPDATE, PropertyChange, ResourceChange,
                               Review, top_level_key)
from ops.preview.risk import assess

REPLACE_OPS = {"replace", "create-replacement", "delete-replaced", "read-replacement", "import-replacement"}
OP_ACTIONS = {
    "create": CREATE, "import": CREATE, "update": UPDATE, "delete": DELETE, "same": SAME,
    "read": READ, "refresh": READ, "discard": READ, "discard-replaced": READ, "remove-pending-replace": READ,
}
# Pulumi's digest has no envelope: these keys tell it apart, the schema says the rest.
DIGEST_KEYS = {"steps", "changeSummary"}
KIND = documents.DocumentType("pulumi-preview-digest", (1,), "preview", enveloped=False)
# An index of more digits than any list can have is no index (and int() would refuse it).
_PATH_TOKEN = re.compile(r'\.?([A-Za-z0-9_$-]+)|\[(\d{1,9})\]|\["((?:[^"\\]|\\.)*)"\]')


def load_preview(path: str | Path) -> dict[str, Any]:
    """The digest (or the one a stream of engine events makes), checked against the fields this module
    reads; else a one-line OpsError naming the file."""
    if events.is_event_stream(path):
        return events.digest_of(events.read_events(path))
    data = read_json(path, "preview")
    if not isinstance(data, dict) or not (DIGEST_KEYS & set(data)):
        raise OpsError(f"{path} is not a `pulumi preview --json` document (no steps or changeSummary)")
    documents.check(data, KIND, str(path))
    return data


def urn_parts(urn: str) -> tuple[str, str]:
    """(type, name) from `urn:pulumi:STACK::PROJECT::PARENT$TYPE::NAME`."""
    parts = urn.split("::")
    if len(parts) < 4:
        return "", urn
    return parts[2].split("$")[-1], "::".join(parts[3:])


def lookup(value: Any, path: str) -> Any:
    """The value at a Pulumi property path (`a.b[0]["c.d"]`), or None when absent."""
    position = 0
    while position < len(path):
        match = _PATH_TOKEN.match(path, position)
        if not match or match.end() == position:
            return None
        position = match.end()
        name, index, quoted = match.groups()
        if index is not None:
            if not isinstance(value, list) or int(index) >= len(value):
                return None
            value = value[int(index)]
        else:
            key = name if name is not None else quoted.replace('\\"', '"')
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
    return value


def _state(step: dict[str, Any], key: str) -> dict[str, Any] | None:
    state = step.get(key)
    return state if isinstance(state, dict) else None


def _inputs(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """A state's inputs without engine bookkeeping such as `__defaults`."""
    if state is None:
        return None
    inputs = state.get("inputs") or {}
    return {k: v for k, v in inputs.items() if not k.startswith("__")}


def _properties(step: dict[str, Any], old: dict[str, Any] | None, new: dict[str, Any] | None,
                replace_reasons: set[str]) -> list[PropertyChange]:
    old_inputs = _inputs(old) or {}
    old_outputs = (old or {}).get("outputs") or {}
    new_inputs = _inputs(new) or {}
    detailed = step.get("detailedDiff")
    if isinstance(detailed, dict) and detailed:
        changes = []
        for path in sorted(detailed):
            diff = detailed[path] if isinstance(detailed[path], dict) else {}
            kind = str(diff.get("kind", "update"))
            before_source = old_inputs if diff.get("inputDiff") else (old_outputs or old_inputs)
            before = None if kind.startswith("add") else lookup(before_source, path)
            after = None if kind.startswith("delete") else lookup(new_inputs, path)
            replaces = kind.endswith("-replace") or top_level_key(path) in replace_reasons
            inner = property_changes(before, after, path) if before is not None and after is not None else []
            if len(inner) > 1 or (inner and inner[0].path != path):  # a JSON document: show what moved inside
                changes += [PropertyChange(c.path, c.kind, c.old, c.new, replaces) for c in inner]
            else:
                changes.append(PropertyChange(path, kind.replace("-replace", ""), before, after, replaces))
        return changes
    changes = [
        PropertyChange(c.path, c.kind, c.old, c.new, top_level_key(c.path) in replace_reasons)
        for c in property_changes(old_inputs, new_inputs)
    ]
    reasons = set(step.get("diffReasons") or []) | replace_reasons
    if reasons:  # the provider named the keys: show those, even if the inputs look alike
        changes = [c for c in changes if top_level_key(c.path) in reasons] or [
            PropertyChange(key, "update", old_inputs.get(key), new_inputs.get(key), key in replace_reasons)
            for key in sorted(reasons)
        ]
    return changes


def _fold(urn: str, steps: list[dict[str, Any]]) -> ResourceChange:
    """One change from all the steps of one URN."""
    ops = [str(s.get("op", "")) for s in steps]
    old = next((_state(s, "oldState") for s in steps if _state(s, "oldState")), None)
    new = next((_state(s, "newState") for s in steps if _state(s, "newState")), None)
    replace_reasons: set[str] = set()
    for step in steps:
        replace_reasons.update(top_level_key(str(k)) for k in step.get("replaceReasons") or [])
    if REPLACE_OPS & set(ops):
        action = REPLACE
    else:
        action = OP_ACTIONS.get(ops[0], READ)
    type_token, name = urn_parts(urn)
    main = next((s for s in steps if s.get("op") in ("replace", "update")), steps[0])
    properties = _properties(main, old, new, replace_reasons) if action in (UPDATE, REPLACE) else []
    replace_keys = sorted(replace_reasons | {top_level_key(p.path) for p in properties if p.forces_replacement})
    return ResourceChange(
        urn=urn, type=str((new or old or {}).get("type") or type_token), name=name, action=action,
        old_inputs=_inputs(old),
        new_inputs=_inputs(new) if action != DELETE else None,
        old_protect=bool((old or {}).get("protect")),
        new_protect=bool((new or {}).get("protect")) if action != DELETE else False,
        retain_on_delete=bool((old or new or {}).get("retainOnDelete")),
        old_id=str((old or {}).get("id") or ""), new_id=str((new or {}).get("id") or ""),
        properties=properties, replace_keys=replace_keys,
    )


def _error_notes(digest: dict[str, Any]) -> list[str]:
    notes = []
    for diagnostic in digest.get("diagnostics") or []:
        if isinstance(diagnostic, dict) and diagnostic.get("severity") == "error":
            message = " ".join(str(diagnostic.get("message", "")).split())
            notes.append(f"preview error: {message[:300]}")
    return notes


def summarize(digest: dict[str, Any], source: str = "pulumi preview --json") -> Review:
    """The review of a preview digest: every non-stack resource once, risks first."""
    by_urn: dict[str, list[dict[str, Any]]] = {}
    for step in digest.get("steps") or []:
        if not isinstance(step, dict) or not step.get("urn"):
            continue
        if urn_parts(str(step["urn"]))[0] == "pulumi:pulumi:Stack":
            continue
        by_urn.setdefault(str(step["urn"]), []).append(step)
    changes = [_fold(urn, steps) for urn, steps in sorted(by_urn.items())]
    stacks = {urn.split("::")[0].removeprefix("urn:pulumi:") for urn in by_urn}
    stack = stacks.pop() if len(stacks) == 1 else "?"
    return Review(
        title=f"Pulumi preview · stack `{stack}`",
        source=source,
        changes=changes,
        findings=assess(changes),
        notes=_error_notes(digest),
    )
