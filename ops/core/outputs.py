"""Load the stack outputs (the contract between the Pulumi program and ops, contract.py).

They come from `pulumi stack output --json --stack NAME` or from a JSON file of
the same shape (the rehearsal writes one). See README, "Stack outputs".
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import contract
from contract import (  # noqa: F401  the typed outputs, re-exported for ops
    CONTRACT_VERSION, ConnectionBudget, DatabaseOutputs, MonitoringOutputs, SecretsOutputs, ServiceOutputs,
    StackOutputs,
)
from ops.core.errors import OpsError
from ops.core.jsonfile import read_json


def parse_outputs(data: Any, source: str) -> StackOutputs:
    """contract.parse, its error an OpsError."""
    try:
        return contract.parse(data, source)
    except contract.ContractError as exc:
        raise OpsError(str(exc)) from None


def load_outputs_file(path: str | Path) -> StackOutputs:
    return parse_outputs(read_json(path, "outputs file"), str(path))


def load_stack_outputs(stack: str) -> StackOutputs:
    if shutil.which("pulumi") is None:
        raise OpsError("the pulumi CLI is not installed; pass --outputs FILE (pulumi stack output --json > FILE)")
    result = subprocess.run(
        ["pulumi", "stack", "output", "--json", "--stack", stack],
        capture_output=True, text=True, timeout=120,
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["unknown error"]
        raise OpsError(f"pulumi stack output --stack {stack} failed: {lines[-1]}")
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise OpsError(f"pulumi stack output --stack {stack} did not print JSON") from None
    return parse_outputs(data, f"stack {stack}")


def load(stack: str | None, outputs_file: str | None) -> StackOutputs:
    """Outputs from exactly one of --stack / --outputs."""
    if bool(stack) == bool(outputs_file):
        raise OpsError("pass exactly one of --stack NAME or --outputs FILE")
    return load_outputs_file(outputs_file) if outputs_file else load_stack_outputs(stack)
