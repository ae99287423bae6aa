"""Reading one config namespace: typed getters that record problems instead of raising, the
`ConfigError` they add up to, how a value is shown in a problem line, and the validators several
sections share.

Every problem is one line naming the key, the value and what is allowed; values are shown with
control characters escaped and cut after MAX_SHOWN characters; secret values are never shown.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Callable

import pulumi

from components.config.keys import KNOWN_KEYS, SECRET_KEYS
from facts import SECRET_MASK

MAX_SHOWN = 120  # characters of a value shown in an error line (a whole ACM or ECS ARN fits)
HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def show(value: Any, limit: int = MAX_SHOWN) -> str:
    """`value` as an error line may show it: control and other invisible characters escaped like
    repr does (\\x07, \\u200b), and cut after `limit` characters with "…"."""
    text = value if isinstance(value, str) else str(value)
    shown: list[str] = []
    length = 0
    for char in text:
        piece = _escaped(char)
        if length + len(piece) > limit:
            return "".join(shown) + "…"
        shown.append(piece)
        length += len(piece)
    return "".join(shown)


def _escaped(char: str) -> str:
    """`char`, or its repr-style escape when it is a control, format or line-separating character."""
    if unicodedata.category(char)[0] != "C" and unicodedata.category(char) not in ("Zl", "Zp"):
        return char
    code = ord(char)
    if code < 0x100:
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, f"\\x{code:02x}")
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def one_line(problem: str) -> str:
    """A problem line with any control character escaped (values are also cut in `Reader.fail`)."""
    return show(problem, limit=10_000)


class ConfigError(pulumi.RunError):
    """Invalid stack configuration; the message holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = [one_line(problem) for problem in problems]
        super().__init__("\n".join(self.problems))


class Reader:
    """Typed getters over one config namespace that record problems instead of raising.

    Only keys of KNOWN_KEYS can be read. A key set to a YAML null (which reaches the program as
    "null" offline and as "" from the CLI) or to an empty string is a problem, never "unset".
    """

    def __init__(self, config: pulumi.Config):
        self.config = config
        self.problems: list[str] = []
        self.nulls: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.config.name}:{name}"

    def is_secret(self, name: str) -> bool:
        """A secret by meaning (SECRET_KEYS) or because it was given as one (`secure:`, secret keys)."""
        key = self.key(name)
        return (name in SECRET_KEYS or pulumi.runtime.is_config_secret(key)
                or key in pulumi.runtime.get_config_secret_keys_env())

    def fail(self, name: str, value: Any, allowed: str) -> None:
        shown = SECRET_MASK if self.is_secret(name) else show(value)
        self.problems.append(f"{show(self.key(name))}={shown} {allowed}")

    def get(self, name: str) -> str | None:
        """The value as configured; reading a key missing from KNOWN_KEYS is a programming error."""
        if name not in KNOWN_KEYS:
            raise KeyError(f"{self.key(name)} is read but not listed in components.config.KNOWN_KEYS")
        return self.config.get(name)

    def raw(self, name: str) -> str | None:
        """The value stripped, or None when unset; a null or empty value is reported (once) as a problem."""
        value = self.get(name)
        if value is None:
            return None
        if value.strip() in ("", "null"):
            if name not in self.nulls:
                self.nulls.add(name)
                self.fail(name, value.strip() or '""', "is null or empty; set a value, or remove the key "
                          "to use the default")
            return None
        return value.strip()

    def missing(self, name: str) -> None:
        """A required key is absent (a null or empty one was reported already)."""
        if name not in self.nulls:
            self.problems.append(f"{self.key(name)} is required")

    def string(self, name: str, default: str | None = None, *, required: bool = False,
               check: Callable[[str], str | None] | None = None) -> str | None:
        value = self.raw(name)
        if value is None:
            if required:
                self.missing(name)
            return default
        if check:
            problem = check(value)
            if problem:
                self.fail(name, value, problem)
        return value

    def integer(self, name: str, default: int, low: int, high: int, unit: str = "") -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            self.fail(name, value, f"is not a whole number; use {low}-{high}{unit}")
            return default
        if not low <= number <= high:
            self.fail(name, value, f"is out of range; use {low}-{high}{unit}")
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.fail(name, value, "is not a boolean; use true or false")
        return default

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.raw(name)
        if value is None:
            return default
        if value not in allowed:
            self.fail(name, value, f"is not allowed; use one of {', '.join(allowed)}")
        return value

    def object(self, name: str, kind: type, default: Any) -> Any:
        if self.raw(name) is None:
            return default
        try:
            value = self.config.get_object(name)
        except Exception:  # noqa: BLE001 pulumi raises a bare JSON error here
            self.fail(name, self.config.get(name), f"is not valid JSON; use a {kind.__name__}")
            return default
        if value is None:
            return default
        if not isinstance(value, kind):
            self.fail(name, value, f"is not a {kind.__name__}")
            return default
        return value

    def secret(self, name: str) -> pulumi.Output[str] | None:
        """A key of SECRET_KEYS as a Pulumi secret, also when it was set without `--secret`."""
        if name not in SECRET_KEYS:
            raise KeyError(f"{self.key(name)} is read as a secret but not listed in components.config.SECRET_KEYS")
        if self.raw(name) is None:
            return None
        return self.config.require_secret(name)


def pattern_problem(pattern: re.Pattern[str], allowed: str) -> Callable[[str], str | None]:
    """A validator that accepts what `pattern` matches and otherwise says what is allowed."""
    return lambda value: None if pattern.match(value) else allowed


def first_problem(*checks: Callable[[str], str | None]) -> Callable[[str], str | None]:
    """A validator reporting the first problem any of `checks` finds."""
    return lambda value: next((p for p in (check(value) for check in checks) if p), None)


def read_list(reader: Reader, name: str, check: Callable[[str], str | None], *, default: list[str] | None = None,
              minimum: int = 0, maximum: int = 100, what: str = "entries") -> tuple[str, ...]:
    """A list of strings: each checked, no duplicates, between `minimum` and `maximum` long."""
    if reader.raw(name) is None:
        if default is None:
            reader.missing(name)
        return tuple(default or ())
    values = reader.object(name, list, None)
    if values is None:  # not a JSON list: already reported
        return tuple(default or ())
    clean: list[str] = []
    for value in values:
        problem = check(value) if isinstance(value, str) else f"is not a string; list {what}"
        if problem:
            reader.fail(name, value, problem)
        elif value in clean:
            reader.fail(name, value, f"is listed twice; list each of the {what} once")
        else:
            clean.append(value)
    if not values and minimum:
        reader.fail(name, "[]", f"is empty; list {minimum} or more {what}")
    elif len(values) < minimum:
        reader.fail(name, ",".join(map(str, values)), f"has {len(values)} {'entry' if len(values) == 1 else 'entries'}; list {minimum} or more {what}"
                    + (" (the load balancer spans two Availability Zones)" if minimum == 2 else ""))
    elif len(values) > maximum:
        reader.fail(name, f"[{len(values)} entries]", f"is too long; list at most {maximum} {what}")
    return tuple(clean)


def region_problem(arn: str | None) -> str | None:
    """An ARN in another region than the stack's `aws:region` cannot be used by the ALB or ECS."""
    stack_region = pulumi.Config("aws").get("region")
    arn_region = arn.split(":")[3] if arn and arn.count(":") >= 5 else None
    if stack_region and arn_region and arn_region != stack_region:
        return f"is in {arn_region} but the stack deploys to {stack_region} (aws:region); use a resource in {stack_region}"
    return None
