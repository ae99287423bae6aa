"""The rehearsal's state between runs: state.json (generated values, the local cluster's logins,
the resources applied), where it lives, and the lock that keeps two runs off it."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops.core.db import target_from_dsn
from ops.core.errors import OpsError
from ops.core.private_file import write_private
from ops.engine.program import PROJECT_ROOT, Resource

STATE_ROOT = PROJECT_ROOT / ".rehearsal"


# -- state ----------------------------------------------------------------------

@dataclass
class State:
    """What survives between runs: generated values, the local cluster's logins, and the
    resources applied (inputs and outputs, like a Pulumi checkpoint)."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "State":
        if path.exists():
            try:
                return cls(path, json.loads(path.read_text()))
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise OpsError(f"rehearsal state {path} is corrupt; delete {path.parent} to start over") from None
        return cls(path, {})

    def save(self) -> None:
        write_private(self.path, json.dumps(self.data, indent=2, sort_keys=True))

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.data.setdefault("resources", {})

    @property
    def order(self) -> list[str]:
        return self.data.setdefault("order", [])

    @property
    def pending_deletes(self) -> list[dict[str, Any]]:
        """Replaced resources whose old instance still has to be deleted (Pulumi's `delete: true`)."""
        return self.data.setdefault("pendingDeletes", [])

    def record(self, urn: str, entry: dict[str, Any]) -> None:
        self.resources[urn] = entry
        if urn not in self.order:
            self.order.append(urn)
        self.save()

    def forget(self, urn: str) -> None:
        self.resources.pop(urn, None)
        if urn in self.order:
            self.order.remove(urn)
        self.save()


@dataclass
class Entry:
    """A resource as the state knows it (for labels of resources no longer declared)."""

    urn: str
    data: dict[str, Any]

    @property
    def type(self) -> str:
        return self.data["type"]

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def outputs(self) -> dict[str, Any]:
        return self.data["outputs"]


def random_value(resource: Resource) -> str:
    """A real random value honouring RandomPassword's length, specials and minimums."""
    inputs = resource.inputs
    length = int(inputs.get("length", 32))
    classes = {
        "lower": (string.ascii_lowercase, inputs.get("lower", True), int(inputs.get("minLower", 0))),
        "upper": (string.ascii_uppercase, inputs.get("upper", True), int(inputs.get("minUpper", 0))),
        "numeric": (string.digits, inputs.get("numeric", True), int(inputs.get("minNumeric", 0))),
        "special": (inputs.get("overrideSpecial") or "!@#$%&*()-_=+[]{}<>:?",
                    inputs.get("special", True), int(inputs.get("minSpecial", 0))),
    }
    alphabet = "".join(chars for chars, enabled, _ in classes.values() if enabled)
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(length))
        if all(sum(c in chars for c in value) >= minimum
               for chars, enabled, minimum in classes.values() if enabled):
            return value



def state_dir_for(stack: str, dsn: str | None) -> Path:
    if not dsn:
        return STATE_ROOT / stack
    target = target_from_dsn(dsn)
    digest = hashlib.sha256(f"{target.host}:{target.port}/{target.dbname}".encode()).hexdigest()[:8]
    return STATE_ROOT / f"{stack}-{digest}"



# -- the lock file ------------------------------------------------------------------

class StateLock:
    """An exclusive lock on a state directory for the whole run: a second run is refused."""

    def __init__(self, base: Path, stack: str):
        self.path = base / "lock"
        self.stack = stack
        self.handle = None

    def __enter__(self) -> "StateLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "?"
            self.handle.close()
            raise OpsError(f"another rehearsal of stack {self.stack} is running (lock {self.path} held by "
                           f"pid {holder}); wait for it to finish") from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(str(os.getpid()))
        self.handle.flush()
        return self

    def __exit__(self, *exc) -> None:
        if self.handle:
            self.handle.seek(0)
            self.handle.truncate()
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()


