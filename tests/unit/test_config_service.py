"""Service, network and monitoring config: bad values rejected in one line, defaults and variants accepted."""

import pytest
import pulumi

from components.config import ConfigError, DEFAULT_IMAGE, LOG_RETENTION_DAYS
from tests.stack import named, run_dev

SUBNET_A = "subnet-0a1b2c3d4e5f60001"
SUBNET_B = "subnet-0a1b2c3d4e5f60002"
PUBLIC_A = "subnet-0a1b2c3d4e5f60101"
DIGEST = "sha256:" + "ab" * 32
CERT = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-1111-2222-3333-444455556666"

INVALID = [
    ({"cpu": "384"}, "umami:cpu=384 is not a Fargate size in the story's range; use 256 (memory 512 or 1024) or 512 (memory 1024)"),
    ({"cpu": "1024", "memory": "2048"}, "umami:cpu=1024 is not a Fargate size in the story's range"),
    ({"cpu": "quarter"}, "umami:cpu=quarter is not a whole number"),
    ({"memory": "2048"}, "umami:memory=2048 is not a Fargate size for cpu 256 in the story's range; use 512 or 1024"),
    ({"cpu": "512", "memory": "512"}, "umami:memory=512 is not a Fargate size for cpu 512 in the story's range; use 1024"),
    ({"cpuArchitecture": "arm64"}, "umami:cpuArchitecture=arm64 is not allowed; use one of ARM64, X86_64"),
    ({"privateSubnetIds": []}, "umami:privateSubnetIds=[] is empty; list 1 or more subnet ids"),
    ({"privateSubnetIds": [SUBNET_A, SUBNET_A]}, f"umami:privateSubnetIds={SUBNET_A} is listed twice; list each of the subnet ids once"),
    ({"privateSubnetIds": ["subnet-xyz"]}, "umami:privateSubnetIds=subnet-xyz is not a subnet id (subnet-0123abcd...)"),
    ({"privateSubnetIds": "subnet-a,subnet-b"}, "umami:privateSubnetIds=subnet-a,subnet-b is not valid JSON; use a list"),
    ({"publicSubnetIds": [PUBLIC_A]}, f"umami:publicSubnetIds={PUBLIC_A} has 1 entry; list 2 or more subnet ids (the load balancer spans two Availability Zones)"),
    ({"publicSubnetIds": [PUBLIC_A, SUBNET_A]}, f"umami:publicSubnetIds={SUBNET_A} is also in umami:privateSubnetIds"),
    ({"albInternal": "true", "privateSubnetIds": [SUBNET_A]}, f"umami:privateSubnetIds={SUBNET_A} has 1 entry; list 2 or more"),
    ({"vpcId": "vpc-123"}, "umami:vpcId=vpc-123 is not a VPC id (vpc-0123abcd...)"),
    ({"auroraSecurityGroupId": "sg-nothex00"}, "umami:auroraSecurityGroupId=sg-nothex00 is not a security group id"),
    ({"albIngressCidrs": ["10.0.0.1/16"]}, "umami:albIngressCidrs=10.0.0.1/16 has host bits set; use the network address"),
    ({"albIngressCidrs": ["everyone"]}, "umami:albIngressCidrs=everyone is not a CIDR block (e.g. 203.0.113.0/24)"),
    ({"albIngressCidrs": ["203.0.113.7"]}, "umami:albIngressCidrs=203.0.113.7 is not a CIDR block; add the prefix length"),
    ({"albIngressCidrs": []}, "umami:albIngressCidrs=[] is empty; list 1 or more CIDR blocks"),
    ({"adminCidrs": ["0.0.0.0/0"]}, "umami:adminCidrs=0.0.0.0/0 lets everyone in"),
    ({"adminCidrs": ["300.1.1.0/24"]}, "umami:adminCidrs=300.1.1.0/24 is not a CIDR block"),
    ({"adminCidrs": ["203.0.113.0/24", "203.0.113.0/24"]}, "umami:adminCidrs=203.0.113.0/24 is listed twice"),
    ({"adminCidrs": [f"10.{i}.0.0/16" for i in range(26)]}, "umami:adminCidrs=[26 entries] is too long; list at most 25 CIDR blocks"),
    ({"image": "ghcr.io/umami-software/umami:latest"}, "umami:image=ghcr.io/umami-software/umami:latest uses the moving tag latest; pin a version"),
    ({"image": "ghcr.io/umami-software/umami:postgresql-latest"}, "uses the moving tag postgresql-latest; pin a version such as ghcr.io/umami-software/umami:3.1.0 or a digest @sha256:..., or set umami:allowMovingImageTag=true"),
    ({"image": "ghcr.io/umami-software/umami"}, "umami:image=ghcr.io/umami-software/umami uses the moving tag latest (implicit)"),
    ({"image": "ghcr.io/Umami-Software/umami:3.1.0"}, "umami:image=ghcr.io/Umami-Software/umami:3.1.0 is not an image reference"),
    ({"image": "ghcr.io/umami-software/umami@sha256:abc"}, "umami:image=ghcr.io/umami-software/umami@sha256:abc is not an image reference"),
    ({"image": "ghcr.io/umami software/umami:3.1.0"}, "is not an image reference; use REGISTRY/REPOSITORY:TAG or REPOSITORY@sha256:DIGEST"),
    ({"image": "ghcr.io/umami-software/umami:1.40.0"}, "umami:image=ghcr.io/umami-software/umami:1.40.0 is Umami 1.x"),
    ({"logRetentionDays": "10"}, "umami:logRetentionDays=10 is not a CloudWatch retention; use one of 1, 3, 5, 7, 14, 30"),
    ({"logRetentionDays": "0"}, "umami:logRetentionDays=0 is out of range; use 1-3653 days"),
    ({"healthCheckGracePeriodSeconds": "30"}, "umami:healthCheckGracePeriodSeconds=30 is out of range; use 60-3600 seconds"),
    ({"certificateArn": "arn:aws:iam::123456789012:server-certificate/umami", "domainName": "a.example.com"},
     "umami:certificateArn=arn:aws:iam::123456789012:server-certificate/umami is not an ACM certificate ARN"),
    ({"certificateArn": CERT}, "umami:domainName is required with umami:certificateArn"),
    ({"certificateArn": CERT.replace("eu-west-1", "us-east-1"), "domainName": "a.example.com"},
     f"umami:certificateArn={CERT.replace('eu-west-1', 'us-east-1')} is in us-east-1 but the stack deploys to eu-west-1 (aws:region)"),
    ({"existingClusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/shared"},
     "umami:existingClusterArn=arn:aws:ecs:us-east-1:123456789012:cluster/shared is in us-east-1 but the stack deploys to eu-west-1"),
    ({"domainName": "localhost"}, "umami:domainName=localhost is not a DNS name"),
    ({"sslPolicy": "ELBSecurityPolicy-2016-08"}, "umami:sslPolicy=ELBSecurityPolicy-2016-08 is not a TLS 1.2+ ALB security policy"),
    ({"sslPolicy": "ELBSecurityPolicy-TLS13-1-0-2021-06"}, "umami:sslPolicy=ELBSecurityPolicy-TLS13-1-0-2021-06 is not a TLS 1.2+"),
    ({"existingClusterArn": "arn:aws:ecs:eu-west-1:1234:cluster/shared"}, "umami:existingClusterArn=arn:aws:ecs:eu-west-1:1234:cluster/shared is not an ECS cluster ARN"),
    ({"existingClusterArn": "shared"}, "umami:existingClusterArn=shared is not an ECS cluster ARN"),
    ({"serviceDiscoveryNamespace": "umami.internal", "serviceDiscoveryNamespaceId": "ns-abcdefgh12345678"},
     "umami:serviceDiscoveryNamespace and umami:serviceDiscoveryNamespaceId are both set"),
    ({"serviceDiscoveryNamespaceId": "ns-1"}, "umami:serviceDiscoveryNamespaceId=ns-1 is not a Cloud Map namespace id"),
    ({"serviceDiscoveryNamespace": "umami internal"}, "umami:serviceDiscoveryNamespace=umami internal is not a DNS namespace name"),
    ({"alarmEmail": "ops"}, "umami:alarmEmail=ops is not an e-mail address"),
    ({"enableExecuteCommand": "yes"}, "umami:enableExecuteCommand=yes is not a boolean"),
    ({"albInternal": "maybe"}, "umami:albInternal=maybe is not a boolean"),
    ({"allowMovingImageTag": "1"}, "umami:allowMovingImageTag=1 is not a boolean"),
    ({"deployService": "nah"}, "umami:deployService=nah is not a boolean"),
    ({"publicPaths": ["script.js"]}, "umami:publicPaths=script.js is not a URL path"),
    ({"publicPaths": [f"/p{i}" for i in range(6)]}, "umami:publicPaths=[6 entries] is too long; list at most 5 paths"),
    ({"responseTimeAlarmMs": "50"}, "umami:responseTimeAlarmMs=50 is out of range; use 100-60000 ms"),
    ({"target5xxAlarmCount": "0"}, "umami:target5xxAlarmCount=0 is out of range"),
]


