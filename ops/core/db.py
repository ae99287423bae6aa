"""Database connections for ops: gentle, labelled, and never leaking a password."""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import conninfo as pg_conninfo

from facts import LIBPQ_SSL_MODES as SSL_MODES
from facts import VERIFYING_SSL_MODES as VERIFYING_MODES  # noqa: F401  (re-exported)
from ops.core.errors import OpsError

APPLICATION_NAME = "umami-ops"
DEFAULT_STATEMENT_TIMEOUT_MS = 15_000
DEFAULT_LOCK_TIMEOUT_MS = 2_000

_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)([^@\s]*)(@)")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def one_line(exc: Exception) -> str:
    """A driver error as one redacted line (libpq puts its hint on a line of its own)."""
    return " ".join(line.strip() for line in redact(str(exc)).splitlines() if line.strip()) or type(exc).__name__


def redact(text: str) -> str:
    """Mask passwords in DSNs (URL or key=value form) anywhere in `text`."""
    text = _URL_PASSWORD.sub(r"\1***\3", text)
    return _KV_PASSWORD.sub(r"\1***", text)


# Keywords Target holds as fields; every other libpq keyword of a DSN travels in `params`.
_FIELDS = ("host", "port", "dbname", "user", "password", "sslmode", "passfile", "sslrootcert")


@dataclass(frozen=True)
class Target:
    """Where and as whom to connect. `password` may be None (libpq then uses PGPASSFILE).

    `sslrootcert` is the CA file for verify-ca/verify-full; `params` holds every other
    libpq keyword a DSN carried (sslcert, sslkey, target_session_attrs, options, ...),
    passed through to libpq unchanged.
    """

    host: str
    port: int
    dbname: str
    user: str
    password: str | None = None
    sslmode: str = "prefer"
    passfile: str | None = None  # a libpq passfile to look the password up in (the rehearsal's)
    sslrootcert: str | None = None
    params: Mapping[str, str] = field(default_factory=dict, hash=False)

    def conninfo(self, **extra) -> str:
        params: dict = dict(host=self.host, port=self.port, dbname=self.dbname, user=self.user,
                            sslmode=self.sslmode, connect_timeout=10, application_name=APPLICATION_NAME)
        params.update(self.params)  # the DSN's own choices win over ops' defaults
        if self.sslrootcert:
            params["sslrootcert"] = self.sslrootcert
        if self.password is not None:
            params["password"] = self.password
        elif self.passfile:
            params["passfile"] = self.passfile
        if extra.get("options") and self.params.get("options"):
            # Keep the DSN's options; ops' settings come last so its timeouts hold.
            extra = {**extra, "options": f"{self.params['options']} {extra['options']}"}
        params.update(extra)
        return pg_conninfo.make_conninfo(**params)

    def describe(self) -> str:
        via = self.params.get("hostaddr")
        return f"{self.user}@{self.host}{f' (via {via})' if via else ''}:{self.port}/{self.dbname}"

    def through(self, host: str | None, port: int | None) -> "Target":
        """The same login through a tunnel to `host`/`port`.

        With verify-full the certificate must still name the real server: libpq then
        connects to `hostaddr` (the tunnel's address) and checks the name in `host`.
        """
        if not host and not port:
            return self
        if host and self.sslmode == "verify-full":
            params = {**self.params, "hostaddr": _address_of(host)}
            return replace(self, port=port or self.port, params=MappingProxyType(params))
        return replace(self, host=host or self.host, port=port or self.port)


def _address_of(host: str) -> str:
    """A numeric address for libpq's hostaddr."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    for family in (socket.AF_INET, socket.AF_UNSPEC):  # tunnels usually listen on 127.0.0.1
        try:
            return socket.getaddrinfo(host, None, family=family, type=socket.SOCK_STREAM)[0][4][0]
        except (socket.gaierror, IndexError) as exc:
            error = exc
    raise OpsError(f"cannot resolve tunnel host {host!r}: {error}")


def target_from_dsn(dsn: str) -> Target:
    """Parse a libpq DSN (URL or key=value) into a Target, keeping every libpq keyword it
    carries; errors never echo the password."""
    try:
        params = pg_conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise OpsError(f"invalid DSN {redact(dsn)!r}: {redact(str(exc)).splitlines()[0]}") from None
    missing = [key for key in ("host", "user") if not params.get(key)]
    if missing:
        raise OpsError(f"DSN {redact(dsn)!r} lacks {', '.join(missing)}")
    try:
        port = int(params.get("port") or 5432)
    except ValueError:
        raise OpsError(f"DSN {redact(dsn)!r} has a non-numeric port") from None
    sslmode = params.get("sslmode") or "prefer"
    if sslmode not in SSL_MODES:
        raise OpsError(f"DSN {redact(dsn)!r} has sslmode={sslmode}; libpq allows {', '.join(SSL_MODES)}")
    extra = {key: str(value) for key, value in params.items() if key not in _FIELDS and value is not None}
    return Target(
        host=params["host"], port=port, dbname=params.get("dbname") or params["user"],
        user=params["user"], password=params.get("password"), sslmode=sslmode,
        passfile=params.get("passfile") or None, sslrootcert=params.get("sslrootcert") or None,
        params=MappingProxyType(extra),
    )


def connect(target: Target, *, read_only: bool = True,
            statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
            lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS) -> psycopg.Connection:
    """Open a connection with timeouts set; read-only transactions unless asked otherwise.

    Failures become an OpsError naming the target (never its password).
    """
    options = f"-c statement_timeout={statement_timeout_ms} -c lock_timeout={lock_timeout_ms}"
    if read_only:
        options += " -c default_transaction_read_only=on"
    try:
        return psycopg.connect(target.conninfo(options=options))
    except psycopg.OperationalError as exc:
        raise OpsError(f"cannot connect to {target.describe()}: {one_line(exc)}") from None


def redact_url(url: str) -> str:
    """A DATABASE_URL with its password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
