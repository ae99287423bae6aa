"""bcrypt password hashes as Umami stores them, the same on every run.

Umami 3.1 hashes passwords with bcryptjs at cost 10 and checks them with `compareSync`
(src/lib/password.ts), which accepts `$2b$` hashes; `user.password` is varchar(60), a hash's length.
The hash is computed in the program by the `bcrypt` library. Its salt is not drawn at each run
(that would change the secret, hence the preview, every time) but derived from 16 random bytes
that `pulumi_random.RandomBytes` keeps in state, as components/shared/scram.py does for its salt.

bcrypt writes a 16-byte salt as 22 characters of its own base64: the standard bit packing with
the alphabet `./A-Za-z0-9` and no padding.
"""

from __future__ import annotations

import base64
import re

import bcrypt

COST = 10
SALT_LENGTH = 16
PREFIX = "$2b$"
HASH = re.compile(r"^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$")

_STANDARD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BCRYPT = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_TO_BCRYPT = str.maketrans(_STANDARD, _BCRYPT)


def salt(raw: bytes, cost: int = COST) -> bytes:
    """bcrypt's salt string (`$2b$10$` + 22 characters) for exactly 16 bytes of randomness."""
    if len(raw) != SALT_LENGTH:
        raise ValueError(f"a bcrypt salt is {SALT_LENGTH} bytes, not {len(raw)}")
    encoded = base64.b64encode(raw).decode("ascii").rstrip("=").translate(_TO_BCRYPT)
    return f"{PREFIX}{cost:02d}${encoded}".encode("ascii")


def password_hash(password: str, raw_salt: bytes, cost: int = COST) -> str:
    """The bcrypt hash of `password` with the salt derived from `raw_salt`."""
    return bcrypt.hashpw(password.encode("utf-8"), salt(raw_salt, cost)).decode("ascii")


def password_hash_from_b64_salt(password: str, salt_b64: str) -> str:
    """`password_hash` with the salt as pulumi_random.RandomBytes reports it (standard base64)."""
    return password_hash(password, base64.b64decode(salt_b64, validate=True))


def is_hash(value: str) -> bool:
    """True when `value` has the shape of a bcrypt hash (and so is no plain password)."""
    return bool(HASH.match(value))
