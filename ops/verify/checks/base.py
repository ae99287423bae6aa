"""The vocabulary of checks: what a check declares, what it finds, what a run reports.

A `Check` is a small declared unit: an id (e.g. `ISO-020`), a title, the highest
severity it can report, a remediation sentence and a function that turns the
data of its family (one catalog query, one probe session, one API call) into
findings. Families load their data once and evaluate all their checks on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable

from ops.core.reporting import Severity  # the one severity model, shared with ops.preview

__all__ = ["Check", "CheckResult", "Finding", "NotApplicable", "Severity", "Status", "result_from_findings"]


class Status(str, Enum):
    """The outcome of one check in one run."""

    PASS = "pass"
    INFO = "info"  # only informational findings
    FAIL = "fail"
    SKIPPED = "skipped"  # left out by --only/--skip
    NOT_APPLICABLE = "n/a"  # cannot apply here (rehearsal, database-only stack)


@dataclass(frozen=True)
class Finding:
    """One thing a check saw: on what (`subject`) and how it knows (`evidence`)."""

    severity: Severity
    subject: str
    evidence: str


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
