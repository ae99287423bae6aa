"""Database TLS, reader endpoint, connection budget and Aurora cluster id: config to resources and outputs."""

import datetime
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from components.config import ConfigError, derived_cluster_identifier
from tests.stack import named, run_dev

REPO = Path(__file__).resolve().parents[2]
RDS_EU_WEST_1 = REPO / "components" / "shared" / "rds_ca" / "eu-west-1.pem"
PROVIDER = "pulumi:providers:postgresql"
ROLE = "postgresql:index/role:Role"
TASK_DEF = "aws:ecs/taskDefinition:TaskDefinition"
CA_ALLOWED = "use rds (Amazon RDS's CA for aws:region) or the path of a PEM file with the database's CA"
PLAIN = {"dbSslMode": "disable", "allowUnencryptedDatabase": "true"}
READER = "app-aurora.cluster-ro-abcdefghijkl.eu-west-1.rds.amazonaws.com"


def problem(overrides=None, remove=()) -> str:
    """The one line a bad config produces."""
    with pytest.raises(ConfigError) as error:
        run_dev(overrides, remove=remove)
    assert len(error.value.problems) == 1, error.value.problems
    return error.value.problems[0]


def ca_pem(days_valid: int = 365, name: str = "Test Database CA") -> tuple[str, str]:
    """A self-signed CA certificate and its key, as PEM; negative days give an expired one."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    start = now - datetime.timedelta(days=max(1, -days_valid) + 30)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(now + datetime.timedelta(days=days_valid))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def container(run) -> dict:
    return json.loads(named(run, TASK_DEF, "umami-task").inputs["containerDefinitions"])[0]


# -- sslmode --

@pytest.mark.parametrize("mode", ["prefer", "allow"])
def test_modes_that_fall_back_to_plain_text_are_refused(mode):
    assert problem({"dbSslMode": mode}) == (
        f"umami:dbSslMode={mode} is not supported: Umami's driver (node-postgres) never falls back to an "
        "unencrypted connection; use one of disable, require, verify-ca, verify-full")


def test_disable_needs_allow_unencrypted_database():
    assert problem({"dbSslMode": "disable"}) == (
        "umami:dbSslMode=disable sends the database password and data unencrypted; use verify-full, "
        "or set umami:allowUnencryptedDatabase=true to accept that")


def test_verify_full_with_the_regions_rds_bundle_is_the_default():
    run = run_dev(remove=("umami:dbSslMode", "umami:dbCaCertificate"))
    provider = run.one(PROVIDER).inputs
    assert provider["sslmode"] == "verify-full"
    assert provider["sslrootcert"] == str(RDS_EU_WEST_1)
    assert run.outputs["dbSslMode"] == "verify-full"
    assert run.outputs["dbCaBundle"] == RDS_EU_WEST_1.read_text()


def test_the_region_picks_the_bundle():
    run = run_dev({"aws:region": "us-east-2"})
    bundle = REPO / "components" / "shared" / "rds_ca" / "us-east-2.pem"
    assert run.one(PROVIDER).inputs["sslrootcert"] == str(bundle)
    assert run.outputs["dbCaBundle"] == bundle.read_text()
    assert {e["name"]: e["value"] for e in container(run)["environment"]}["UMAMI_DB_CA_PEM"] == bundle.read_text()


def test_disable_when_allowed_carries_no_ca_anywhere():
    run = run_dev(PLAIN)
    assert run.one(PROVIDER).inputs["sslmode"] == "disable"
    assert "sslrootcert" not in run.one(PROVIDER).inputs
    assert run.outputs.get("dbCaBundle") is None
    umami = container(run)
    names = {e["name"] for e in umami["environment"]}
    assert not names & {"UMAMI_DB_CA_PEM", "NODE_EXTRA_CA_CERTS"}
    assert "entryPoint" not in umami and "command" not in umami  # the image starts as it is


def test_disable_ignores_a_missing_ca_file():
    run = run_dev({**PLAIN, "dbCaCertificate": "/nonexistent/ca.pem"})
    assert run.outputs.get("dbCaBundle") is None


def test_verify_ca_gives_the_provider_the_ca_and_require_does_not():
    verify_ca = run_dev({"dbSslMode": "verify-ca"}).one(PROVIDER).inputs
    assert (verify_ca["sslmode"], verify_ca["sslrootcert"]) == ("verify-ca", str(RDS_EU_WEST_1))
    run = run_dev({"dbSslMode": "require"})
    assert run.one(PROVIDER).inputs["sslmode"] == "require" and "sslrootcert" not in run.one(PROVIDER).inputs
    # Umami and ops still get the CA (NODE_EXTRA_CA_CERTS; ops may verify with it).
    assert run.outputs["dbCaBundle"] == RDS_EU_WEST_1.read_text()
    assert "UMAMI_DB_CA_PEM" in {e["name"] for e in container(run)["environment"]}


# -- dbCaCertificate --

def test_a_pem_file_is_the_ca_and_only_its_certificates_travel(tmp_path, monkeypatch):
    cert, key = ca_pem()
    other, _ = ca_pem(name="Second CA")
    (tmp_path / "ca.pem").write_text(f"comment line\n{key}{cert}\r\n{other}".replace(other, other.replace("\n", "\r\n")))
    monkeypatch.chdir(tmp_path)
    run = run_dev({"dbCaCertificate": "ca.pem"})  # relative to the working directory, as pulumi runs the program
    assert run.one(PROVIDER).inputs["sslrootcert"] == str(tmp_path / "ca.pem")
    assert run.outputs["dbCaBundle"] == cert.rstrip("\n") + "\n" + other  # no key, no comment, LF endings
    assert "PRIVATE KEY" not in json.dumps(run.outputs) + named(run, TASK_DEF, "umami-task").inputs["containerDefinitions"]


def test_missing_ca_file_is_one_line():
    assert problem({"dbCaCertificate": "/nonexistent/ca.pem"}) == (
        f"umami:dbCaCertificate=/nonexistent/ca.pem is not a readable file; {CA_ALLOWED}")


def test_a_directory_is_not_a_ca_file(tmp_path):
    assert problem({"dbCaCertificate": str(tmp_path)}) == (
        f"umami:dbCaCertificate={tmp_path} is not a readable file; {CA_ALLOWED}")


def test_file_without_a_certificate_is_one_line(tmp_path):
    _, key = ca_pem()
    path = tmp_path / "key-only.pem"
    path.write_text(key)
    assert problem({"dbCaCertificate": str(path)}) == (
        f"umami:dbCaCertificate={path} holds no PEM certificate; {CA_ALLOWED}")


def test_file_with_a_broken_certificate_is_one_line(tmp_path):
    path = tmp_path / "broken.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
    assert problem({"dbCaCertificate": str(path)}) == (
        f"umami:dbCaCertificate={path} holds a certificate that does not parse; {CA_ALLOWED}")


def test_file_with_only_expired_certificates_is_one_line(tmp_path):
    cert, _ = ca_pem(days_valid=-2)
    path = tmp_path / "expired.pem"
    path.write_text(cert)
    assert problem({"dbCaCertificate": str(path)}) == (
        f"umami:dbCaCertificate={path} holds only expired certificates; {CA_ALLOWED}")


def test_rds_needs_a_region_with_a_bundle():
    assert problem({"aws:region": "us-gov-west-1"}) == (
        "umami:dbCaCertificate=rds has no Amazon RDS CA bundle for aws:region=us-gov-west-1 (components/shared/rds_ca); "
        "give the path of a PEM file with the database's CA")
    assert problem(remove=("aws:region",)) == (
        "umami:dbCaCertificate=rds needs aws:region to pick Amazon RDS's regional CA; set aws:region "
        "or give the path of a PEM file with the database's CA")


# -- reader endpoint --

def test_reader_endpoint_adds_the_replica_secret_to_the_container():
    run = run_dev({"dbReaderHost": READER})
    secrets = {s["name"]: s["valueFrom"] for s in container(run)["secrets"]}
    assert secrets["DATABASE_REPLICA_URL"] == f"{run.outputs['dbSecretArn']}:DATABASE_REPLICA_URL::"
    assert run.outputs["dbReaderHost"] == READER


def test_no_reader_no_replica():
    run = run_dev()
    assert "DATABASE_REPLICA_URL" not in {s["name"] for s in container(run)["secrets"]}
    assert run.outputs.get("dbReaderHost") is None


@pytest.mark.parametrize("value, expected", [
    ("not a host", "umami:dbReaderHost=not a host is not a hostname; use the Aurora reader endpoint (NAME.cluster-ro-...)"),
    ("APP-AURORA.cluster-abcdefghijkl.eu-west-1.rds.amazonaws.com",
     "umami:dbReaderHost=APP-AURORA.cluster-abcdefghijkl.eu-west-1.rds.amazonaws.com is umami:dbHost; "
     "use the reader endpoint (NAME.cluster-ro-...) or leave it unset"),
])
def test_bad_reader_endpoint_is_one_line(value, expected):
    assert problem({"dbReaderHost": value}) == expected


# -- connection budget --

def test_default_budget_is_44_and_is_the_roles_limit():
    run = run_dev(remove=("umami:connectionLimit", "umami:dbPoolSize"))
    assert run.one(ROLE).inputs["connectionLimit"] == 44
    assert run.outputs["dbConnectionLimit"] == 44 and run.outputs["dbPoolSize"] == 10
    assert run.outputs["dbConnectionBudget"] == {"poolSize": 10, "poolsPerTask": 1, "maxTasks": 4,
                                                 "migrationConnections": 1, "opsHeadroom": 3, "total": 44}


def test_limit_below_the_budget_is_rejected_with_the_arithmetic():
    assert problem({"connectionLimit": "10"}) == (
        "umami:connectionLimit=10 is below the connection budget 44 = pool 10 x 1 pool x 4 tasks (2 max x 200 %) "
        "+ 1 migration + 3 ops; raise it or lower umami:dbPoolSize")


def test_a_reader_doubles_the_pools_budget_84():
    run = run_dev({"dbReaderHost": READER})
    assert run.one(ROLE).inputs["connectionLimit"] == 84
    assert run.outputs["dbConnectionBudget"]["poolsPerTask"] == 2 and run.outputs["dbConnectionBudget"]["total"] == 84
    assert problem({"dbReaderHost": READER, "connectionLimit": "83"}) == (
        "umami:connectionLimit=83 is below the connection budget 84 = pool 10 x 2 pools (writer + reader) x 4 tasks "
        "(2 max x 200 %) + 1 migration + 3 ops; raise it or lower umami:dbPoolSize")


def test_database_only_stack_budgets_one_task():
    run = run_dev({"deployService": "false"})
    assert run.one(ROLE).inputs["connectionLimit"] == 14
    assert run.outputs["dbConnectionBudget"] == {"poolSize": 10, "poolsPerTask": 1, "maxTasks": 1,
                                                 "migrationConnections": 1, "opsHeadroom": 3, "total": 14}
    assert problem({"deployService": "false", "connectionLimit": "13"}) == (
        "umami:connectionLimit=13 is below the connection budget 14 = pool 10 x 1 pool x 1 task (database-only stack) "
        "+ 1 migration + 3 ops; raise it or lower umami:dbPoolSize")


def test_pool_size_scales_the_budget_and_a_higher_limit_is_kept():
    run = run_dev({"dbPoolSize": "5"})
    assert run.one(ROLE).inputs["connectionLimit"] == 24  # 5 x 1 x 4 + 1 + 3
    run = run_dev({"connectionLimit": "60"})
    assert run.one(ROLE).inputs["connectionLimit"] == 60 and run.outputs["dbConnectionBudget"]["total"] == 44


@pytest.mark.parametrize("value", ["0", "101"])
def test_pool_size_range(value):
    assert problem({"dbPoolSize": value}) == f"umami:dbPoolSize={value} is out of range; use 1-100 connections"


# -- Aurora cluster identifier --

@pytest.mark.parametrize("host, expected", [
    ("app-aurora.cluster-abcdefghijkl.eu-west-1.rds.amazonaws.com", "app-aurora"),
    ("App-Aurora.cluster-ro-abcdefghijkl.eu-west-1.rds.amazonaws.com", "app-aurora"),
    ("db1.cluster-c9akciq32.cn-north-1.rds.amazonaws.com.cn", "db1"),
    ("reports.cluster-custom-abcdefghijkl.eu-west-1.rds.amazonaws.com", None),  # a custom endpoint's own name
    ("app-aurora-instance-1.abcdefghijkl.eu-west-1.rds.amazonaws.com", None),    # an instance endpoint
    ("db.internal.example.com", None),
    ("127.0.0.1", None),
])
def test_cluster_identifier_from_the_endpoint(host, expected):
    assert derived_cluster_identifier(host) == expected


def test_cluster_identifier_is_derived_unless_set():
    run = run_dev(remove=("umami:auroraClusterIdentifier",))
    assert run.outputs["auroraClusterIdentifier"] == "app-aurora"
    assert "umami-dev-aurora-cpu-high-writer" in run.outputs["alarmNames"]
    assert run_dev({"auroraClusterIdentifier": "other-cluster"}).outputs["auroraClusterIdentifier"] == "other-cluster"
    assert run_dev({"dbHost": "db.internal.example.com"}).outputs.get("auroraClusterIdentifier") is None
