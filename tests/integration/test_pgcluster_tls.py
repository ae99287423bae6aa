"""The throwaway cluster speaks TLS only, like RDS, with its own private CA."""

import psycopg
import pytest
from cryptography import x509

from ops.engine import pgcluster
from ops.core.db import Target, target_from_dsn
from ops.core.errors import OpsError
from ops.rehearse.database import Database, local_database
from ops.rehearse.stack import rehearsal_config
from ops.rehearse.state import State


def login(cluster, **tls):
    return dict(host="127.0.0.1", port=cluster.port, user=pgcluster.SUPERUSER,
                password=cluster.superuser_password, dbname="postgres", connect_timeout=10, **tls)


def test_plain_connection_is_refused(pg_cluster):
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(**login(pg_cluster, sslmode="disable"))


def test_verify_full_with_the_cluster_ca_is_encrypted(pg_cluster):
    with psycopg.connect(**login(pg_cluster, sslmode="verify-full", sslrootcert=str(pg_cluster.ca_file))) as conn:
        ssl, version = conn.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert ssl is True
    assert version.startswith("TLSv1.")


def test_conninfo_verifies_the_server(pg_cluster):
    info = psycopg.conninfo.conninfo_to_dict(pg_cluster.conninfo("u", "p"))
    assert (info["sslmode"], info["sslrootcert"]) == ("verify-full", str(pg_cluster.ca_file))


def test_a_ca_that_did_not_sign_the_server_certificate_is_refused(pg_cluster, tmp_path):
    other_ca, _, _ = pgcluster.issue_certificates(("localhost",))
    (tmp_path / "other-ca.pem").write_bytes(other_ca)
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(**login(pg_cluster, sslmode="verify-full", sslrootcert=str(tmp_path / "other-ca.pem")))


def test_server_certificate_names_localhost_and_127_0_0_1(pg_cluster):
    cert = x509.load_pem_x509_certificate((pg_cluster.data_dir / "server.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    ca = x509.load_pem_x509_certificate(pg_cluster.ca_file.read_bytes())
    assert cert.issuer == ca.subject
    assert (pg_cluster.data_dir / "server.key").stat().st_mode & 0o077 == 0


def test_plain_cluster_has_no_tls(plain_cluster):
    assert plain_cluster.ca_file is None
    with plain_cluster.connect(pgcluster.SUPERUSER, plain_cluster.superuser_password) as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (False,)
    with pytest.raises(psycopg.OperationalError, match="does not support SSL"):
        psycopg.connect(**login(plain_cluster, sslmode="require"))


# -- the rehearsal points the stack at the cluster's TLS ------------------------------------

def test_throwaway_rehearsal_uses_verify_full_with_the_cluster_ca(pg_cluster):
    admin = Target("127.0.0.1", pg_cluster.port, "appdb", "postgres", "pw", "verify-full",
                   sslrootcert=str(pg_cluster.ca_file))
    config, _ = rehearsal_config("dev", Database(admin=admin, local=pg_cluster), {})
    assert (config["umami:dbSslMode"], config["umami:dbCaCertificate"]) == ("verify-full", str(pg_cluster.ca_file))


def test_dsn_rehearsal_takes_sslmode_and_ca_from_the_dsn_unless_set(aurora):
    db = Database(admin=target_from_dsn(aurora.admin_dsn()))
    config, _ = rehearsal_config("dev", db, {})
    assert (config["umami:dbSslMode"], config["umami:dbCaCertificate"]) == ("verify-full", str(aurora.cluster.ca_file))
    config, _ = rehearsal_config("dev", db, {"umami:dbCaCertificate": "/elsewhere/ca.pem", "umami:dbSslMode": "require"})
    assert (config["umami:dbSslMode"], config["umami:dbCaCertificate"]) == ("require", "/elsewhere/ca.pem")


def test_dsn_without_a_usable_sslmode_is_one_line():
    db = Database(admin=target_from_dsn("postgresql://postgres:pw@db.example.com/appdb"))
    with pytest.raises(OpsError, match=r"^--dsn has sslmode=prefer .*sslmode=verify-full&sslrootcert=PATH"):
        rehearsal_config("dev", db, {})


def test_a_throwaway_cluster_from_before_tls_is_refused_with_what_to_do(tmp_path):
    (tmp_path / "cluster" / "pgdata").mkdir(parents=True)
    (tmp_path / "cluster" / "pgdata" / "PG_VERSION").write_text("15\n")
    with pytest.raises(OpsError, match="was created without TLS; stop it"):
        local_database(State(tmp_path / "state.json"), tmp_path)
