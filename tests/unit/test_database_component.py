"""The database component under Pulumi's mocks: the privilege model, resource by resource."""

from pathlib import Path

import pytest

from tests.stack import run_dev

REPO = Path(__file__).resolve().parents[2]

ROLE = "postgresql:index/role:Role"
SCHEMA = "postgresql:index/schema:Schema"
GRANT = "postgresql:index/grant:Grant"
DEFAULTS = "postgresql:index/defaultPrivileges:DefaultPrivileges"
EXTENSION = "postgresql:index/extension:Extension"
PROVIDER = "pulumi:providers:postgresql"


@pytest.fixture(scope="module")
def run():
    return run_dev()


def test_provider_is_explicit_and_not_superuser(run):
    provider = run.one(PROVIDER)
    assert provider.inputs["superuser"] in ("false", False)
    assert provider.inputs["sslmode"] == "verify-full"
    # lib/pq reads the CA from the deployer's disk: the shipped RDS bundle of the stack's region.
    assert provider.inputs["sslrootcert"] == str(REPO / "components" / "rds_ca" / "eu-west-1.pem")
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
