"""Schema-per-tenant under Pulumi's mocks: one IsolatedSchema per `umami:tenants` name, hardened like
Umami's role, each with its own secret; the default stack untouched; every bad tenant list refused
in one line naming the key and the value, before any resource is declared."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pulumi
import pytest

from components.config import ConfigError
from components.config.tenants import MAX_TENANTS
from components.shared import scram
from ops.engine.offline import OfflineHandler
from ops.engine.program import PROJECT_ROOT
from tests.stack import named, run_dev

sys.path.insert(0, str(PROJECT_ROOT / "policy"))
import invariants  # noqa: E402  (the policy pack imports it the same way)
from facts import (
    PG_ROLE as ROLE, PG_SCHEMA as SCHEMA, PG_GRANT as GRANT, PG_DEFAULT_PRIVILEGES as DEFAULTS,
    PG_EXTENSION as EXTENSION, PG_PROVIDER as PROVIDER, SECRET, SECRET_VERSION as VERSION,
    RANDOM_PASSWORD as PASSWORD, RANDOM_BYTES as SALT,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "urns"
TENANTS = ["acme", "globex", "initech"]
THREE = {"tenants": json.dumps(TENANTS)}
COMPONENT = "umami:database:IsolatedSchema"


@pytest.fixture(scope="module")
def run():
    return run_dev(THREE)


def of_tenant(run, type_token: str, tenant: str):
    found = [r for r in run.by_type(type_token) if r.name.startswith(f"tenant-{tenant}-")]
    assert found, f"{type_token} of {tenant}"
    return found


# -- what each tenant gets ------------------------------------------------------------------------

def test_three_tenants_give_three_isolated_schemas_and_nothing_else_changes(run):
    components = [r for r in run.resources if r.type == COMPONENT]
    assert sorted(c.name for c in components) == [f"tenant-{t}" for t in TENANTS]
    default = {r.urn for r in run_dev().resources}
    added = [r for r in run.resources if r.urn not in default]
    assert {r.urn for r in run.resources} >= default  # Umami's resources are all still there, unmoved
    # per tenant: the component, role, schema, grant, 2 default privileges, password, salt, secret, value
    assert len(added) == 10 * len(TENANTS)
    for tenant in TENANTS:
        types = sorted(r.type for r in added if r.name.startswith(f"tenant-{tenant}"))
        assert types == sorted([COMPONENT, ROLE, SCHEMA, GRANT, DEFAULTS, DEFAULTS, PASSWORD, SALT, SECRET, VERSION])
        parent = next(c.urn for c in components if c.name == f"tenant-{tenant}")
        assert all(r.parent == parent for r in added if r.name.startswith(f"tenant-{tenant}-"))
    assert len(run.by_type(EXTENSION)) == 1 and run.one(EXTENSION).name == "umami-pgcrypto"  # pgcrypto stays Umami's


def test_each_tenant_role_is_hardened_like_umamis(run):
    for tenant in TENANTS:
        (role,) = of_tenant(run, ROLE, tenant)
        inputs = role.inputs
        assert inputs["name"] == f"tenant_{tenant}" and inputs["login"] is True and inputs["inherit"] is True
        for attribute in ("superuser", "createDatabase", "createRole", "replication", "bypassRowLevelSecurity"):
            assert inputs[attribute] is False, (tenant, attribute)
        assert inputs["roles"] == []
        assert inputs["connectionLimit"] == 5  # the tenants' own small default, not Umami's budget
        assert inputs["searchPaths"] == [f"tenant_{tenant}"]
        assert (inputs["statementTimeout"], inputs["idleInTransactionSessionTimeout"]) == (30000, 60000)
        assert role.protect is True and "password" in role.secret_inputs


def test_each_tenant_schema_is_the_admins_with_usage_create_and_default_privileges(run):
    provider = run.one(PROVIDER)
    for tenant in TENANTS:
        name = f"tenant_{tenant}"
        (schema,) = of_tenant(run, SCHEMA, tenant)
        assert (schema.inputs["name"], schema.inputs["owner"], schema.inputs["database"]) == (name, "postgres", "appdb")
        assert schema.protect is True and schema.retain_on_delete is True  # its data outlives a destroy
        (grant,) = of_tenant(run, GRANT, tenant)
        assert (grant.inputs["role"], grant.inputs["schema"], grant.inputs["objectType"]) == (name, name, "schema")
        assert sorted(grant.inputs["privileges"]) == ["CREATE", "USAGE"] and grant.inputs["withGrantOption"] is False
        defaults = {d.inputs["objectType"]: d.inputs for d in of_tenant(run, DEFAULTS, tenant)}
        assert set(defaults) == {"table", "sequence"}
        for entry in defaults.values():
            assert (entry["owner"], entry["role"], entry["schema"]) == ("postgres", name, name)
        assert sorted(defaults["sequence"]["privileges"]) == ["SELECT", "UPDATE", "USAGE"]
        for resource in of_tenant(run, ROLE, tenant) + of_tenant(run, SCHEMA, tenant) + of_tenant(run, GRANT, tenant):
            assert resource.provider.startswith(provider.urn), resource.name  # Umami's admin provider, no other


def test_each_tenant_has_its_own_tagged_secret_with_the_login_document(run):
    for tenant in TENANTS:
        (secret,) = of_tenant(run, SECRET, tenant)
        assert secret.inputs["name"] == f"observability/umami-db-credentials/tenants/{tenant}"
        assert secret.protect is True
        tags = secret.inputs["tags"]
        assert (tags["Component"], tags["Tenant"], tags["Project"], tags["Environment"]) == (
            "tenants", tenant, "UserMetrics", "dev")
        assert tags["CostCenter"] == "analytics"  # the stack's configured extras too
        (version,) = of_tenant(run, VERSION, tenant)
        assert "secretString" in version.secret_inputs
        document = json.loads(version.inputs["secretString"])
        # Umami's credentials document without what is Umami's own (DATABASE_URL)
        assert set(document) == {"username", "password", "host", "port", "database", "schema"}
        assert (document["username"], document["schema"], document["database"], document["port"]) == (
            f"tenant_{tenant}", f"tenant_{tenant}", "appdb", 5432)
        password = named(run, PASSWORD, f"tenant-{tenant}-password")
        assert document["password"] == password.state["result"] and password.inputs["length"] >= 32
        salt = named(run, SALT, f"tenant-{tenant}-password-salt")
        (role,) = of_tenant(run, ROLE, tenant)
        assert role.inputs["password"] == scram.verifier(document["password"], base64.b64decode(salt.state["base64"]))
    passwords = {named(run, PASSWORD, f"tenant-{t}-password").state["result"] for t in TENANTS}
    assert len(passwords) == len(TENANTS)  # one password per tenant


def test_outputs_name_the_tenants_and_the_registry(run):
    assert run.outputs["tenants"] == TENANTS
    assert run.outputs.get("tenantRegistry") is None and run.outputs.get("tenantServiceRole") is None
    with_registry = run_dev({**THREE, "tenantRegistry": "public.tenants", "tenantServiceRole": "orders_service"})
    assert (with_registry.outputs["tenantRegistry"], with_registry.outputs["tenantServiceRole"]) == (
        "public.tenants", "orders_service")
    assert {r.urn for r in with_registry.resources} == {r.urn for r in run.resources}  # no resource for it


def test_the_tenant_stack_passes_the_policy_pack(run):
    triples = [(r.urn, r.type, r.inputs) for r in run.resources]
    assert invariants.grants_within_schema(triples) == []
    for resource in run.resources:
        assert invariants.role_least_privilege(resource.type, resource.inputs) == [], resource.name
        assert invariants.tags_present(resource.type, resource.inputs) == [], resource.name
        assert invariants.stateful_protected(resource.type, resource.protect) == [], resource.name


def test_tenant_urns_are_the_recorded_ones(run):
    """Adding a tenant adds its URNs and nothing else; a tenant's URNs never move once recorded."""
    recorded = json.loads((FIXTURES / "dev-tenants.json").read_text())
    assert sorted(r.urn for r in run.resources) == recorded


