"""The service's AWS API shapes, validated by AWS's own models (botocore) and moto.

The program runs offline against networking, a certificate and a key created in moto;
every service and monitoring resource it declares is then created through boto3 with
exactly the recorded settings: the container definitions registered with ECS, the
target group, listeners and rules in ELBv2, the roles and policies in IAM (moto parses
policy documents), security group rules in EC2, scaling in Application Auto Scaling,
alarms and the dashboard in CloudWatch. Reading them back shows nothing was dropped.

Every recorded input is mapped explicitly: an input the mapping does not know fails
the test, so a new property cannot skip this check silently.

The last test runs the offline rehearsal (real PostgreSQL) with the service in the
stack and checks it still records the service resources and exports their outputs.
"""

from __future__ import annotations

import json
import re
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.stack import named, run_dev

REGION = "eu-west-1"
ADMIN_CIDRS = [f"198.51.100.{i * 8}/29" for i in range(7)]


def aws_environment() -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}


def network(client) -> dict[str, Any]:
    """A VPC with two private and two public subnets and an 'Aurora' security group, in moto."""
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")
               ["Subnet"]["SubnetId"] for i, zone in enumerate("abab")]
    aurora = ec2.create_security_group(GroupName="aurora", Description="existing Aurora", VpcId=vpc)["GroupId"]
    return {"vpcId": vpc, "privateSubnetIds": subnets[:2], "publicSubnetIds": subnets[2:],
            "auroraSecurityGroupId": aurora}


def pascal(key: str) -> str:
    return key[0].upper() + key[1:]


def kebab(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"-\1", key).lower()


def take(inputs: dict[str, Any], known: set[str]) -> dict[str, Any]:
    """The inputs, after checking the mapping knows every one of them."""
    unknown = set(inputs) - known
    assert not unknown, f"inputs not mapped to the AWS API: {sorted(unknown)}"
    return inputs


def tags(inputs: dict[str, Any]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in inputs.get("tags", {}).items()]


