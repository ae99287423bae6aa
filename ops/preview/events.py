"""Pulumi's engine events, as `pulumi preview --json` streams them: the digest and the policy violations.

`pulumi preview --json` prints one digest at the end (pkg/backend/display/json.go, ShowPreviewDigest),
which leaves policy violations out ("we don't handle policy events in JSON serialization"). With
PULUMI_ENABLE_STREAMING_JSON_PREVIEW=true it prints the engine's events instead, one JSON object a
line (apitype.EngineEvent, sdk/go/common/apitype/events.go; `--json`'s own help names the variable),
and `policyEvent`s are among them. The pull-request workflow previews once, streaming, so this
module gives `summarize` the digest it reads and `comment` the violations, from the same file.

Every line is checked against schemas/pulumi-engine-event.v1.schema.json; a line that is not JSON or
breaks the schema stops the command with one line naming the file and the line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ops.core import documents
from ops.core.errors import OpsError
from ops.preview.model import MASK, PolicyViolation

KIND = documents.DocumentType("pulumi-engine-event", (1,), "engine event", enveloped=False)
# How Pulumi serializes a secret it blinds (resource/properties: sig key, secret sig, "ciphertext").
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
# Pulumi's colour directives (`<{%reset%}>`, `<{%fg 1%}>`), left in a message unless --color never.
_COLOR = re.compile(r"<\{%[^%]*%\}>")
# Step events, as the digest names their fields.
_STEP_FIELDS = {"op": "op", "urn": "urn", "provider": "provider", "keys": "replaceReasons", "diffs": "diffReasons"}
_STATE_FIELDS = ("urn", "type", "id", "custom", "parent", "provider", "protect", "retainOnDelete")


def is_event_stream(path: str | Path) -> bool:
    """Whether the file's first line is one whole engine event (a digest's first line is `{`)."""
    try:
        with open(path, encoding="utf-8") as handle:
            first = next((line for line in handle if line.strip()), "")
        event = json.loads(first)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(event, dict) and "sequence" in event


def _reject_constant(literal: str) -> Any:
    raise ValueError(f"{literal} is not a JSON number")


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """Every event of the stream, each checked; the first problem is a one-line OpsError."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise OpsError(f"cannot read preview {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise OpsError(f"preview {path} is not text (is it a preview?)") from None
    events = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            problem = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc) or "nested too deeply"
            raise OpsError(f"{path}: line {number} is not a JSON event ({problem})") from None
        documents.check(event, KIND, f"{path}: line {number}")
        events.append(event)
    if not events:
        raise OpsError(f"{path} holds no engine event")
    return events


def _unblinded(value: Any) -> Any:
    """Blinded secrets as the digest shows them, `[secret]`, at any depth."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            return MASK
        return {key: _unblinded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unblinded(item) for item in value]
    return value


def _state(metadata: Any) -> dict[str, Any] | None:
    if not isinstance(metadata, dict):
        return None
    state = {key: metadata[key] for key in _STATE_FIELDS if key in metadata}
    for key in ("inputs", "outputs"):
        state[key] = _unblinded(metadata.get(key) or {})
    return state


def _step(metadata: dict[str, Any]) -> dict[str, Any]:
    step = {digest_key: metadata[key] for key, digest_key in _STEP_FIELDS.items() if metadata.get(key) is not None}
    step["oldState"], step["newState"] = _state(metadata.get("old")), _state(metadata.get("new"))
    detailed = metadata.get("detailedDiff")
    if isinstance(detailed, dict):
        step["detailedDiff"] = {path: {"kind": diff.get("diffKind", "update"), "inputDiff": bool(diff.get("inputDiff"))}
                                for path, diff in detailed.items()}
    return step


def plain(message: str) -> str:
    """A Pulumi message without its colour directives."""
    return _COLOR.sub("", message)


def digest_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The preview digest `summarize` reads, built from the events: config, one step per
    resource-pre event, the non-ephemeral diagnostics, the change summary."""
    digest: dict[str, Any] = {"steps": [], "diagnostics": []}
    for event in events:
        if "preludeEvent" in event:
            digest["config"] = event["preludeEvent"].get("config") or {}
        elif "resourcePreEvent" in event:
            digest["steps"].append(_step(event["resourcePreEvent"]["metadata"]))
        elif "diagnosticEvent" in event:
            diagnostic = event["diagnosticEvent"]
            if diagnostic.get("ephemeral") or diagnostic.get("severity") == "debug":
                continue
            digest["diagnostics"].append({"severity": diagnostic.get("severity", "info"), "urn": diagnostic.get("urn", ""),
                                          "message": plain(diagnostic.get("prefix", "") + diagnostic["message"])})
        elif "summaryEvent" in event:
            digest["changeSummary"] = event["summaryEvent"].get("resourceChanges") or {}
    return digest


def violations_of(events: list[dict[str, Any]]) -> list[PolicyViolation]:
    """Every policy violation of the stream, in the order Pulumi reported them."""
    return [PolicyViolation(policy=found["policyName"], pack=found["policyPackName"],
                            level=found["enforcementLevel"].lower(), message=plain(found["message"]).strip(),
                            urn=found.get("resourceUrn") or "")
            for found in (event["policyEvent"] for event in events if "policyEvent" in event)]


def load_violations(path: str | Path) -> list[PolicyViolation]:
    """The violations in a streamed preview; a digest cannot hold them, which is one line saying so."""
    if not is_event_stream(path):
        raise OpsError(f"{path} is not a stream of engine events: Pulumi's preview digest leaves policy "
                       "violations out; run `pulumi preview --json` with PULUMI_ENABLE_STREAMING_JSON_PREVIEW=true")
    return violations_of(read_events(path))