@pytest.mark.parametrize("value", ["[]", "file:{empty}"])
def test_no_tenants_is_no_change_at_all(value, tmp_path):
    empty = tmp_path / "tenants.txt"
    empty.write_text("# none yet\n\n")
    recorded = json.loads((FIXTURES / "dev.json").read_text())
    tenantless = run_dev({"tenants": value.format(empty=empty)})
    assert sorted(r.urn for r in tenantless.resources) == recorded
    assert tenantless.outputs["tenants"] == []


def test_the_file_form_reads_one_name_per_line_with_comments(tmp_path):
    listing = tmp_path / "tenants.txt"
    listing.write_text("# tenants of the orders service\nacme\n\n  globex   # since 2024\ninitech\n")
    run = run_dev({"tenants": f"file:{listing}"})
    assert run.outputs["tenants"] == TENANTS
    assert sorted(r.inputs["name"] for r in run.by_type(SCHEMA)) == ["tenant_acme", "tenant_globex", "tenant_initech",
                                                                       "umami"]


def test_the_tenant_connection_limit_is_configurable():
    run = run_dev({"tenants": '["acme"]', "tenantConnectionLimit": "12"})
    assert named(run, ROLE, "tenant-acme-role").inputs["connectionLimit"] == 12


def test_protection_off_covers_the_tenants_too():
    run = run_dev({**THREE, "protectStatefulResources": "false"})
    assert not any(r.protect for r in run.resources)


