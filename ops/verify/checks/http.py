"""One HTTP exchange bounded by one deadline: connect, send, headers and body together.

A socket timeout alone bounds each read, not the exchange: a server that sends
one byte every second never trips it. Here every read gets only the time left
until the deadline, so a trickling server is cut off when the timeout is spent.
"""

from __future__ import annotations

import http.client
import io
import json
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from ops.core.errors import OpsError

MAX_BODY = 65536
MAX_REDIRECTS = 3
USER_AGENT = "Mozilla/5.0 (umami-ops verify)"  # Umami drops bot user agents on some endpoints
# A GET follows every redirect; a POST only those that keep the method and body.
REDIRECTS = {"GET": {301, 302, 303, 307, 308}, "POST": {307, 308}}


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes


class _Deadline:
    def __init__(self, timeout: float):
        self.timeout = timeout
        self.at = time.monotonic() + timeout

    def remaining(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left


class _DeadlineReader(io.RawIOBase):
    """The socket as a raw stream whose every read is bounded by the time left."""

    def __init__(self, sock, deadline: _Deadline):
        # The socket's own stream keeps it open after HTTPConnection.close(), as http.client expects.
        self._sock, self._raw, self._deadline = sock, sock.makefile("rb", buffering=0), deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self._sock.settimeout(self._deadline.remaining())
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineSocket:
    """What http.client.HTTPResponse needs of a socket: makefile('rb')."""

    def __init__(self, sock, deadline: _Deadline):
        self._sock, self._deadline = sock, deadline

    def makefile(self, mode: str, *args, **kwargs):
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


def _exchange(url: str, method: str, body: bytes | None, deadline: _Deadline) -> tuple[int, bytes, str | None]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OpsError(f"{method} {url}: not an http(s) URL")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=deadline.remaining(),
                                           context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=deadline.remaining())
    conn.response_class = lambda sock, **kw: http.client.HTTPResponse(_DeadlineSocket(sock, deadline), **kw)
    try:
        conn.connect()
        conn.sock.settimeout(deadline.remaining())
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json", "Connection": "close"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        with conn.getresponse() as response:
            try:
                data = response.read(MAX_BODY)
            except http.client.IncompleteRead as exc:
                data = exc.partial
            return response.status, data, response.getheader("Location")
    finally:
        conn.close()


def http_request(url: str, *, timeout: float, payload: dict[str, Any] | None = None) -> HttpAnswer:
    """GET (or POST JSON) within `timeout` seconds in all; any HTTP status is an answer,
    no answer in time (or no connection) is an OpsError."""
    method = "POST" if payload is not None else "GET"
    body = json.dumps(payload).encode() if payload is not None else None
    deadline = _Deadline(timeout)
    current = url
    try:
        for _ in range(MAX_REDIRECTS + 1):
            status, data, location = _exchange(current, method, body, deadline)
            if status not in REDIRECTS[method] or not location:
                return HttpAnswer(status, data)
            current = urljoin(current, location)
        return HttpAnswer(status, data)
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError since Python 3.10
            raise OpsError(f"{method} {url}: no complete answer within {timeout:g}s") from None
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise OpsError(f"{method} {url}: {reason}") from None
