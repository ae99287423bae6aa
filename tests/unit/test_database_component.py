"""The database component under Pulumi's mocks: the privilege model, resource by resource."""

import json
from pathlib import Path

import pytest

from tests.stack import named, run_dev
from facts import (
    PG_ROLE as ROLE, PG_SCHEMA as SCHEMA, PG_GRANT as GRANT, PG_DEFAULT_PRIVILEGES as DEFAULTS,
    PG_EXTENSION as EXTENSION, PG_PROVIDER as PROVIDER, RANDOM_PASSWORD as PASSWORD, RANDOM_BYTES as SALT,
)

REPO = Path(__file__).resolve().parents[2]



@pytest.fixture(scope="module")
def run():
    return run_dev()


def test_provider_is_explicit_and_not_superuser(run):
    provider = run.one(PROVIDER)
    assert provider.inputs["superuser"] in ("false", False)
    assert provider.inputs["sslmode"] == "verify-full"
    # lib/pq reads the CA from the deployer's disk: the shipped RDS bundle of the stack's region.
    assert provider.inputs["sslrootcert"] == str(REPO / "components" / "shared" / "rds_ca" / "eu-west-1.pem")
    assert provider.inputs["host"].endswith(".rds.amazonaws.com")
    assert provider.inputs["database"] == "appdb"
    assert "password" in provider.secret_inputs
    for resource in run.resources:
        if resource.type.startswith("postgresql:"):
            assert resource.provider.startswith(provider.urn), resource.name


def test_role_is_hardened(run):
    role = run.one(ROLE).inputs
    assert role["login"] is True
    for attribute in ("superuser", "createDatabase", "createRole", "replication", "bypassRowLevelSecurity"):
        assert role[attribute] is False, attribute
    assert role["roles"] == []
    assert role["connectionLimit"] == 44  # the default budget: 10 x 1 x 4 + 1 + 3
    assert role["searchPaths"] == ["umami"]
    assert role["statementTimeout"] == 30000
    assert role["idleInTransactionSessionTimeout"] == 60000
    assert "password" in run.one(ROLE).secret_inputs


def test_schema_is_owned_by_the_admin_not_the_role(run):
    schema = run.one(SCHEMA).inputs
    assert schema["name"] == "umami"
    assert schema["owner"] == "postgres"  # the admin from the master secret
    assert schema.get("dropCascade") is False


def test_only_schema_usage_and_create_are_granted(run):
    grants = run.by_type(GRANT)
    assert len(grants) == 1, "no table/sequence Grant: it would drift forever (provider issue #627)"
    grant = grants[0].inputs
    assert grant["objectType"] == "schema"
    assert sorted(grant["privileges"]) == ["CREATE", "USAGE"]
    assert grant["schema"] == "umami" and grant["role"] == "umami_user"
    assert grant["withGrantOption"] is False


def test_default_privileges_for_tables_and_sequences_created_by_the_admin(run):
    defaults = {d.inputs["objectType"]: d.inputs for d in run.by_type(DEFAULTS)}
    assert set(defaults) == {"table", "sequence"}
    for entry in defaults.values():
        assert entry["owner"] == "postgres" and entry["role"] == "umami_user" and entry["schema"] == "umami"
    assert "SELECT" in defaults["table"]["privileges"] and "USAGE" in defaults["sequence"]["privileges"]


def test_pgcrypto_lives_in_the_schema_and_is_retained(run):
    extension = run.one(EXTENSION)
    assert extension.inputs["name"] == "pgcrypto" and extension.inputs["schema"] == "umami"
    assert extension.retain_on_delete is True


def test_stateful_resources_are_protected_by_default(run):
    for token in (ROLE, SCHEMA, EXTENSION):
        assert run.one(token).protect is True, token
    assert run.one(GRANT).protect is False


def test_protection_can_be_turned_off():
    run = run_dev({"protectStatefulResources": "false"})
    assert not any(r.protect for r in run.resources)