# -- refused in one line, before any resource ------------------------------------------------------

def refused(overrides, **kw) -> list[str]:
    class Counting(OfflineHandler):
        count = 0

        def new_resource(self, resource):
            Counting.count += 1
            return super().new_resource(resource)

    with pytest.raises(ConfigError) as error:
        run_dev(overrides, handler=Counting(), **kw)
    assert Counting.count == 0  # nothing declared
    assert all("\n" not in line for line in error.value.problems)
    return error.value.problems


NAME_RULE = ("is not a tenant name; use 1-40 lowercase letters, digits and _, starting with a letter "
             "(schema and role tenant_<name>)")


@pytest.mark.parametrize("tenants, expected", [
    (["Acme"], f"umami:tenants=Acme {NAME_RULE}"),
    (["1acme"], f"umami:tenants=1acme {NAME_RULE}"),
    (["ac-me"], f"umami:tenants=ac-me {NAME_RULE}"),
    (["_acme"], f"umami:tenants=_acme {NAME_RULE}"),
    (["a" * 41], f"umami:tenants={'a' * 41} {NAME_RULE}"),
    ([""], f"umami:tenants= {NAME_RULE}"),
    ([7], "umami:tenants=7 is not a string; list tenant names"),
    (["acme", "globex", "acme"], "umami:tenants=acme is listed twice; list each tenant once"),
])
def test_bad_tenant_names_are_refused(tenants, expected):
    assert refused({"tenants": json.dumps(tenants)}) == [expected]


def test_the_longest_name_fits_postgresql():
    name = "a" * 40
    run = run_dev({"tenants": json.dumps([name])})
    assert len(f"tenant_{name}".encode()) <= 63
    assert named(run, ROLE, f"tenant-{name}-role").inputs["name"] == f"tenant_{name}"


@pytest.mark.parametrize("overrides, expected", [
    ({"schemaName": "tenant_acme"},
     "umami:tenants=acme gives schema and role tenant_acme, which is umami:schemaName (Umami's schema); "
     "choose another tenant name"),
    ({"roleName": "tenant_acme"},
     "umami:tenants=acme gives schema and role tenant_acme, which is umami:roleName (Umami's role); "
     "choose another tenant name"),
    ({"applicationRoles": '["app_user", "tenant_acme"]'},
     "umami:tenants=acme gives schema and role tenant_acme, which is an application role (umami:applicationRoles); "
     "choose another tenant name"),
])
def test_a_tenant_colliding_with_what_the_stack_uses_is_refused(overrides, expected):
    assert refused({"tenants": '["acme", "globex"]', **overrides}) == [expected]


def test_a_tenant_colliding_with_a_configured_admin_is_refused():
    assert refused({"tenants": '["acme"]', "adminUsername": "tenant_acme", "adminPassword": "x"},
                   remove=("umami:adminSecretArn",), secret_keys=("umami:adminPassword",)) == [
        "umami:tenants=acme gives schema and role tenant_acme, which is umami:adminUsername (the admin); "
        "choose another tenant name"]


def test_a_tenant_colliding_with_the_admin_named_for_the_secret_is_refused_in_one_line():
    """With adminSecretArn the admin's name is config (umami:adminUsername; the secret is read only in an
    update and must agree), so the collision is refused with the rest of the configuration."""
    assert refused({"tenants": '["acme"]', "adminUsername": "tenant_acme"}) == [
        "umami:tenants=acme gives schema and role tenant_acme, which is umami:adminUsername (the admin); "
        "choose another tenant name"]
    handler = OfflineHandler(admin_secret={"username": "tenant_acme", "password": "x"})
    with pytest.raises(pulumi.RunError, match=r"is the login of tenant_acme, not of umami:adminUsername=postgres"):
        run_dev({"tenants": '["acme"]'}, handler=handler)


