"""The credentials secret: complete, consistent with the outputs, and working.

The document comes from Secrets Manager (or, in a rehearsal, from the value the
stack would store). Evidence names keys and fields, never their secret values: a
DATABASE_URL whose password is not URL-encoded (an `@`, `/`, `?` or `#` in it) splits
in the wrong places, and the pieces it then shows as host, port or database would be
parts of the password, so a piece sharing four characters with it is never shown.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping
from urllib.parse import parse_qs, quote, unquote, urlsplit

from ops.verify.checks.base import Finding, Severity, declare
from ops.core.credentials import CONTRACT_KEYS
from ops.core.db import Target, connect
from ops.core.errors import OpsError
from ops.core.outputs import StackOutputs

# Secret key -> (the output it must agree with, the field of the database outputs that holds it).
AGREEING_FIELDS = {"username": ("dbRole", "role"), "host": ("dbHost", "host"), "port": ("dbPort", "port"),
                   "database": ("dbName", "name"), "schema": ("dbSchema", "schema")}


@dataclass(frozen=True)
class SecretData:
    source: str
    document: Mapping[str, Any]
    outputs: StackOutputs
    login_target: Target  # where to log in (tunnel host/port applied)


def contract_keys(data: SecretData) -> list[Finding]:
    missing = [k for k in CONTRACT_KEYS if k not in data.document]
    if missing:
        return [Finding(Severity.HIGH, data.source, f"missing key(s): {', '.join(missing)}")]
    return []


def agrees_with_outputs(data: SecretData) -> list[Finding]:
    findings = []
    for key, (output, attribute) in AGREEING_FIELDS.items():
        if key not in data.document:
            continue  # SEC-001
        value = getattr(data.outputs.database, attribute)
        if str(data.document[key]) != str(value):
            findings.append(Finding(Severity.HIGH, f"{data.source} {key}",
                                    f"{key}={data.document[key]!r} but output {output}={value!r}"))
    return findings


def password_logs_in(data: SecretData) -> list[Finding]:
    user, password = data.document.get("username"), data.document.get("password")
    if not isinstance(user, str) or not isinstance(password, str) or not password:
        return [Finding(Severity.HIGH, data.source, "no username/password to log in with")]
    target = replace(data.login_target, user=user, password=password)
    try:
        connect(target).close()
    except OpsError as exc:
        return [Finding(Severity.HIGH, data.source, f"the secret's password does not log in: {exc}")]
    return []


# The longest run of a password's characters evidence may repeat (three: a run that short names nothing).
SHOWN_RUN = 3


def _shares_run(value: str, secret: str) -> bool:
    run = SHOWN_RUN + 1
    return any(secret[i:i + run] in value for i in range(len(secret) - run + 1))


def _shown(value: Any, password: Any) -> str:
    """`value` quoted for evidence, unless it holds part of the password (raw or URL-encoded)."""
    if isinstance(password, str) and password and any(
            _shares_run(str(value), form) for form in {password, quote(password, safe="")}):
        return "a value holding part of the password (is the password URL-encoded?)"
    return repr(value)


def _normal(key: str, value: str) -> str:
    return value.lower() if key == "host" else value  # host names are case-insensitive, the rest is not


def database_url(data: SecretData) -> list[Finding]:
    url = data.document.get("DATABASE_URL")
    if not isinstance(url, str) or not url:
        return [Finding(Severity.HIGH, data.source, "DATABASE_URL is missing or empty")]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return [Finding(Severity.HIGH, data.source, "DATABASE_URL does not parse as a URL (a port or bracket is wrong)")]
    password = data.document.get("password")
    if parts.scheme not in ("postgresql", "postgres"):
        return [Finding(Severity.HIGH, data.source,
                        f"DATABASE_URL scheme is {_shown(parts.scheme, password)}, not postgresql")]
    query = parse_qs(parts.query)
    seen = {
        "username": unquote(parts.username or ""),
        "host": parts.hostname or "",
        "port": str(port or 5432),
        "database": unquote(parts.path.lstrip("/")),
        "schema": (query.get("schema") or ["public"])[0],
    }
    findings = [Finding(Severity.HIGH, f"{data.source} DATABASE_URL",
                        f"{key} in DATABASE_URL is {_shown(value, password)} but the secret's {key} is "
                        f"{_shown(data.document.get(key), password)}")
                for key, value in seen.items()
                if key in data.document and _normal(key, str(data.document[key])) != _normal(key, value)]
    if unquote(parts.password or "") != password:
        findings.append(Finding(Severity.HIGH, f"{data.source} DATABASE_URL",
                                "the password in DATABASE_URL (URL-decoded) differs from the password key"))
    return findings


CHECKS = declare("secret", {  # titles, severities, remediations: checks.toml
    "SEC-001": contract_keys, "SEC-002": agrees_with_outputs, "SEC-003": password_logs_in, "SEC-004": database_url,
})