def test_children_are_parented_to_their_component(run):
    components = {r.urn: r for r in run.resources if not r.custom}
    assert {c.type for c in components.values()} >= {"umami:database:UmamiDatabase", "umami:secrets:UmamiSecrets"}
    for resource in run.resources:
        if resource.type.startswith(("postgresql:", "pulumi:providers:postgresql")):
            assert components[resource.parent].type == "umami:database:UmamiDatabase", resource.name


def test_config_values_flow_into_the_role():
    run = run_dev({"roleName": "analytics_ro", "schemaName": "analytics", "connectionLimit": "60"})
    role = run.one(ROLE).inputs
    assert (role["name"], role["connectionLimit"], role["searchPaths"]) == ("analytics_ro", 60, ["analytics"])
    assert run.outputs["dbSchema"] == "analytics" and run.outputs["dbRole"] == "analytics_ro"


# -- the role's password reaches PostgreSQL only as a SCRAM-SHA-256 verifier --



def test_role_password_is_the_scram_verifier_of_the_generated_password(run):
    import base64

    from components.shared import scram

    plain = next(r for r in run.by_type(PASSWORD) if r.name == "umami-db-password").state["result"]
    salt = named(run, SALT, "umami-db-password-salt")
    role = run.one(ROLE)
    verifier = role.inputs["password"]
    assert verifier == scram.verifier(plain, base64.b64decode(salt.state["base64"]))
    assert verifier.startswith("SCRAM-SHA-256$4096:") and plain not in verifier
    assert plain not in json.dumps(role.inputs)  # in no input of the role, secret or not
    assert "password" in role.secret_inputs


def test_salt_is_sixteen_random_bytes_kept_by_the_secrets_component(run):
    salt = named(run, SALT, "umami-db-password-salt")
    assert salt.inputs["length"] == 16
    components = {r.urn: r for r in run.resources if not r.custom}
    assert components[salt.parent].type == "umami:secrets:UmamiSecrets"


def test_same_state_same_verifier_so_no_diff():
    """The salt and password come from state, so a second run declares the same role input."""
    assert run_dev().one(ROLE).inputs["password"] == run_dev().one(ROLE).inputs["password"]


def test_another_salt_gives_another_verifier_for_the_same_password():
    from ops.engine.offline import OfflineHandler, deterministic_password

    class OtherSalt(OfflineHandler):
        def __init__(self):
            super().__init__(random_value=lambda r: "other" if r.type == SALT else deterministic_password(r))

    assert run_dev(handler=OtherSalt()).one(ROLE).inputs["password"] != run_dev().one(ROLE).inputs["password"]


def test_a_plain_password_is_refused_by_the_component():
    import pulumi

    from components import database

    with pytest.raises(pulumi.RunError, match="SCRAM-SHA-256 verifier"):
        database._require_verifier("offline-plain-password")


# -- pgcrypto: never moved --

def test_pgcrypto_schema_changes_are_ignored(monkeypatch):
    """Where pgcrypto already lives elsewhere, the provider's Read stores that schema; ignoring
    `schema` (the property's name in pulumi_postgresql and the provider) keeps it from ever moving."""
    from ops.engine import program

    ignored: dict[str, list[str]] = {}
    register = program.RecordingMonitor.RegisterResource

    def recording(self, request):
        ignored[request.name] = list(request.ignoreChanges)
        return register(self, request)

    monkeypatch.setattr(program.RecordingMonitor, "RegisterResource", recording)
    run = run_dev()
    extension = run.one(EXTENSION)
    assert ignored[extension.name] == ["schema"]
    assert extension.retain_on_delete is True
    others = {r.name for r in run.resources if r.type.startswith("postgresql:") and r.name != extension.name}
    assert others and all(not ignored[name] for name in others)  # the role, schema, grants: every change applies


def test_extension_schema_is_a_property_of_the_sdk():
    import inspect

    import pulumi_postgresql

    assert "schema" in inspect.signature(pulumi_postgresql.ExtensionArgs.__init__).parameters
    assert "salt" not in inspect.signature(pulumi_postgresql.RoleArgs.__init__).parameters
    assert "password" in inspect.signature(pulumi_postgresql.RoleArgs.__init__).parameters