@pytest.mark.parametrize("value, expected", [
    ("acme", "umami:tenants=acme is not a list of names; use a YAML or JSON list, or file:PATH with one name per line"),
    ('{"acme": 1}', 'umami:tenants={"acme": 1} is not a list of names'),
    ("file:", "umami:tenants=file: names no file; use file:PATH (one tenant name per line)"),
    ("file:/nonexistent/tenants.txt", "umami:tenants=file:/nonexistent/tenants.txt cannot be read (No such file or "
                                      "directory); use file:PATH of a UTF-8 file with one tenant name per line"),
])
def test_a_value_that_is_neither_a_list_nor_a_file_is_refused(value, expected):
    (line,) = refused({"tenants": value})
    assert line.startswith(expected)


def test_bad_names_in_a_file_name_their_line(tmp_path):
    listing = tmp_path / "tenants.txt"
    listing.write_text("acme\n# a comment: Not-A-Name\nGlobex\nacme  # again\n")
    assert refused({"tenants": f"file:{listing}"}) == [
        f"umami:tenants=Globex ({listing} line 3) {NAME_RULE}",
        f"umami:tenants=acme ({listing} line 4) is listed twice; list each tenant once"]


def test_more_than_the_maximum_is_refused(tmp_path):
    listing = tmp_path / "tenants.txt"
    listing.write_text("\n".join(f"t{i}" for i in range(MAX_TENANTS + 1)) + "\n")
    assert refused({"tenants": f"file:{listing}"}) == [
        f"umami:tenants=[{MAX_TENANTS + 1} entries] is too long; declare at most {MAX_TENANTS} tenants"]


@pytest.mark.parametrize("overrides, expected", [
    ({"tenantConnectionLimit": "0"}, "umami:tenantConnectionLimit=0 is out of range; use 1-500 connections per "
                                     "tenant role"),
    ({"tenantRegistry": "tenants", "tenantServiceRole": "svc"},
     "umami:tenantRegistry=tenants is not schema.table; use e.g. public.tenants"),
    ({"tenantRegistry": "public.Tenants", "tenantServiceRole": "svc"},
     "umami:tenantRegistry=public.Tenants has Tenants, which is not a plain PostgreSQL identifier"),
    ({"tenantRegistry": "public.select", "tenantServiceRole": "svc"},
     "umami:tenantRegistry=public.select has select, which is a reserved SQL key word in PostgreSQL"),
    ({"tenantRegistry": "umami.tenants", "tenantServiceRole": "svc"},
     "umami:tenantRegistry=umami.tenants is in Umami's schema (umami:schemaName); use e.g. public.tenants"),
    ({"tenantRegistry": "tenant_acme.tenants", "tenantServiceRole": "svc"},
     "umami:tenantRegistry=tenant_acme.tenants is in a tenant's schema, where that tenant could reach it"),
    ({"tenantRegistry": "public.tenants"},
     "umami:tenantServiceRole is required with umami:tenantRegistry: the one role that may read the registry"),
    ({"tenantServiceRole": "svc"}, "umami:tenantServiceRole=svc needs umami:tenantRegistry; set both or neither"),
    ({"tenantRegistry": "public.tenants", "tenantServiceRole": "umami_user"},
     "umami:tenantServiceRole=umami_user is Umami's role, which must reach nothing outside its schema"),
    ({"tenantRegistry": "public.tenants", "tenantServiceRole": "tenant_acme"},
     "umami:tenantServiceRole=tenant_acme is a tenant's role, which must reach nothing outside its schema"),
    ({"tenantRegistry": "public.tenants", "tenantServiceRole": "rds_superuser"},
     "umami:tenantServiceRole=rds_superuser is a reserved role"),
])
def test_bad_registry_and_limit_settings_are_refused(overrides, expected):
    (line,) = refused({"tenants": '["acme"]', **overrides})
    assert line.startswith(expected)


def test_a_tenant_secret_name_longer_than_secrets_manager_allows_is_refused():
    base = "x" * 500  # itself a valid secret name; with /tenants/acme 513 characters
    (line,) = refused({"tenants": '["acme"]', "secretName": base})
    assert line == ("umami:tenants=acme makes its secret name (umami:secretName/tenants/acme) longer than 512 "
                    "characters; shorten umami:secretName")


if __name__ == "__main__":  # record the tenant stack's URNs (only on purpose: they are its identity in state)
    (FIXTURES / "dev-tenants.json").write_text(json.dumps(sorted(r.urn for r in run_dev(THREE).resources),
                                                          indent=1) + "\n")
