"""Umami's own connection budget, and where the number came from.

The stack derives it (README, "Connection budget"): pool size x pools per task
(2 with a reader URL) x the most tasks that can run at once + Prisma's migration
connection + ops headroom; the role's CONNECTION LIMIT defaults to it. A snapshot
records what the outputs say (`dbConnectionBudget`, `dbConnectionLimit`) and the
role's live `rolconnlimit`; the diff judges Umami's connections against the first
of those that is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ops.core.outputs import StackOutputs

PARTS = ("poolSize", "poolsPerTask", "maxTasks", "migrationConnections", "opsHeadroom")
FIELDS = PARTS + ("total",)


def from_outputs(outputs: StackOutputs) -> tuple[dict[str, int] | None, int | None]:
    """(dbConnectionBudget, dbConnectionLimit) of the outputs, as contract.parse validated them;
    missing ones are None (Pulumi drops nulls)."""
    budget = outputs.database.connection_budget
    return (budget.as_output() if budget else None), outputs.database.connection_limit


def arithmetic(parts: dict[str, int]) -> str:
    """'10x1x4+1+3'."""
    return (f"{parts['poolSize']}x{parts['poolsPerTask']}x{parts['maxTasks']}"
            f"+{parts['migrationConnections']}+{parts['opsHeadroom']}")


def computed_total(parts: dict[str, int]) -> int:
    return (parts["poolSize"] * parts["poolsPerTask"] * parts["maxTasks"]
            + parts["migrationConnections"] + parts["opsHeadroom"])


@dataclass(frozen=True)
class Budget:
    """The number Umami's connections are judged against."""

    total: int
    source: str                    # "dbConnectionBudget", "dbConnectionLimit" or "rolconnlimit"
    parts: dict[str, int] | None = None

    def describe(self) -> str:
        """'budget 44 = 10x1x4+1+3', 'budget 44 (outputs dbConnectionLimit)', 'budget 10 (rolconnlimit)'."""
        if self.parts is not None:
            text = f"budget {self.total} = {arithmetic(self.parts)}"
            if computed_total(self.parts) != self.total:
                text += f" (which is {computed_total(self.parts)}: the outputs disagree with themselves)"
            return text
        if self.source == "rolconnlimit":
            return f"budget {self.total} (the role's rolconnlimit; the outputs carry no budget)"
        return f"budget {self.total} (outputs {self.source})"

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "source": self.source, "parts": self.parts, "text": self.describe()}


def resolve(doc: dict[str, Any]) -> Budget | None:
    """Umami's budget as a snapshot knows it, or None (no budget in the outputs, no role limit)."""
    stack = doc["stack"]
    parts = stack.get("connectionBudget")
    if parts is not None:
        return Budget(parts["total"], "dbConnectionBudget", parts)
    limit = stack.get("connectionLimit")
    if limit is not None and limit >= 0:
        return Budget(limit, "dbConnectionLimit")
    live = doc["database"]["connections"]["umamiRoleLimit"]
    if live is not None and live >= 0:
        return Budget(live, "rolconnlimit")
    return None
