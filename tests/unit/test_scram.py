"""SCRAM-SHA-256 verifiers (components/shared/scram.py), checked the way a login checks them.

The verifier is only right if a SCRAM exchange with the plain password succeeds against it:
the server recovers ClientKey from the client's proof and finds StoredKey, and the client finds
the server's signature. The client side here is computed independently (Hi written out as
RFC 5802 defines it, not hashlib.pbkdf2_hmac), and RFC 7677's own exchange is replayed.
"""

import base64
import hashlib
import hmac
import re

import pytest

from components.shared import scram

VERIFIER = re.compile(r"^SCRAM-SHA-256\$(?P<i>\d+):(?P<salt>[A-Za-z0-9+/=]+)\$(?P<stored>[A-Za-z0-9+/=]+):"
                      r"(?P<server>[A-Za-z0-9+/=]+)$")
SALT = bytes(range(16))
PASSWORD = "Zx9%q!w(0)-_=+[]{}<>:?~#*aB3cD4eF5gH6iJ7"


def parse(verifier: str) -> tuple[int, bytes, bytes, bytes]:
    match = VERIFIER.match(verifier)
    assert match, verifier
    return (int(match["i"]), base64.b64decode(match["salt"]), base64.b64decode(match["stored"]),
            base64.b64decode(match["server"]))


def hi(password: bytes, salt: bytes, iterations: int) -> bytes:
    """RFC 5802 section 2.2, written out: U1 = HMAC(p, salt + INT(1)), Ui = HMAC(p, Ui-1), XOR of all."""
    u = hmac.new(password, salt + b"\x00\x00\x00\x01", hashlib.sha256).digest()
    result = bytearray(u)
    for _ in range(iterations - 1):
        u = hmac.new(password, u, hashlib.sha256).digest()
        result = bytearray(a ^ b for a, b in zip(result, u))
    return bytes(result)


def xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


def client_exchange(password: str, salt: bytes, iterations: int, auth_message: bytes) -> tuple[bytes, bytes]:
    """What a SCRAM client sends (ClientProof) and expects back (ServerSignature)."""
    salted = hi(password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    proof = xor(client_key, hmac.new(stored_key, auth_message, hashlib.sha256).digest())
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return proof, hmac.new(server_key, auth_message, hashlib.sha256).digest()


def server_accepts(verifier: str, auth_message: bytes, proof: bytes) -> tuple[bool, bytes]:
    """What PostgreSQL does with a stored verifier (auth-scram.c, verify_client_proof / build_server_final)."""
    _, _, stored_key, server_key = parse(verifier)
    client_key = xor(proof, hmac.new(stored_key, auth_message, hashlib.sha256).digest())
    accepted = hashlib.sha256(client_key).digest() == stored_key
    return accepted, hmac.new(server_key, auth_message, hashlib.sha256).digest()


def auth_message(user: str, salt: bytes, iterations: int) -> bytes:
    client_nonce, server_nonce = "fyko+d2lbbFgONRv9qkxdawL", "3rfcNHYJY1ZVvWVs7j"
    return (f"n={user},r={client_nonce},r={client_nonce}{server_nonce},s={base64.b64encode(salt).decode()},"
            f"i={iterations},c=biws,r={client_nonce}{server_nonce}").encode()


def test_format_is_postgresqls():
    iterations, salt, stored_key, server_key = parse(scram.verifier(PASSWORD, SALT))
    assert iterations == 4096 and salt == SALT and len(stored_key) == len(server_key) == 32


def test_a_scram_login_with_the_plain_password_succeeds_against_the_verifier():
    verifier = scram.verifier(PASSWORD, SALT)
    message = auth_message("umami_user", SALT, 4096)
    proof, expected_server_signature = client_exchange(PASSWORD, SALT, 4096, message)
    accepted, server_signature = server_accepts(verifier, message, proof)
    assert accepted
    assert server_signature == expected_server_signature  # the client trusts the server too


def test_a_wrong_password_is_refused():
    verifier = scram.verifier(PASSWORD, SALT)
    message = auth_message("umami_user", SALT, 4096)
    proof, _ = client_exchange(PASSWORD[:-1] + "x", SALT, 4096, message)
    assert server_accepts(verifier, message, proof)[0] is False


def test_rfc_7677_exchange_verifies():
    """RFC 7677 section 3: user "user", password "pencil", its salt, nonces, proof and signature."""
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    verifier = scram.verifier("pencil", salt)
    message = ("n=user,r=rOprNGfwEbeRWgbNEkqO,"
               "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
               "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0").encode()
    accepted, server_signature = server_accepts(
        verifier, message, base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
    assert accepted
    assert base64.b64encode(server_signature).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_same_salt_same_verifier_and_another_salt_another():
    assert scram.verifier(PASSWORD, SALT) == scram.verifier(PASSWORD, SALT)
    assert scram.verifier_from_b64_salt(PASSWORD, base64.b64encode(SALT).decode()) == scram.verifier(PASSWORD, SALT)
    assert scram.verifier(PASSWORD, SALT) != scram.verifier(PASSWORD, bytes(16))


def test_the_verifier_never_contains_the_password():
    verifier = scram.verifier(PASSWORD, SALT)
    assert PASSWORD not in verifier and scram.is_verifier(verifier)
    assert not scram.is_verifier(PASSWORD)
    assert not scram.is_verifier("SCRAM-SHA-256$" + PASSWORD)


@pytest.mark.parametrize("password, salt", [("", SALT), ("pässword", SALT), ("tab\there", SALT), (PASSWORD, b"short")])
def test_what_cannot_be_built_as_postgresql_would_is_refused(password, salt):
    with pytest.raises(ValueError):
        scram.verifier(password, salt)
