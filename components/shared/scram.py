"""SCRAM-SHA-256 password verifiers, built as PostgreSQL builds them.

The umami role's password reaches PostgreSQL only as a verifier
(`CREATE ROLE ... PASSWORD 'SCRAM-SHA-256$...'`): PostgreSQL stores a password
string that is already a SCRAM verifier as is ("If the presented password string
is already in MD5-encrypted or SCRAM-encrypted format, then it is stored as-is
regardless of password_encryption", CREATE ROLE, PostgreSQL 15 docs), so neither
the server log, pg_stat_statements nor Aurora's CloudWatch logs ever hold the
password, while a client logging in with the plain password still authenticates.

The format is PostgreSQL's (src/common/scram-common.c, scram_build_secret):

    SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>

    SaltedPassword = Hi(password, salt, iterations)      RFC 5802 2.2: PBKDF2-HMAC-SHA-256
    StoredKey      = SHA-256(HMAC(SaltedPassword, "Client Key"))
    ServerKey      = HMAC(SaltedPassword, "Server Key")

with 4096 iterations (PostgreSQL's scram_iterations default, RFC 7677's minimum) and
a 16-byte salt (PostgreSQL's SCRAM_DEFAULT_SALT_LEN). PostgreSQL first normalises
the password with SASLprep; for printable ASCII, all the generated passwords use,
SASLprep is the identity, so other passwords are refused here rather than guessed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

PREFIX = "SCRAM-SHA-256$"
ITERATIONS = 4096
SALT_LENGTH = 16


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def verifier(password: str, salt: bytes, iterations: int = ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL would store for `password` with `salt`."""
    if not password or not all(" " <= ch <= "~" for ch in password):
        raise ValueError("the password must be non-empty printable ASCII (SASLprep is then the identity)")
    if len(salt) < SALT_LENGTH:
        raise ValueError(f"the salt must be at least {SALT_LENGTH} bytes")
    if iterations < ITERATIONS:
        raise ValueError(f"use at least {ITERATIONS} iterations")
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("ascii"), salt, iterations)
    stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", hashlib.sha256).digest()).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return f"{PREFIX}{iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


def verifier_from_b64_salt(password: str, salt_b64: str) -> str:
    """`verifier` with the salt as pulumi_random.RandomBytes reports it (standard base64)."""
    return verifier(password, base64.b64decode(salt_b64, validate=True))


def is_verifier(value: str) -> bool:
    """True when `value` has the shape of a SCRAM-SHA-256 verifier (and so is no plain password)."""
    if not value.startswith(PREFIX):
        return False
    try:
        head, keys = value[len(PREFIX):].split("$")
        iterations, salt = head.split(":")
        stored_key, server_key = keys.split(":")
        return (int(iterations) >= 1 and len(base64.b64decode(salt, validate=True)) >= 1
                and len(base64.b64decode(stored_key, validate=True)) == 32
                and len(base64.b64decode(server_key, validate=True)) == 32)
    except ValueError:
        return False
