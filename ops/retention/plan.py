"""The retention plan, `driver/retention.json`: the statements the nightly job runs (driver/retention.mjs),
read here as they are, so `ops.retention` and the job never disagree on what goes.

Placeholders are filled exactly as the job fills them: `{doomed}` (a step's condition, which may
name `{schema}` itself), then `{table}` and `{schema}` as quoted identifiers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ops.core.errors import OpsError

PLAN_FILE = Path(__file__).resolve().parents[2] / "driver" / "retention.json"
TEMPLATES = ("cutoff", "missing", "count", "delete")


def quote(name: str) -> str:
    """`name` as a PostgreSQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _sql(lines: object, where: str) -> str:
    if not isinstance(lines, list) or not lines or not all(isinstance(line, str) for line in lines):
        raise OpsError(f"{PLAN_FILE}: {where} is not a list of SQL lines")
    return "\n".join(lines)


@dataclass(frozen=True)
class Step:
    """One table and the condition its rows are deleted on, in the order the job runs them."""

    table: str
    doomed: str


@dataclass(frozen=True)
class Plan:
    batch: int
    identifier: re.Pattern[str]
    session: tuple[str, ...]
    templates: dict[str, str]
    steps: tuple[Step, ...]

    def statement(self, name: str, schema: str, step: Step | None = None) -> str:
        """Template `name` (cutoff, missing, count, delete) for `schema` and `step`."""
        return self.fill(self.templates[name], schema, step)

    @staticmethod
    def fill(text: str, schema: str, step: Step | None = None) -> str:
        if step:
            text = text.replace("{doomed}", step.doomed).replace("{table}", quote(step.table))
        return text.replace("{schema}", quote(schema))

    def check_schema(self, schema: str) -> str:
        if not self.identifier.match(schema):
            raise OpsError(f"schema {schema!r} is not a plain identifier; the retention plan runs on plain names only")
        return schema

    @property
    def tables(self) -> list[str]:
        return [step.table for step in self.steps]


@cache
def load_plan(path: Path = PLAN_FILE) -> Plan:
    """The plan file, checked for the shape both readers rely on (a broken file is one OpsError line)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise OpsError(f"cannot read the retention plan {path}: {exc}") from None
    batch = data.get("batch")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise OpsError(f"{path}: batch={batch!r} is not a whole number of at least 1")
    steps = data.get("steps")
    if not isinstance(steps, list) or not steps or not all(isinstance(step, dict) for step in steps):
        raise OpsError(f"{path}: steps is not a list of tables")
    return Plan(
        batch=batch,
        identifier=re.compile(str(data.get("identifier"))),
        session=tuple(_sql(lines, f"session[{i}]") for i, lines in enumerate(data.get("session") or [])),
        templates={name: _sql(data.get(name), name) for name in TEMPLATES},
        steps=tuple(Step(str(step.get("table")), _sql(step.get("doomed"), f"steps[{i}].doomed"))
                    for i, step in enumerate(steps)),
    )
