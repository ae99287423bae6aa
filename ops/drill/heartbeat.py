"""Umami's heartbeat through the load balancer: what a visitor would get right now.

During a drill an error is an answer too (the service may be down): it is reported, never raised.
"""

from __future__ import annotations

from dataclasses import dataclass

from facts import HEARTBEAT_PATH
from ops.core.errors import OpsError
from ops.verify.checks.http import http_request


@dataclass(frozen=True)
class Heartbeat:
    ok: bool
    answer: str  # "HTTP 200", "HTTP 503", or why there was no answer


def heartbeat_url(url: str) -> str:
    return url.rstrip("/") + HEARTBEAT_PATH


def check(url: str, timeout: float) -> Heartbeat:
    """GET <url>/api/heartbeat within `timeout` seconds; 200 is healthy, anything else is not."""
    try:
        answer = http_request(heartbeat_url(url), timeout=timeout)
    except OpsError as exc:
        return Heartbeat(False, f"no answer ({str(exc).split(': ', 1)[-1]})")
    return Heartbeat(answer.status == 200, f"HTTP {answer.status}")
