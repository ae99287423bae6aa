"""Generated credentials, the Secrets Manager documents, tags and exported outputs."""

import json
from urllib.parse import unquote, urlsplit, parse_qs

import pytest

from components.secrets import database_url
from ops.offline import OfflineHandler
from tests.stack import run_dev

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
    assert parse_qs(parts.query) == {"schema": ["umami"], "sslmode": ["require"]}


@pytest.mark.parametrize("mode, prisma", [("verify-full", "require"), ("disable", "disable"), ("allow", "prefer")])
def test_database_url_uses_an_sslmode_prisma_understands(mode, prisma):
    assert database_url("u", "p", "h", 5432, "d", "s", mode).endswith(f"sslmode={prisma}")


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
