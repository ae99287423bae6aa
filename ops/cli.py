"""What every ops command line shares: progress on stderr, and one way to fail."""

from __future__ import annotations

import sys
from typing import Any, Callable

from ops.errors import OpsError


def progress(message: str, prefix: str = "") -> None:
    """Progress goes to stderr, so stdout stays the report."""
    print(f"{prefix}{message}", file=sys.stderr, flush=True)


def run_command_line(command: Callable[[Any], int], args: Any) -> int:
    """Run a CLI command; an OpsError becomes `error: <reason>` on stderr and exit code 2."""
    try:
        return command(args)
    except OpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
