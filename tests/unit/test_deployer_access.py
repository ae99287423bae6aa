"""umami:deployerSecurityGroupId under Pulumi's mocks: one ingress rule on Aurora's security group from the
deployer's group, on the database port, only when set, for service and database-only stacks alike, and
the postgresql provider waiting for it."""

import re

import pulumi
import pytest

from components.config import ConfigError
from components.database_parts.deployer_access import RULE_DESCRIPTION
from tests.stack import run_dev

INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
PROVIDER = "pulumi:providers:postgresql"
AURORA_SG = "sg-0a1b2c3d4e5f60718"  # Pulumi.dev.yaml's umami:auroraSecurityGroupId
DEPLOYER_SG = "sg-0123456789abcdef0"
DEPLOYER = {"deployerSecurityGroupId": DEPLOYER_SG}
DATABASE_ONLY = {"deployService": "false"}
SERVICE_ONLY_KEYS = ("umami:vpcId", "umami:privateSubnetIds", "umami:publicSubnetIds")


def from_deployer(run):
    """Every ingress rule that admits the deployer's group, anywhere in the stack."""
    return [r for r in run.by_type(INGRESS) if r.inputs.get("referencedSecurityGroupId") == DEPLOYER_SG]


def on_aurora(run):
    return [r for r in run.by_type(INGRESS) if r.inputs["securityGroupId"] == AURORA_SG]


def provider_dependencies(run) -> list[str]:
    return run.one(PROVIDER).dependencies


def one_problem(overrides, remove=()) -> str:
    with pytest.raises(ConfigError) as error:
        run_dev(overrides, remove=remove)
    assert isinstance(error.value, pulumi.RunError)  # printed by Pulumi without a traceback
    assert len(error.value.problems) == 1, error.value.problems
    return error.value.problems[0]


def test_without_the_key_aurora_gets_only_the_tasks_rule_and_the_provider_waits_for_nothing():
    run = run_dev()
    assert from_deployer(run) == []
    assert [r.name for r in on_aurora(run)] == ["umami-aurora-in-task"]
    assert provider_dependencies(run) == []


def test_the_deployer_gets_exactly_one_rule_on_auroras_group_on_the_database_port():
    run = run_dev(DEPLOYER)
    (rule,) = from_deployer(run)
    assert rule.name == "umami-aurora-in-deployer"
    assert rule.inputs == {
        "securityGroupId": AURORA_SG,
        "referencedSecurityGroupId": DEPLOYER_SG,
        "ipProtocol": "tcp",
        "fromPort": 5432,
        "toPort": 5432,
        "description": RULE_DESCRIPTION,
        "tags": rule.inputs["tags"],
    }
    assert rule.inputs["tags"]["Component"] == "database" and rule.inputs["tags"]["ManagedBy"] == "pulumi"
    assert sorted(r.name for r in on_aurora(run)) == ["umami-aurora-in-deployer", "umami-aurora-in-task"]
    # Nothing else opened: the rules besides the deployer's are those of the stack without it.
    assert len(run.by_type(INGRESS)) == len(run_dev().by_type(INGRESS)) + 1


def test_the_description_uses_only_what_ec2_accepts_in_a_rule_description():
    assert re.fullmatch(r"[a-zA-Z0-9. _\-:/()#,@\[\]+=&;{}!$*]{1,255}", RULE_DESCRIPTION)


def test_the_rule_follows_the_database_port():
    (rule,) = from_deployer(run_dev({**DEPLOYER, "dbPort": "6543"}))
    assert (rule.inputs["fromPort"], rule.inputs["toPort"]) == (6543, 6543)


def test_the_provider_and_so_every_database_resource_waits_for_the_rule():
    run = run_dev(DEPLOYER)
    (rule,) = from_deployer(run)
    assert provider_dependencies(run) == [rule.urn]
    database_resources = [r for r in run.resources if r.type.startswith("postgresql:")]
    assert database_resources and all(r.provider.startswith(run.one(PROVIDER).urn + "::") for r in database_resources)


def test_a_database_only_stack_gets_the_same_rule_under_the_same_name():
    service_stack = run_dev(DEPLOYER)
    database_only = run_dev({**DATABASE_ONLY, **DEPLOYER}, remove=SERVICE_ONLY_KEYS)
    (rule,) = from_deployer(database_only)
    (same,) = from_deployer(service_stack)
    # Same URN: switching umami:deployService neither deletes nor recreates the deployer's way in.
    assert rule.urn == same.urn and rule.inputs == {**same.inputs, "tags": rule.inputs["tags"]}
    assert on_aurora(database_only) == [rule]
    assert provider_dependencies(database_only) == [rule.urn]


def test_a_database_only_stack_without_the_key_has_no_rule_even_with_auroras_group():
    run = run_dev(DATABASE_ONLY, remove=SERVICE_ONLY_KEYS)
    assert run.by_type(INGRESS) == [] and provider_dependencies(run) == []


@pytest.mark.parametrize(("overrides", "remove", "expected"), [
    (
        {"deployerSecurityGroupId": "sg-xyz"}, (),
        "umami:deployerSecurityGroupId=sg-xyz is not a security group id (sg-0123abcd...)",
    ),
    (
        {"deployerSecurityGroupId": "0123456789abcdef0"}, (),
        "umami:deployerSecurityGroupId=0123456789abcdef0 is not a security group id (sg-0123abcd...)",
    ),
    (
        {"deployerSecurityGroupId": AURORA_SG}, (),
        f"umami:deployerSecurityGroupId={AURORA_SG} is Aurora's own group (umami:auroraSecurityGroupId); "
        "give the deployer a group of its own",
    ),
    (
        {**DATABASE_ONLY, **DEPLOYER}, (*SERVICE_ONLY_KEYS, "umami:auroraSecurityGroupId"),
        "umami:auroraSecurityGroupId is required with umami:deployerSecurityGroupId: the rule admitting the "
        "deployer is added to Aurora's security group",
    ),
    (
        {**DATABASE_ONLY, **DEPLOYER, "auroraSecurityGroupId": "sg-nothex00"}, SERVICE_ONLY_KEYS,
        "umami:auroraSecurityGroupId=sg-nothex00 is not a security group id (sg-0123abcd...)",
    ),
    (
        {**DATABASE_ONLY, "auroraSecurityGroupId": "sg-nothex00"}, SERVICE_ONLY_KEYS,
        "umami:auroraSecurityGroupId=sg-nothex00 is not a security group id (sg-0123abcd...)",
    ),
    (
        {"deployerSecurityGroupId": ""}, (),
        'umami:deployerSecurityGroupId="" is null or empty; set a value, or remove the key to use the default',
    ),
], ids=["not-an-id", "no-prefix", "auroras-own", "database-only-without-aurora", "database-only-bad-aurora",
        "database-only-bad-aurora-alone", "empty"])
def test_a_bad_value_is_one_line_naming_the_key(overrides, remove, expected):
    assert one_problem(overrides, remove).startswith(expected)


def test_a_service_stack_without_auroras_group_names_that_key_once():
    with pytest.raises(ConfigError) as error:
        run_dev(DEPLOYER, remove=("umami:auroraSecurityGroupId",))
    assert error.value.problems == ["umami:auroraSecurityGroupId is required"]
