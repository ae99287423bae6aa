"""The shapes shared by the plan diff, the preview summary, the risk rules and the renderers.

Both sources (two offline plans, or one `pulumi preview --json` document) are
reduced to the same list of `ResourceChange`s, so the risk rules and the
Markdown are the same whichever way a reviewer got there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from facts import SECRET_MASK as MASK  # noqa: F401  (diff and render import it from here)
from ops.core.reporting import Severity

# Actions, in the order a reviewer reads them.
CREATE, UPDATE, REPLACE, DELETE, SAME, READ = "create", "update", "replace", "delete", "same", "read"
ACTIONS = (REPLACE, DELETE, UPDATE, CREATE, READ, SAME)

# Severities are the shared model's labels (ops.core.reporting.Severity); risks use the top three.
CRITICAL, HIGH, MEDIUM = Severity.CRITICAL.label, Severity.HIGH.label, Severity.MEDIUM.label
SEVERITIES = (CRITICAL, HIGH, MEDIUM)

# What `pulumi preview` prints for values it cannot know yet.
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def severity_rank(severity: str) -> int:
    """0 for critical, 1 for high, ... 4 for info (most severe first); unknown severities sort last."""
    try:
        return Severity.CRITICAL - Severity.parse(severity)
    except ValueError:
        return len(Severity)


@dataclass(frozen=True)
class PropertyChange:
    """One property-level difference; `path` is Pulumi's notation (`tags.Owner`, `ingress[0].cidrBlocks`)."""

    path: str
    kind: str  # add | delete | update
    old: Any = None
    new: Any = None
    forces_replacement: bool = False


@dataclass
class ResourceChange:
    """What happens to one resource, with its inputs before and after."""

    urn: str
    type: str
    name: str
    action: str
    old_inputs: dict[str, Any] | None = None
    new_inputs: dict[str, Any] | None = None
    old_protect: bool = False
    new_protect: bool = False
    retain_on_delete: bool = False
    old_id: str = ""
    new_id: str = ""
    properties: list[PropertyChange] = field(default_factory=list)
    replace_keys: list[str] = field(default_factory=list)

    @property
    def inputs(self) -> dict[str, Any]:
        """The inputs that will be in effect afterwards (the old ones for a delete)."""
        return self.new_inputs if self.new_inputs is not None else (self.old_inputs or {})

    def changed_keys(self) -> set[str]:
        """Top-level input names that differ."""
        return {top_level_key(p.path) for p in self.properties}


@dataclass(frozen=True)
class Finding:
    """One risk a reviewer must look at."""

    severity: str
    rule: str
    urn: str
    resource: str
    type: str
    title: str
    detail: str


@dataclass
class Review:
    """Everything a renderer needs: a title, the risks and the changes."""

    title: str
    source: str
    changes: list[ResourceChange]
    findings: list[Finding]
    config_changes: list[PropertyChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts = {action: 0 for action in ACTIONS}
        for change in self.changes:
            counts[change.action] = counts.get(change.action, 0) + 1
        return counts

    def severity_counts(self) -> dict[str, int]:
        counts = {severity: 0 for severity in SEVERITIES}
        for finding in self.findings:
            counts[finding.severity] = counts.get(finding.severity, 0) + 1
        return counts


# How a policy pack's enforcement level ranks among the risks (Pulumi's levels: apitype.EnforcementLevel).
POLICY_SEVERITY = {"mandatory": CRITICAL, "advisory": MEDIUM, "remediate": Severity.LOW.label,
                   "disabled": Severity.INFO.label}


@dataclass(frozen=True)
class PolicyViolation:
    """One violation a policy pack reported during `pulumi preview` (a `policyEvent`)."""

    policy: str
    pack: str
    level: str  # mandatory, advisory, remediate, disabled
    message: str
    urn: str = ""  # empty for a stack policy

    @property
    def severity(self) -> str:
        """mandatory stops `pulumi up`: critical; advisory: medium; an unknown level ranks as mandatory."""
        return POLICY_SEVERITY.get(self.level, CRITICAL)


def top_level_key(path: str) -> str:
    """`tags.Owner` -> `tags`, `ingress[0].cidrBlocks` -> `ingress`, `["a.b"]` -> `a.b`."""
    if path.startswith('["'):
        end = path.find('"]')
        return path[2:end] if end >= 0 else path[2:]  # unterminated: the rest is the key
    for index, char in enumerate(path):
        if char in ".[":
            return path[:index]
    return path


def short_type(type_token: str) -> str:
    """`aws:secretsmanager/secret:Secret` -> `aws secretsmanager Secret` for headings."""
    parts = type_token.split(":")
    if len(parts) != 3:
        return type_token
    package, module, name = parts
    module = module.split("/")[0]
    return f"{package} {name}" if module in ("index", "") else f"{package} {module} {name}"