def case_id(overrides: dict) -> str:
    key, value = next(iter(overrides.items()))
    return f"{key}={str(value)[:30]}"


@pytest.mark.parametrize("overrides, expected", INVALID, ids=[case_id(o) for o, _ in INVALID])
def test_invalid_service_value_is_rejected_with_one_line(overrides, expected):
    with pytest.raises(ConfigError) as error:
        run_dev(overrides)
    lines = str(error.value).splitlines()
    assert len(lines) == 1, lines
    assert expected in lines[0]
    assert isinstance(error.value, pulumi.RunError)  # printed by Pulumi without a traceback


@pytest.mark.parametrize("key", ["vpcId", "privateSubnetIds", "publicSubnetIds", "auroraSecurityGroupId"])
def test_network_keys_are_required(key):
    with pytest.raises(ConfigError) as error:
        run_dev(remove=(f"umami:{key}",))
    assert error.value.problems == [f"umami:{key} is required"]


def test_every_cloudwatch_retention_is_accepted():
    from components.config import Reader, read_service

    for days in LOG_RETENTION_DAYS:
        pulumi.runtime.set_all_config({"umami:logRetentionDays": str(days)})
        reader = Reader(pulumi.Config("umami"))
        assert read_service(reader).log_retention_days == days and reader.problems == []