class Applier:
    """Creates the recorded resources in moto, translating offline ids/ARNs to moto's."""

    def __init__(self, client, run):
        self.client = client
        self.run = run
        self.ids: dict[str, str] = {}  # offline id or ARN -> moto's

    def real(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.real(v) for v in value]
        return self.ids.get(value, value) if isinstance(value, str) else value

    def resources(self, type_token: str):
        return self.run.by_type(type_token)

    # -- EC2 --
    def security_groups(self) -> None:
        ec2 = self.client("ec2")
        for group in self.resources("aws:ec2/securityGroup:SecurityGroup"):
            inputs = take(group.inputs, {"vpcId", "description", "tags"})
            group_id = ec2.create_security_group(
                GroupName=group.name, Description=inputs["description"], VpcId=inputs["vpcId"],
                TagSpecifications=[{"ResourceType": "security-group", "Tags": tags(inputs)}])["GroupId"]
            # The AWS provider revokes the allow-all egress AWS adds to a new group; do the same.
            ec2.revoke_security_group_egress(GroupId=group_id, IpPermissions=[
                {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
            self.ids[group.id] = group_id
        for kind, authorize in (("Ingress", ec2.authorize_security_group_ingress),
                                ("Egress", ec2.authorize_security_group_egress)):
            for rule in self.resources(f"aws:vpc/securityGroup{kind}Rule:SecurityGroup{kind}Rule"):
                inputs = take(rule.inputs, {"securityGroupId", "ipProtocol", "fromPort", "toPort", "cidrIpv4",
                                            "cidrIpv6", "referencedSecurityGroupId", "description", "tags"})
                permission: dict[str, Any] = {"IpProtocol": inputs["ipProtocol"], "FromPort": inputs["fromPort"],
                                              "ToPort": inputs["toPort"]}
                if "cidrIpv4" in inputs:
                    permission["IpRanges"] = [{"CidrIp": inputs["cidrIpv4"], "Description": inputs["description"]}]
                if "cidrIpv6" in inputs:
                    permission["Ipv6Ranges"] = [{"CidrIpv6": inputs["cidrIpv6"], "Description": inputs["description"]}]
                if "referencedSecurityGroupId" in inputs:
                    permission["UserIdGroupPairs"] = [{"GroupId": self.real(inputs["referencedSecurityGroupId"]),
                                                       "Description": inputs["description"]}]
                authorize(GroupId=self.real(inputs["securityGroupId"]), IpPermissions=[permission])

    # -- IAM and logs --
    def roles(self) -> None:
        iam = self.client("iam")
        for role in self.resources("aws:iam/role:Role"):
            inputs = take(role.inputs, {"assumeRolePolicy", "description", "tags"})
            created = iam.create_role(RoleName=role.name, AssumeRolePolicyDocument=inputs["assumeRolePolicy"],
                                      Description=inputs["description"], Tags=tags(inputs))["Role"]
            self.ids[role.id] = role.name
            self.ids[role.state["arn"]] = created["Arn"]
        for policy in self.resources("aws:iam/rolePolicy:RolePolicy"):
            inputs = take(policy.inputs, {"role", "policy"})
            # moto parses the document like IAM does and rejects malformed statements.
            iam.put_role_policy(RoleName=self.real(inputs["role"]), PolicyName=policy.name,
                                PolicyDocument=inputs["policy"])

    def log_group(self) -> None:
        logs = self.client("logs")
        for group in self.resources("aws:cloudwatch/logGroup:LogGroup"):
            inputs = take(group.inputs, {"name", "retentionInDays", "tags"})
            logs.create_log_group(logGroupName=inputs["name"], tags=inputs["tags"])
            logs.put_retention_policy(logGroupName=inputs["name"], retentionInDays=inputs["retentionInDays"])

    # -- ELBv2 --
    def load_balancer(self) -> None:
        elbv2 = self.client("elbv2")
        alb = self.run.one("aws:lb/loadBalancer:LoadBalancer")
        inputs = take(alb.inputs, {"loadBalancerType", "internal", "securityGroups", "subnets",
                                   "dropInvalidHeaderFields", "idleTimeout", "enableDeletionProtection", "tags"})
        created = elbv2.create_load_balancer(
            Name=alb.name, Type=inputs["loadBalancerType"], Subnets=inputs["subnets"],
            SecurityGroups=self.real(inputs["securityGroups"]),
            Scheme="internal" if inputs["internal"] else "internet-facing", Tags=tags(inputs),
        )["LoadBalancers"][0]
        self.ids[alb.state["arn"]] = created["LoadBalancerArn"]
        elbv2.modify_load_balancer_attributes(LoadBalancerArn=created["LoadBalancerArn"], Attributes=[
            {"Key": "routing.http.drop_invalid_header_fields.enabled", "Value": str(inputs["dropInvalidHeaderFields"]).lower()},
            {"Key": "idle_timeout.timeout_seconds", "Value": str(inputs["idleTimeout"])},
            {"Key": "deletion_protection.enabled", "Value": str(inputs["enableDeletionProtection"]).lower()},
        ])

    HEALTH_CHECK = {"enabled": "HealthCheckEnabled", "path": "HealthCheckPath", "protocol": "HealthCheckProtocol",
                    "port": "HealthCheckPort", "interval": "HealthCheckIntervalSeconds",
                    "timeout": "HealthCheckTimeoutSeconds", "healthyThreshold": "HealthyThresholdCount",
                    "unhealthyThreshold": "UnhealthyThresholdCount"}

    def target_group(self) -> None:
        elbv2 = self.client("elbv2")
        group = self.run.one("aws:lb/targetGroup:TargetGroup")
        inputs = take(group.inputs, {"targetType", "port", "protocol", "protocolVersion", "vpcId",
                                     "deregistrationDelay", "healthCheck", "tags"})
        health = take(inputs["healthCheck"], set(self.HEALTH_CHECK) | {"matcher"})
        created = elbv2.create_target_group(
            Name=group.name, TargetType=inputs["targetType"], Port=inputs["port"], Protocol=inputs["protocol"],
            ProtocolVersion=inputs["protocolVersion"], VpcId=inputs["vpcId"], Tags=tags(inputs),
            Matcher={"HttpCode": health["matcher"]},
            **{self.HEALTH_CHECK[key]: value for key, value in health.items() if key != "matcher"},
        )["TargetGroups"][0]
        self.ids[group.state["arn"]] = created["TargetGroupArn"]
        elbv2.modify_target_group_attributes(TargetGroupArn=created["TargetGroupArn"], Attributes=[
            {"Key": "deregistration_delay.timeout_seconds", "Value": str(inputs["deregistrationDelay"])}])

    def action(self, action: dict[str, Any]) -> dict[str, Any]:
        """A Pulumi listener action in the ELBv2 API's shape."""
        shaped: dict[str, Any] = {}
        for key, value in take(action, {"type", "targetGroupArn", "redirect", "fixedResponse"}).items():
            if key in ("redirect", "fixedResponse"):
                shaped[pascal(key) + "Config"] = {pascal(k): v for k, v in value.items()}
            else:
                shaped[pascal(key)] = self.real(value)
        return shaped

    def condition(self, condition: dict[str, Any]) -> dict[str, Any]:
        ((field, config),) = take(condition, {"pathPattern", "sourceIp"}).items()
        return {"Field": kebab(field), pascal(field) + "Config": {pascal(k): v for k, v in config.items()}}

    def listeners(self) -> None:
        elbv2 = self.client("elbv2")
        for listener in self.resources("aws:lb/listener:Listener"):
            inputs = take(listener.inputs, {"loadBalancerArn", "port", "protocol", "sslPolicy", "certificateArn",
                                            "defaultActions", "tags",
                                            # a listener attribute moto does not implement; checked under mocks
                                            "routingHttpResponseStrictTransportSecurityHeaderValue"})
            extra = {"SslPolicy": inputs["sslPolicy"], "Certificates": [{"CertificateArn": inputs["certificateArn"]}]} \
                if inputs["protocol"] == "HTTPS" else {}
            created = elbv2.create_listener(
                LoadBalancerArn=self.real(inputs["loadBalancerArn"]), Port=inputs["port"], Protocol=inputs["protocol"],
                DefaultActions=[self.action(a) for a in inputs["defaultActions"]], Tags=tags(inputs), **extra,
            )["Listeners"][0]
            self.ids[listener.state["arn"]] = created["ListenerArn"]
        for rule in self.resources("aws:lb/listenerRule:ListenerRule"):
            inputs = take(rule.inputs, {"listenerArn", "priority", "conditions", "actions", "tags"})
            elbv2.create_rule(ListenerArn=self.real(inputs["listenerArn"]), Priority=inputs["priority"],
                              Conditions=[self.condition(c) for c in inputs["conditions"]],
                              Actions=[self.action(a) for a in inputs["actions"]], Tags=tags(inputs))

    # -- ECS and scaling --
    def ecs(self) -> dict[str, Any]:
        ecs = self.client("ecs")
        cluster = take(self.run.one("aws:ecs/cluster:Cluster").inputs, {"name", "settings", "tags"})
        cluster_arn = ecs.create_cluster(clusterName=cluster["name"], settings=cluster["settings"],
                                         tags=[{"key": k, "value": v} for k, v in cluster["tags"].items()])["cluster"]["clusterArn"]
        task = named(self.run, "aws:ecs/taskDefinition:TaskDefinition", "umami-task")
        inputs = take(task.inputs, {"family", "requiresCompatibilities", "networkMode", "cpu", "memory",
                                    "runtimePlatform", "executionRoleArn", "taskRoleArn", "containerDefinitions",
                                    "tags"})
        registered = ecs.register_task_definition(
            family=inputs["family"], requiresCompatibilities=inputs["requiresCompatibilities"],
            networkMode=inputs["networkMode"], cpu=inputs["cpu"], memory=inputs["memory"],
            runtimePlatform=inputs["runtimePlatform"], executionRoleArn=self.real(inputs["executionRoleArn"]),
            taskRoleArn=self.real(inputs["taskRoleArn"]),
            containerDefinitions=json.loads(inputs["containerDefinitions"]),
            tags=[{"key": k, "value": v} for k, v in inputs["tags"].items()],
        )["taskDefinition"]
        service = self.run.one("aws:ecs/service:Service")
        inputs = take(service.inputs, {"name", "cluster", "taskDefinition", "launchType", "platformVersion",
                                       "desiredCount", "networkConfiguration", "loadBalancers",
                                       "healthCheckGracePeriodSeconds", "deploymentCircuitBreaker",
                                       "deploymentMinimumHealthyPercent", "deploymentMaximumPercent",
                                       "propagateTags", "enableEcsManagedTags", "enableExecuteCommand",
                                       "waitForSteadyState", "tags"})
        network = take(inputs["networkConfiguration"], {"subnets", "securityGroups", "assignPublicIp"})
        created = ecs.create_service(
            cluster=cluster_arn, serviceName=inputs["name"], taskDefinition=registered["taskDefinitionArn"],
            launchType=inputs["launchType"], platformVersion=inputs["platformVersion"],
            desiredCount=inputs["desiredCount"],
            networkConfiguration={"awsvpcConfiguration": {
                "subnets": network["subnets"], "securityGroups": self.real(network["securityGroups"]),
                "assignPublicIp": "ENABLED" if network["assignPublicIp"] else "DISABLED"}},
            loadBalancers=[{"targetGroupArn": self.real(lb["targetGroupArn"]), "containerName": lb["containerName"],
                            "containerPort": lb["containerPort"]} for lb in inputs["loadBalancers"]],
            healthCheckGracePeriodSeconds=inputs["healthCheckGracePeriodSeconds"],
            deploymentConfiguration={"deploymentCircuitBreaker": inputs["deploymentCircuitBreaker"],
                                     "minimumHealthyPercent": inputs["deploymentMinimumHealthyPercent"],
                                     "maximumPercent": inputs["deploymentMaximumPercent"]},
            propagateTags=inputs["propagateTags"], enableECSManagedTags=inputs["enableEcsManagedTags"],
            enableExecuteCommand=inputs["enableExecuteCommand"],
            tags=[{"key": k, "value": v} for k, v in inputs["tags"].items()],
        )["service"]
        return {"cluster": cluster_arn, "task": registered, "service": created}

    def scaling(self) -> None:
        scaling = self.client("application-autoscaling")
        target = take(self.run.one("aws:appautoscaling/target:Target").inputs,
                      {"serviceNamespace", "scalableDimension", "resourceId", "minCapacity", "maxCapacity", "tags"})
        scaling.register_scalable_target(
            ServiceNamespace=target["serviceNamespace"], ScalableDimension=target["scalableDimension"],
            ResourceId=target["resourceId"], MinCapacity=target["minCapacity"], MaxCapacity=target["maxCapacity"])
        for policy in self.resources("aws:appautoscaling/policy:Policy"):
            inputs = take(policy.inputs, {"policyType", "serviceNamespace", "scalableDimension", "resourceId",
                                          "targetTrackingScalingPolicyConfiguration"})
            config = inputs["targetTrackingScalingPolicyConfiguration"]
            scaling.put_scaling_policy(
                PolicyName=policy.name, PolicyType=inputs["policyType"], ServiceNamespace=inputs["serviceNamespace"],
                ScalableDimension=inputs["scalableDimension"], ResourceId=inputs["resourceId"],
                TargetTrackingScalingPolicyConfiguration={
                    "TargetValue": config["targetValue"],
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": config["predefinedMetricSpecification"]["predefinedMetricType"]},
                    "ScaleOutCooldown": config["scaleOutCooldown"], "ScaleInCooldown": config["scaleInCooldown"],
                })

    # -- monitoring --
    def monitoring(self) -> None:
        sns, cloudwatch = self.client("sns"), self.client("cloudwatch")
        topic = self.run.one("aws:sns/topic:Topic")
        inputs = take(topic.inputs, {"name", "displayName", "tags"})
        created = sns.create_topic(Name=inputs["name"], Attributes={"DisplayName": inputs["displayName"]},
                                   Tags=tags(inputs))["TopicArn"]
        self.ids[topic.state["arn"]] = created
        for alarm in self.resources("aws:cloudwatch/metricAlarm:MetricAlarm"):
            inputs = take(alarm.inputs, {"name", "alarmDescription", "namespace", "metricName", "dimensions",
                                         "statistic", "extendedStatistic", "evaluateLowSampleCountPercentiles",
                                         "comparisonOperator", "threshold", "period", "evaluationPeriods",
                                         "datapointsToAlarm", "treatMissingData", "alarmActions", "okActions",
                                         "tags"})
            optional = {}
            if "statistic" in inputs:
                optional["Statistic"] = inputs["statistic"]
            if "extendedStatistic" in inputs:
                optional["ExtendedStatistic"] = inputs["extendedStatistic"]
                optional["EvaluateLowSampleCountPercentile"] = inputs["evaluateLowSampleCountPercentiles"]
            cloudwatch.put_metric_alarm(
                AlarmName=inputs["name"], AlarmDescription=inputs["alarmDescription"], Namespace=inputs["namespace"],
                MetricName=inputs["metricName"],
                Dimensions=[{"Name": k, "Value": v} for k, v in inputs["dimensions"].items()],
                ComparisonOperator=inputs["comparisonOperator"], Threshold=inputs["threshold"],
                Period=inputs["period"], EvaluationPeriods=inputs["evaluationPeriods"],
                DatapointsToAlarm=inputs["datapointsToAlarm"], TreatMissingData=inputs["treatMissingData"],
                AlarmActions=self.real(inputs["alarmActions"]), OKActions=self.real(inputs["okActions"]),
                Tags=tags(inputs), **optional,
            )
        dashboard = take(self.run.one("aws:cloudwatch/dashboard:Dashboard").inputs, {"dashboardName", "dashboardBody"})
        cloudwatch.put_dashboard(DashboardName=dashboard["dashboardName"], DashboardBody=dashboard["dashboardBody"])


@pytest.fixture(scope="module", params=["https-admin-exec", "http-only"])
def applied(request):
    """The stack applied to moto once per variant; the tests only read it back."""
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        for key, value in aws_environment().items():
            patch.setenv(key, value)
        yield apply_stack(request.param, lambda service: boto3.client(service, region_name=REGION))


def apply_stack(variant: str, aws) -> dict[str, Any]:
    overrides = network(aws)
    if variant == "https-admin-exec":
        certificate = aws("acm").request_certificate(DomainName="analytics.example.com")["CertificateArn"]
        key = aws("kms").create_key(Description="secrets")["KeyMetadata"]["Arn"]
        overrides.update({"certificateArn": certificate, "domainName": "analytics.example.com",
                          "adminCidrs": ADMIN_CIDRS, "enableExecuteCommand": "true", "kmsKeyId": key,
                          "auroraClusterIdentifier": "app-aurora", "albIngressCidrs": ["0.0.0.0/0", "::/0"]})
    else:  # a database endpoint the Aurora identifier cannot be derived from: no Aurora alarms
        overrides["dbHost"] = "db.internal.example.com"
    run = run_dev(overrides)
    applier = Applier(aws, run)
    applier.security_groups()
    applier.roles()
    applier.log_group()
    applier.load_balancer()
    applier.target_group()
    applier.listeners()
    ecs = applier.ecs()
    applier.scaling()
    applier.monitoring()
    return {"variant": variant, "run": run, "client": aws, "applier": applier, "ecs": ecs,
            "overrides": overrides}


def test_container_definitions_register_with_ecs_unchanged(applied):
    described = applied["client"]("ecs").describe_task_definition(
        taskDefinition=applied["ecs"]["task"]["taskDefinitionArn"])["taskDefinition"]
    produced = json.loads(named(applied["run"], "aws:ecs/taskDefinition:TaskDefinition", "umami-task")
                          .inputs["containerDefinitions"])
    assert len(described["containerDefinitions"]) == 1
    registered = described["containerDefinitions"][0]
    for key, value in produced[0].items():
        assert registered[key] == value, key
    assert described["requiresCompatibilities"] == ["FARGATE"] and described["networkMode"] == "awsvpc"
    assert (described["cpu"], described["memory"]) == ("256", "512")
    assert described["runtimePlatform"] == {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"}


def test_service_is_accepted_by_ecs(applied):
    client = applied["client"]("ecs")
    service = client.describe_services(cluster=applied["ecs"]["cluster"], services=["umami-dev"])["services"][0]
    awsvpc = service["networkConfiguration"]["awsvpcConfiguration"]
    assert awsvpc["subnets"] == applied["overrides"]["privateSubnetIds"]
    assert awsvpc["assignPublicIp"] == "DISABLED"
    assert (service["launchType"], service["desiredCount"]) == ("FARGATE", 1)
    assert service["loadBalancers"] == [{"targetGroupArn": applied["applier"].real(applied["run"].outputs["targetGroupArn"]),
                                         "containerName": "umami", "containerPort": 3000}]
    # moto keeps no deployment configuration or grace period; botocore validated their shape on
    # create_service, and their values are asserted under mocks (tests/unit/test_service_component.py).


def test_target_group_and_listeners_are_accepted_by_elbv2(applied):
    elbv2 = applied["client"]("elbv2")
    group = elbv2.describe_target_groups()["TargetGroups"][0]
    assert (group["TargetType"], group["Port"], group["Protocol"]) == ("ip", 3000, "HTTP")
    assert (group["HealthCheckPath"], group["Matcher"]["HttpCode"]) == ("/api/heartbeat", "200")
    attributes = {a["Key"]: a["Value"] for a in
                  elbv2.describe_target_group_attributes(TargetGroupArn=group["TargetGroupArn"])["Attributes"]}
    assert attributes["deregistration_delay.timeout_seconds"] == "30"
    balancer = elbv2.describe_load_balancers()["LoadBalancers"][0]
    lb_attributes = {a["Key"]: a["Value"] for a in elbv2.describe_load_balancer_attributes(
        LoadBalancerArn=balancer["LoadBalancerArn"])["Attributes"]}
    assert lb_attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert balancer["Scheme"] == "internet-facing"
    listeners = {listener["Port"]: listener for listener in elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]}
    if applied["variant"] == "http-only":
        assert set(listeners) == {80}
        assert listeners[80]["DefaultActions"][0]["TargetGroupArn"] == group["TargetGroupArn"]
        return
    assert set(listeners) == {80, 443}
    assert listeners[443]["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert listeners[443]["Certificates"][0]["CertificateArn"] == applied["overrides"]["certificateArn"]
    assert listeners[443]["DefaultActions"][0]["FixedResponseConfig"]["StatusCode"] == "403"
    redirect = listeners[80]["DefaultActions"][0]["RedirectConfig"]
    assert (redirect["Protocol"], redirect["Port"], redirect["StatusCode"]) == ("HTTPS", "443", "HTTP_301")
    rules = [r for r in elbv2.describe_rules(ListenerArn=listeners[443]["ListenerArn"])["Rules"] if not r["IsDefault"]]
    values = {r["Priority"]: r["Conditions"][0] for r in rules}
    assert values["10"]["PathPatternConfig"]["Values"] == ["/script.js", "/api/send"]
    assert values["20"]["SourceIpConfig"]["Values"] + values["21"]["SourceIpConfig"]["Values"] == ADMIN_CIDRS


def test_security_group_rules_are_accepted_by_ec2(applied):
    ec2 = applied["client"]("ec2")
    task_group = applied["applier"].real(applied["run"].outputs["taskSecurityGroupId"])
    aurora = ec2.describe_security_groups(GroupIds=[applied["overrides"]["auroraSecurityGroupId"]])["SecurityGroups"][0]
    from_tasks = [p for p in aurora["IpPermissions"] if p.get("UserIdGroupPairs")]
    assert [(p["FromPort"], p["ToPort"], p["UserIdGroupPairs"][0]["GroupId"]) for p in from_tasks] == [(5432, 5432, task_group)]
    task = ec2.describe_security_groups(GroupIds=[task_group])["SecurityGroups"][0]
    egress = {(p["FromPort"], p["ToPort"], tuple(r["CidrIp"] for r in p["IpRanges"]),
               tuple(g["GroupId"] for g in p["UserIdGroupPairs"])) for p in task["IpPermissionsEgress"]}
    assert egress == {(443, 443, ("0.0.0.0/0",), ()), (5432, 5432, (), (applied["overrides"]["auroraSecurityGroupId"],))}
    ingress = [(p["FromPort"], p["UserIdGroupPairs"][0]["GroupId"]) for p in task["IpPermissions"]]
    assert ingress == [(3000, applied["applier"].real(applied["run"].outputs["albSecurityGroupId"]))]


def test_iam_documents_are_valid_policies(applied):
    iam = applied["client"]("iam")
    execution = applied["applier"].real("umami-execution")
    document = iam.get_role_policy(RoleName=execution, PolicyName="umami-execution")["PolicyDocument"]
    readable = next(s for s in document["Statement"] if s["Action"] == ["secretsmanager:GetSecretValue"])
    assert sorted(readable["Resource"]) == sorted([applied["run"].outputs["dbSecretArn"],
                                                   applied["run"].outputs["appSecretArn"],
                                                   applied["run"].outputs["umamiAdminSecretArn"]])
    policies = iam.list_role_policies(RoleName="umami-task")["PolicyNames"]
    assert policies == (["umami-task-exec"] if applied["variant"] == "https-admin-exec" else [])


def test_alarms_scaling_and_dashboard_are_accepted(applied):
    cloudwatch = applied["client"]("cloudwatch")
    # Target tracking adds its own alarms (two per policy); ours are the ones with the stack's prefix.
    names = sorted(a["AlarmName"] for a in cloudwatch.describe_alarms(AlarmNamePrefix="umami-dev-")["MetricAlarms"])
    assert names == sorted(applied["run"].outputs["alarmNames"])
    assert len(names) == (8 if applied["variant"] == "https-admin-exec" else 6)
    assert cloudwatch.get_dashboard(DashboardName="umami-dev")["DashboardBody"] == \
        applied["run"].one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"]
    scaling = applied["client"]("application-autoscaling")
    target = scaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"][0]
    assert (target["MinCapacity"], target["MaxCapacity"], target["ResourceId"]) == (1, 2, "service/umami-dev/umami-dev")
    assert len(scaling.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]) == 2


# -- the offline rehearsal still runs with the service in the stack --

SERVICE_TYPES = {
    "aws:ecs/cluster:Cluster", "aws:ecs/taskDefinition:TaskDefinition", "aws:ecs/service:Service",
    "aws:lb/loadBalancer:LoadBalancer", "aws:lb/targetGroup:TargetGroup", "aws:lb/listener:Listener",
    "aws:iam/role:Role", "aws:iam/rolePolicy:RolePolicy", "aws:ec2/securityGroup:SecurityGroup",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "aws:cloudwatch/logGroup:LogGroup",
    "aws:appautoscaling/target:Target", "aws:appautoscaling/policy:Policy", "aws:sns/topic:Topic",
    "aws:cloudwatch/metricAlarm:MetricAlarm", "aws:cloudwatch/dashboard:Dashboard",
}


def test_rehearsal_records_the_service_resources_and_exports_their_outputs(rehearsed):
    manifest = json.loads((rehearsed.result.base / "manifest.json").read_text())
    assert SERVICE_TYPES <= {entry["type"] for entry in manifest}
    outputs = json.loads(rehearsed.outputs_file.read_text())
    for key in ("ecsClusterName", "ecsClusterArn", "ecsServiceName", "taskDefinitionFamily", "targetGroupArn",
                "targetGroupArnSuffix", "loadBalancerArnSuffix", "albDnsName", "url", "logGroupName",
                "albSecurityGroupId", "taskSecurityGroupId", "alarmNames", "alarmTopicArn", "dashboardName",
                "umamiVersion", "httpsWarning"):
        assert outputs.get(key) not in (None, "[secret]", []), key
    # The database part still applied for real: the umami role logs in.
    with rehearsed.aurora.connect_as(rehearsed.umami) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "umami_user"
