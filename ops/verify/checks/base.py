"""The vocabulary of checks: what a check declares, what it finds, what a run reports.

A `Check` is a small declared unit: an id (e.g. `ISO-020`), a title, the highest
severity it can report, a remediation sentence and a function that turns the
data of its family (one catalog query, one probe session, one API call) into
findings. Families load their data once and evaluate all their checks on it.

What a check says (id, title, severity, remediation) is data, in `checks.toml` next to this
module; each family's module only maps its ids to evaluate functions with `declare`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from enum import Enum
from functools import cache
from pathlib import Path
from string import Template
from typing import Any, Callable, Mapping

from ops.core.reporting import Severity  # the one severity model, shared with ops.preview

__all__ = ["Check", "CheckResult", "Finding", "FixAs", "NotApplicable", "Severity", "Status", "check_data", "declare",
           "result_from_findings"]

CHECKS_FILE = Path(__file__).with_name("checks.toml")


class Status(str, Enum):
    """The outcome of one check in one run."""

    PASS = "pass"
    INFO = "info"  # only informational findings
    FAIL = "fail"
    SKIPPED = "skipped"  # left out by --only/--skip
    NOT_APPLICABLE = "n/a"  # cannot apply here (rehearsal, database-only stack)


class FixAs(str, Enum):
    """Who can run a finding's fix: the admin (owner of the schema, grantor) or the umami role itself."""

    ADMIN = "admin"
    ROLE = "role"


@dataclass(frozen=True)
class Finding:
    """One thing a check saw: on what (`subject`), how it knows (`evidence`) and, when SQL repairs it,
    the exact statements (`fix`, each ending in `;`) and who must run them (`fix_as`)."""

    severity: Severity
    subject: str
    evidence: str
    fix: tuple[str, ...] = ()
    fix_as: FixAs = FixAs.ADMIN


@dataclass(frozen=True)
class Check:
    """A declared check. `evaluate` receives its family's data and returns findings."""

    id: str
    title: str
    severity: Severity
    remediation: str
    evaluate: Callable[[Any], list[Finding]]


@dataclass
class CheckResult:
    """A check's outcome: status, findings, as whom it ran, or why it did not."""

    check: Check
    family: str
    status: Status
    findings: list[Finding] = field(default_factory=list)
    ran_as: str | None = None
    reason: str | None = None
    duration_s: float = 0.0  # its share of the family's load and evaluate time (JUnit's `time`)

    @property
    def severity(self) -> Severity | None:
        """The worst finding's severity, None without findings."""
        return max((f.severity for f in self.findings), default=None)


def result_from_findings(check: Check, family: str, findings: list[Finding], ran_as: str) -> CheckResult:
    """PASS without findings, INFO with informational ones only, FAIL otherwise."""
    findings = sorted(findings, key=lambda f: (-f.severity, f.subject))
    if not findings:
        status = Status.PASS
    elif all(f.severity == Severity.INFO for f in findings):
        status = Status.INFO
    else:
        status = Status.FAIL
    return CheckResult(check=check, family=family, status=status, findings=findings, ran_as=ran_as)


class NotApplicable(Exception):
    """Raised by a check (or a family's loader) that cannot apply here; the message says why."""


@cache
def check_data() -> dict[str, tuple[dict[str, str], ...]]:
    """`checks.toml`, read once: family name -> its checks' id/title/severity/remediation, in order."""
    with CHECKS_FILE.open("rb") as f:
        return {family: tuple(checks) for family, checks in tomllib.load(f).items()}


def declare(family: str, evaluators: Mapping[str, Callable[[Any], list[Finding]]], **params: str) -> tuple[Check, ...]:
    """The family's checks in the data file's order, each with its evaluate function from `evaluators`.

    `params` fill `$NAME` placeholders in titles and remediations (e.g. HEARTBEAT_PATH).
    """
    entries = check_data().get(family, ())
    declared = [e["id"] for e in entries]
    if sorted(declared) != sorted(evaluators) or len(set(declared)) != len(declared):
        raise ValueError(f"{CHECKS_FILE.name} [{family}] declares {declared}, the module evaluates {sorted(evaluators)}")

    def text(value: str) -> str:
        return Template(value).substitute(params) if params else value

    return tuple(Check(e["id"], text(e["title"]), Severity[e["severity"]], text(e["remediation"]), evaluators[e["id"]])
                 for e in entries)
