"""The UserMetrics tagging schema, applied to every taggable AWS resource.

`Project`, `Component`, `Environment` and `ManagedBy` are set by the stack and
cannot be overridden by configured extras (config validation rejects that).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

PROJECT = "UserMetrics"
MANAGED_BY = "pulumi"


@dataclass(frozen=True)
class Tagging:
    environment: str
    extra: Mapping[str, str] = field(default_factory=dict)

    def for_component(self, component: str) -> dict[str, str]:
        """Tags for a resource belonging to `component` (database, secrets, service, monitoring)."""
        return {
            **dict(sorted(self.extra.items())),
            "Project": PROJECT,
            "Component": component,
            "Environment": self.environment,
            "ManagedBy": MANAGED_BY,
        }
