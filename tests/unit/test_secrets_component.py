"""Generated credentials, the Secrets Manager documents, tags and exported outputs."""

import base64
import json
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

import bcrypt
import pytest

from components.secrets import database_url
from components.shared import bcrypt_hash
from ops.engine.offline import OfflineHandler
from tests.stack import named, run_dev

SECRET = "aws:secretsmanager/secret:Secret"
VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
TRICKY_PASSWORD = "p@ss:w/rd?#%&=+ []{}~!"


class TrickyPasswords(OfflineHandler):
    """Generated values full of characters that break URLs unless encoded."""

    def __init__(self):
        super().__init__(random_value=lambda r: TRICKY_PASSWORD if "db-password" in r.name else "A" * 64)


@pytest.fixture(scope="module")
def run():
    return run_dev(handler=TrickyPasswords())


def test_passwords_are_long_random_and_secret(run):
    passwords = {r.name: r for r in run.by_type("random:index/randomPassword:RandomPassword")}
    assert passwords["umami-db-password"].inputs["length"] >= 32
    assert passwords["umami-app-secret"].inputs["length"] >= 32
    assert "result" in passwords["umami-db-password"].state


def test_credentials_secret_holds_the_contract(run):
    secret = next(r for r in run.by_type(SECRET) if r.name == "umami-db-credentials")
    assert secret.inputs["name"] == "observability/umami-db-credentials"
    version = next(r for r in run.by_type(VERSION) if r.name == "umami-db-credentials-value")
    assert "secretString" in version.secret_inputs
    document = json.loads(version.inputs["secretString"])
    assert set(document) == {"username", "password", "host", "port", "database", "schema", "DATABASE_URL"}
    assert document["username"] == "umami_user" and document["password"] == TRICKY_PASSWORD
    assert document["port"] == 5432 and document["schema"] == "umami" and document["database"] == "appdb"


def test_database_url_encodes_the_password_and_names_the_schema(run):
    version = next(r for r in run.by_type(VERSION) if r.name == "umami-db-credentials-value")
    url = json.loads(version.inputs["secretString"])["DATABASE_URL"]
    parts = urlsplit(url)
    assert parts.scheme == "postgresql"
    assert unquote(parts.password) == TRICKY_PASSWORD
    assert parts.hostname == "app-aurora.cluster-abcdefghijkl.eu-west-1.rds.amazonaws.com"
    assert parts.path == "/appdb"
    assert parse_qs(parts.query) == {"schema": ["umami"], "sslmode": ["verify-full"],
                                     "sslrootcert": ["/tmp/umami-db-ca.pem"], "sslaccept": ["strict"],
                                     "sslcert": ["/tmp/umami-db-ca.pem"]}
    assert "DATABASE_REPLICA_URL" not in json.loads(version.inputs["secretString"])


CA = "/tmp/umami-db-ca.pem"


@pytest.mark.parametrize("mode, parameters", [
    # node-postgres verifies CA + host name; Prisma's engine trusts sslcert as its CA, strictly.
    ("verify-full", [("sslmode", "verify-full"), ("sslrootcert", CA), ("sslaccept", "strict"), ("sslcert", CA)]),
    # libpq meanings for node-postgres (CA only / no checking); Prisma's engine ignores uselibpqcompat.
    ("verify-ca", [("sslmode", "verify-ca"), ("uselibpqcompat", "true"), ("sslrootcert", CA)]),
    ("require", [("sslmode", "require"), ("uselibpqcompat", "true")]),
    ("disable", [("sslmode", "disable")]),
])
def test_database_url_carries_each_modes_tls_parameters(mode, parameters):
    url = database_url("u", "p@ss", "h.example.com", 5432, "d", "s", mode)
    assert url.startswith("postgresql://u:p%40ss@h.example.com:5432/d?schema=s&")
    assert parse_qsl(urlsplit(url).query) == [("schema", "s"), *parameters]


def test_database_url_names_another_ca_path_when_asked():
    url = database_url("u", "p", "h", 5432, "d", "s", "verify-full", ca_path="/run/ca bundle.pem")
    assert dict(parse_qsl(urlsplit(url).query))["sslrootcert"] == "/run/ca bundle.pem"
    assert dict(parse_qsl(urlsplit(url).query))["sslcert"] == "/run/ca bundle.pem"


@pytest.mark.parametrize("mode", ["allow", "prefer", "no-verify"])
def test_database_url_refuses_modes_outside_the_four(mode):
    with pytest.raises(ValueError, match="use one of disable, require, verify-ca, verify-full"):
        database_url("u", "p", "h", 5432, "d", "s", mode)


def test_reader_endpoint_gets_a_replica_url_with_the_same_login_and_tls():
    reader = "app-aurora.cluster-ro-abcdefghijkl.eu-west-1.rds.amazonaws.com"
    run = run_dev({"dbReaderHost": reader}, handler=TrickyPasswords())
    version = next(r for r in run.by_type(VERSION) if r.name == "umami-db-credentials-value")
    document = json.loads(version.inputs["secretString"])
    writer, replica = urlsplit(document["DATABASE_URL"]), urlsplit(document["DATABASE_REPLICA_URL"])
    assert replica.hostname == reader and writer.hostname != reader
    assert (replica.username, unquote(replica.password), replica.port, replica.path, replica.query) == \
        (writer.username, TRICKY_PASSWORD, writer.port, writer.path, writer.query)
    assert "secretString" in version.secret_inputs
    assert run.outputs["dbReaderHost"] == reader


def test_app_secret_is_a_separate_secret(run):
    secret = next(r for r in run.by_type(SECRET) if r.name == "umami-app-secret")
    assert secret.inputs["name"] == "observability/umami-app-secret"
    version = next(r for r in run.by_type(VERSION) if r.name == "umami-app-secret-value")
    assert "secretString" in version.secret_inputs and version.inputs["secretString"] == "A" * 64