def container(run):
    import json
    return json.loads(named(run, "aws:ecs/taskDefinition:TaskDefinition", "umami-task").inputs["containerDefinitions"])[0]


def test_defaults_are_the_stories():
    run = run_dev(remove=tuple(f"umami:{k}" for k in (
        "image", "cpu", "memory", "cpuArchitecture", "logRetentionDays", "healthCheckGracePeriodSeconds",
        "enableExecuteCommand", "albIngressCidrs", "albInternal")))
    task = named(run, "aws:ecs/taskDefinition:TaskDefinition", "umami-task").inputs
    assert (task["cpu"], task["memory"]) == ("256", "512")
    assert task["runtimePlatform"] == {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"}
    assert container(run)["image"] == DEFAULT_IMAGE == "ghcr.io/umami-software/umami:3.1.0"
    assert named(run, "aws:cloudwatch/logGroup:LogGroup", "umami-logs").inputs["retentionInDays"] == 30
    service = run.one("aws:ecs/service:Service").inputs
    assert service["healthCheckGracePeriodSeconds"] == 300 and service["enableExecuteCommand"] is False
    assert run.one("aws:lb/loadBalancer:LoadBalancer").inputs["internal"] is False
    assert run.outputs["umamiVersion"] == "3.1.0"


@pytest.mark.parametrize("image, version", [
    (f"ghcr.io/umami-software/umami@{DIGEST}", None),
    (f"ghcr.io/umami-software/umami:3.1.0@{DIGEST}", "3.1.0"),
    ("ghcr.io/umami-software/umami:postgresql-v2.19.0", "2.19.0"),
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/mirror/umami:3.1.0-arm64", "3.1.0"),
    ("registry.example.com:5000/umami:v3.0.3", "3.0.3"),
])
def test_pinned_images_are_accepted_and_name_their_version(image, version):
    run = run_dev({"image": image})
    assert container(run)["image"] == image
    assert run.outputs.get("umamiVersion") == version


def test_a_moving_tag_is_accepted_only_when_explicitly_allowed():
    run = run_dev({"image": "ghcr.io/umami-software/umami:postgresql-latest", "allowMovingImageTag": "true"})
    assert container(run)["image"].endswith(":postgresql-latest")
    assert run.outputs.get("umamiVersion") is None  # a moving tag names no version


@pytest.mark.parametrize("cpu, memory", [("256", "512"), ("256", "1024"), ("512", "1024")])
def test_each_size_of_the_story_is_accepted(cpu, memory):
    task = named(run_dev({"cpu": cpu, "memory": memory}), "aws:ecs/taskDefinition:TaskDefinition", "umami-task").inputs
    assert (task["cpu"], task["memory"]) == (cpu, memory)


def test_x86_is_selectable():
    task = named(run_dev({"cpuArchitecture": "X86_64"}), "aws:ecs/taskDefinition:TaskDefinition", "umami-task").inputs
    assert task["runtimePlatform"]["cpuArchitecture"] == "X86_64"


def test_internal_alb_needs_no_public_subnets_and_uses_the_private_ones():
    run = run_dev({"albInternal": "true"}, remove=("umami:publicSubnetIds",))
    alb = run.one("aws:lb/loadBalancer:LoadBalancer").inputs
    assert alb["internal"] is True and alb["subnets"] == [SUBNET_A, SUBNET_B]


def test_database_only_stack_declares_no_service_and_exports_no_service_outputs():
    run = run_dev({"deployService": "false"}, remove=("umami:vpcId", "umami:privateSubnetIds"))
    assert not [r for r in run.resources if r.type.startswith(("aws:ecs/", "aws:lb/", "aws:cloudwatch/", "aws:iam/"))]
    for key in ("ecsClusterName", "ecsServiceName", "url", "albDnsName", "alarmNames", "dashboardName", "umamiVersion"):
        assert key not in run.outputs, key
    assert run.outputs["dbSchema"] == "umami"  # the database part is unchanged
