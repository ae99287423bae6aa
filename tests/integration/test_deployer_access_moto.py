"""The deployer's rule as EC2 takes it: the program runs offline against security groups created in
moto, the recorded rule is authorized through boto3 exactly as declared (botocore validates the API's
shapes), and Aurora's group then admits the deployer's group on the database port and nothing else."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.stack import run_dev

REGION = "eu-west-1"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
RULE_INPUTS = {"securityGroupId", "referencedSecurityGroupId", "ipProtocol", "fromPort", "toPort", "description", "tags"}


@pytest.fixture()
def ec2():
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}.items():
            patch.setenv(key, value)
        yield boto3.client("ec2", region_name=REGION)


def groups(ec2) -> dict[str, str]:
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    made = {name: ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc)["GroupId"]
            for name in ("aurora", "runner")}
    return {"vpc": vpc, **made}


def authorize(ec2, rule: dict[str, Any]) -> None:
    """The rule through EC2's API, every recorded input mapped (an unmapped one fails the test)."""
    assert set(rule) == RULE_INPUTS, set(rule) ^ RULE_INPUTS
    ec2.authorize_security_group_ingress(
        GroupId=rule["securityGroupId"],
        IpPermissions=[{"IpProtocol": rule["ipProtocol"], "FromPort": rule["fromPort"], "ToPort": rule["toPort"],
                        "UserIdGroupPairs": [{"GroupId": rule["referencedSecurityGroupId"],
                                              "Description": rule["description"]}]}],
        TagSpecifications=[{"ResourceType": "security-group-rule",
                            "Tags": [{"Key": k, "Value": v} for k, v in rule["tags"].items()]}])


@pytest.mark.parametrize("database_only", [False, True], ids=["service-stack", "database-only"])
def test_ec2_accepts_the_rule_and_aurora_admits_the_runner_on_the_database_port_only(ec2, database_only):
    made = groups(ec2)
    overrides = {"auroraSecurityGroupId": made["aurora"], "deployerSecurityGroupId": made["runner"],
                 "vpcId": made["vpc"], "dbPort": "5433"}
    remove = ()
    if database_only:
        overrides["deployService"] = "false"
        remove = ("umami:privateSubnetIds", "umami:publicSubnetIds")
    run = run_dev(overrides, remove=remove)
    (rule,) = [r.inputs for r in run.by_type(INGRESS) if r.inputs.get("referencedSecurityGroupId") == made["runner"]]
    authorize(ec2, rule)

    (aurora,) = ec2.describe_security_groups(GroupIds=[made["aurora"]])["SecurityGroups"]
    from_runner = [(p["IpProtocol"], p["FromPort"], p["ToPort"], pair["GroupId"], pair["Description"])
                   for p in aurora["IpPermissions"] for pair in p["UserIdGroupPairs"] if pair["GroupId"] == made["runner"]]
    assert from_runner == [("tcp", 5433, 5433, made["runner"], rule["description"])]
    assert all(not p["IpRanges"] and not p.get("Ipv6Ranges") for p in aurora["IpPermissions"])  # no CIDR opened