def test_kms_key_is_passed_to_both_secrets():
    key = "arn:aws:kms:eu-west-1:123456789012:key/0123abcd-0123-4567-89ab-0123456789ab"
    run = run_dev({"kmsKeyId": key})
    assert {s.inputs.get("kmsKeyId") for s in run.by_type(SECRET)} == {key}


def test_every_taggable_resource_carries_the_tag_schema(run):
    for resource in run.by_type(SECRET):
        tags = resource.inputs["tags"]
        assert tags["Project"] == "UserMetrics" and tags["ManagedBy"] == "pulumi"
        assert tags["Environment"] == "dev" and tags["Component"] == "secrets"
        assert tags["CostCenter"] == "analytics"  # configured extra


def test_no_secret_value_appears_in_plain_inputs_or_outputs(run):
    for resource in run.resources:
        plain = json.dumps(resource.masked_inputs(), default=str)
        assert TRICKY_PASSWORD not in plain and "A" * 64 not in plain, resource.name
    assert TRICKY_PASSWORD not in json.dumps(run.outputs, default=str)


def test_outputs_form_the_contract(run):
    outputs = run.outputs_json()
    for key in ("contractVersion", "dbHost", "dbPort", "dbName", "dbSchema", "dbRole", "dbSecretArn",
                "dbSecretName", "appSecretArn", "adminSecretArn", "dbAdminRole"):
        assert key in outputs and outputs[key] != "[secret]", key
    assert outputs["contractVersion"] == 1
    assert outputs["dbSecretArn"].startswith("arn:aws:secretsmanager:eu-west-1:")
    assert outputs["adminSecretArn"].endswith(":secret:rds!cluster-0a1b2c3d-AbCdEf")


# -- Umami's admin login ----------------------------------------------------------------------

PASSWORD = "random:index/randomPassword:RandomPassword"
RANDOM_BYTES = "random:index/randomBytes:RandomBytes"


def admin_login(run) -> dict:
    version = named(run, VERSION, "umami-admin-login-value")
    assert "secretString" in version.secret_inputs
    assert version.inputs["secretId"] == named(run, SECRET, "umami-admin-login").id
    return json.loads(version.inputs["secretString"])


def test_admin_login_secret_is_named_tagged_and_kept_like_the_others(run):
    secret = named(run, SECRET, "umami-admin-login")
    credentials = named(run, SECRET, "umami-db-credentials")
    assert secret.inputs["name"] == "observability/umami-admin"
    assert secret.protect is True and secret.inputs["tags"] == credentials.inputs["tags"]
    assert secret.inputs["recoveryWindowInDays"] == credentials.inputs["recoveryWindowInDays"] == 7
    assert run.outputs["umamiAdminSecretArn"] == secret.state["arn"]
    assert run.outputs["umamiAdminSecretName"] == "observability/umami-admin"
    assert not {"umamiAdminSecretArn", "umamiAdminSecretName"} & run.secret_outputs


def test_admin_login_holds_the_generated_password_and_its_bcrypt_hash(run):
    document = admin_login(run)
    assert set(document) == {"username", "password", "passwordHash"} and document["username"] == "admin"
    password = named(run, PASSWORD, "umami-admin-password")
    assert password.inputs["length"] >= 32 and document["password"] == password.state["result"]
    # As Umami's src/lib/password.ts (bcryptjs, cost 10) stores it; varchar(60) holds it.
    digest = document["passwordHash"]
    assert digest.startswith("$2b$10$") and len(digest) == 60
    assert bcrypt.checkpw(document["password"].encode(), digest.encode())
    assert not bcrypt.checkpw(b"umami", digest.encode())
    # Salted by the bytes kept in state.
    salt = named(run, RANDOM_BYTES, "umami-admin-password-salt")
    assert salt.inputs["length"] == 16
    assert digest[:29] == bcrypt_hash.salt(base64.b64decode(salt.state["base64"])).decode()


def test_the_hash_is_the_same_on_every_run_so_previews_show_no_diff(run):
    assert admin_login(run_dev(handler=TrickyPasswords())) == admin_login(run)

    class OtherSalt(OfflineHandler):
        def __init__(self):
            super().__init__(random_value=lambda r: "other" if r.name == "umami-admin-password-salt"
                             else TrickyPasswords().random_value(r))

    salted_otherwise = admin_login(run_dev(handler=OtherSalt()))
    assert salted_otherwise["password"] == admin_login(run)["password"]
    assert salted_otherwise["passwordHash"] != admin_login(run)["passwordHash"]


def test_neither_the_admin_password_nor_its_hash_is_plain_anywhere(run):
    document = admin_login(run)
    plain = json.dumps([r.masked_inputs() for r in run.resources], default=str) + json.dumps(run.outputs, default=str)
    assert document["password"] not in plain and document["passwordHash"] not in plain


def test_a_database_only_stack_generates_no_admin_login():
    other = run_dev({"deployService": "false"})
    assert not [r.name for r in other.resources if "umami-admin-" in r.name and r.type != "pulumi:providers:postgresql"]
    assert other.outputs.get("umamiAdminSecretArn") is None and other.outputs.get("umamiAdminSecretName") is None


def test_a_bcrypt_salt_is_exactly_16_bytes():
    assert bcrypt_hash.salt(bytes(16)) == b"$2b$10$" + b"." * 22
    with pytest.raises(ValueError, match="16 bytes, not 15"):
        bcrypt_hash.salt(bytes(15))
    assert bcrypt_hash.is_hash(bcrypt_hash.password_hash("pw", bytes(range(16))))
    assert not bcrypt_hash.is_hash("pw")
