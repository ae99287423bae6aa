"""The umami role's SCRAM-SHA-256 verifier on a real PostgreSQL 15: stored as is, and the plain
password logs in (scram-sha-256 authentication, as on Aurora)."""

import base64
import secrets

import psycopg
import pytest
from psycopg import sql

from components.shared import scram
from components.secrets import PASSWORD_SPECIALS

ROLE = "umami_scram_probe"


def generated_like_password() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" + PASSWORD_SPECIALS
    return "".join(secrets.choice(alphabet) for _ in range(40))


def test_a_role_created_with_the_verifier_logs_in_with_the_plain_password(aurora):
    password = generated_like_password()
    verifier = scram.verifier(password, secrets.token_bytes(scram.SALT_LENGTH))
    # As the provider does it, as the Aurora-like admin (CREATEROLE, not a superuser).
    with aurora.connect_as(aurora.admin, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} WITH ENCRYPTED PASSWORD {} VALID UNTIL 'infinity' LOGIN").format(
            sql.Identifier(ROLE), sql.Literal(verifier)))
    with aurora.superuser_conn() as superuser:
        stored = superuser.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (ROLE,)).fetchone()[0]
    assert stored == verifier  # stored as is: the server never had the password
    with aurora.cluster.connect(ROLE, password, aurora.dbname) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == ROLE
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        aurora.cluster.connect(ROLE, password + "x", aurora.dbname).close()


def test_libpq_builds_the_same_verifier_from_the_same_salt(aurora):
    """libpq's PQencryptPasswordConn (random salt) and ours agree once given its salt."""
    password = generated_like_password()
    with aurora.connect_as(aurora.admin) as conn:
        theirs = conn.pgconn.encrypt_password(password.encode(), ROLE.encode(), b"scram-sha-256").decode()
    salt = base64.b64decode(theirs.split("$")[1].split(":")[1])
    assert scram.verifier(password, salt) == theirs
