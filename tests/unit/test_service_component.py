"""UmamiService under mocks: every property of the ECS/ALB deliverable, not just that resources exist."""

import importlib
import inspect
import keyword
import json
from pathlib import Path

import pytest

from components.service_parts.container import ca_wrapper
from tests.stack import run_dev

REPO = Path(__file__).resolve().parents[2]

PRIVATE = ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"]
PUBLIC = ["subnet-0a1b2c3d4e5f60101", "subnet-0a1b2c3d4e5f60102"]
AURORA_SG = "sg-0a1b2c3d4e5f60718"
CERT = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-1111-2222-3333-444455556666"
HTTPS = {"certificateArn": CERT, "domainName": "analytics.example.com"}
COMPONENT = "umami:service:UmamiService"

TASK_DEF = "aws:ecs/taskDefinition:TaskDefinition"
SERVICE = "aws:ecs/service:Service"
LISTENER = "aws:lb/listener:Listener"
RULE = "aws:lb/listenerRule:ListenerRule"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
SG = "aws:ec2/securityGroup:SecurityGroup"


@pytest.fixture(scope="module")
def run():
    return run_dev()


@pytest.fixture(scope="module")
def https_run():
    return run_dev(HTTPS)


def named(run, type_token, name):
    return next(r for r in run.by_type(type_token) if r.name == name)


def container(run):
    definitions = json.loads(named(run, TASK_DEF, "umami-task").inputs["containerDefinitions"])
    assert len(definitions) == 1
    return definitions[0]


def sg_id(run, name):
    return named(run, SG, name).id


def rules_of(run, type_token, group_id):
    return [r.inputs for r in run.by_type(type_token) if r.inputs["securityGroupId"] == group_id]


# -- cluster and logs --

def test_cluster_has_container_insights(run):
    cluster = run.one("aws:ecs/cluster:Cluster").inputs
    assert cluster["name"] == "umami-dev"
    assert cluster["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    assert run.outputs["ecsClusterName"] == "umami-dev"
    assert run.outputs["ecsClusterArn"] == run.one("aws:ecs/cluster:Cluster").state["arn"]


def test_existing_cluster_is_used_by_arn_instead_of_creating_one():
    arn = "arn:aws:ecs:eu-west-1:123456789012:cluster/shared"
    run = run_dev({"existingClusterArn": arn})
    assert run.by_type("aws:ecs/cluster:Cluster") == []
    assert run.one(SERVICE).inputs["cluster"] == arn
    assert run.one("aws:appautoscaling/target:Target").inputs["resourceId"] == "service/shared/umami-dev"
    assert (run.outputs["ecsClusterName"], run.outputs["ecsClusterArn"]) == ("shared", arn)


def test_log_group_retention_defaults_to_30_days_and_is_configurable(run):
    group = named(run, "aws:cloudwatch/logGroup:LogGroup", "umami-logs").inputs
    assert group["name"] == "/ecs/umami-dev" and group["retentionInDays"] == 30
    assert named(run_dev({"logRetentionDays": "90"}), "aws:cloudwatch/logGroup:LogGroup", "umami-logs").inputs["retentionInDays"] == 90
    assert run.outputs["logGroupName"] == "/ecs/umami-dev"


# -- task definition and container --

def test_task_definition_is_fargate_awsvpc_arm64(run):
    task = named(run, TASK_DEF, "umami-task").inputs
    assert task["family"] == "umami-dev" == run.outputs["taskDefinitionFamily"]
    assert task["requiresCompatibilities"] == ["FARGATE"]
    assert task["networkMode"] == "awsvpc"
    assert (task["cpu"], task["memory"]) == ("256", "512")
    assert task["runtimePlatform"] == {"operatingSystemFamily": "LINUX", "cpuArchitecture": "ARM64"}
    assert task["executionRoleArn"] == named(run, "aws:iam/role:Role", "umami-execution").state["arn"]
    assert task["taskRoleArn"] == named(run, "aws:iam/role:Role", "umami-task").state["arn"]
    assert task["executionRoleArn"] != task["taskRoleArn"]


def test_container_image_port_and_plain_environment(run):
    umami = container(run)
    assert umami["name"] == "umami" and umami["essential"] is True
    assert umami["image"] == "ghcr.io/umami-software/umami:3.1.0"
    assert umami["portMappings"] == [{"containerPort": 3000, "hostPort": 3000, "protocol": "tcp"}]
    environment = {e["name"]: e["value"] for e in umami["environment"]}
    # SKIP_DB_MIGRATION: the service never migrates; the deploy step did (test_deploy_step.py).
    assert environment == {"HOSTNAME": "0.0.0.0", "DISABLE_TELEMETRY": "1", "SKIP_DB_MIGRATION": "1",
                           "NODE_EXTRA_CA_CERTS": "/tmp/umami-db-ca.pem",
                           "UMAMI_DB_CA_PEM": (REPO / "components" / "shared" / "rds_ca" / "eu-west-1.pem").read_text()}
    assert umami["entryPoint"] == ["/bin/sh", "-c"] and umami["command"] == [ca_wrapper("pnpm start-docker")]


def test_database_url_and_app_secret_come_only_from_secrets_manager(run):
    umami = container(run)
    names = {e["name"] for e in umami["environment"]}
    assert not names & {"DATABASE_URL", "APP_SECRET", "PASSWORD"}
    secrets = {s["name"]: s["valueFrom"] for s in umami["secrets"]}
    assert secrets == {
        "DATABASE_URL": f"{run.outputs['dbSecretArn']}:DATABASE_URL::",
        "APP_SECRET": run.outputs["appSecretArn"],
    }
    db_secret = named(run, "aws:secretsmanager/secret:Secret", "umami-db-credentials")
    assert secrets["DATABASE_URL"].startswith(db_secret.state["arn"] + ":")


def test_container_health_check_hits_the_heartbeat(run):
    check = container(run)["healthCheck"]
    assert check["command"][0] == "CMD-SHELL"
    assert "curl -f http://localhost:3000/api/heartbeat" in check["command"][1]
    assert check["interval"] >= check["timeout"] and check["retries"] >= 2
    assert check["startPeriod"] == 300


@pytest.mark.parametrize("grace, start_period", [("120", 120), ("900", 300)])
def test_container_start_period_follows_the_grace_period_up_to_ecs_limit(grace, start_period):
    assert container(run_dev({"healthCheckGracePeriodSeconds": grace}))["healthCheck"]["startPeriod"] == start_period


def test_container_logs_to_the_log_group(run):
    logging = container(run)["logConfiguration"]
    assert logging["logDriver"] == "awslogs"
    assert logging["options"]["awslogs-group"] == "/ecs/umami-dev"
    assert logging["options"]["awslogs-region"] == "eu-west-1"
    assert logging["options"]["awslogs-stream-prefix"] == "umami"


# -- service --

def test_service_runs_in_private_subnets_without_public_ip(run):
    network = run.one(SERVICE).inputs["networkConfiguration"]
    assert network["subnets"] == PRIVATE
    assert network["assignPublicIp"] is False
    assert network["securityGroups"] == [sg_id(run, "umami-task")]
    assert not set(network["subnets"]) & set(PUBLIC)


def test_service_recovers_and_deploys_safely(run):
    service = run.one(SERVICE).inputs
    assert service["name"] == "umami-dev" == run.outputs["ecsServiceName"]
    assert service["launchType"] == "FARGATE"
    assert service["desiredCount"] == 1
    assert service["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert service["deploymentMinimumHealthyPercent"] == 100
    assert service["deploymentMaximumPercent"] == 200
    assert service["healthCheckGracePeriodSeconds"] == 300
    assert service["propagateTags"] == "SERVICE"
    assert service["enableExecuteCommand"] is False
    assert service["waitForSteadyState"] is True
    assert service["taskDefinition"] == named(run, TASK_DEF, "umami-task").state["arn"]


def test_grace_period_and_ecs_exec_are_configurable():
    service = run_dev({"healthCheckGracePeriodSeconds": "600", "enableExecuteCommand": "true"}).one(SERVICE).inputs
    assert service["healthCheckGracePeriodSeconds"] == 600 and service["enableExecuteCommand"] is True


def test_service_registers_in_the_target_group_after_its_listeners_exist(https_run):
    service = https_run.one(SERVICE)
    assert service.inputs["loadBalancers"] == [{
        "targetGroupArn": https_run.one("aws:lb/targetGroup:TargetGroup").state["arn"],
        "containerName": "umami", "containerPort": 3000,
    }]
    for listener in https_run.by_type(LISTENER):
        assert listener.urn in service.dependencies, listener.name


# -- load balancer --

def test_alb_is_internet_facing_in_public_subnets_and_drops_invalid_headers(run):
    alb = run.one("aws:lb/loadBalancer:LoadBalancer")
    assert alb.inputs["loadBalancerType"] == "application"
    assert alb.inputs["internal"] is False
    assert alb.inputs["subnets"] == PUBLIC
    assert alb.inputs["dropInvalidHeaderFields"] is True
    assert alb.inputs["securityGroups"] == [sg_id(run, "umami-alb")]
    assert run.outputs["albDnsName"] == alb.state["dnsName"]
    assert run.outputs["loadBalancerArnSuffix"] == alb.state["arnSuffix"]


def test_target_group_checks_the_heartbeat_on_ip_targets(run):
    group = run.one("aws:lb/targetGroup:TargetGroup")
    inputs = group.inputs
    assert inputs["targetType"] == "ip"
    assert (inputs["port"], inputs["protocol"]) == (3000, "HTTP")
    assert inputs["deregistrationDelay"] == 30
    assert inputs["vpcId"] == "vpc-0a1b2c3d4e5f60718"
    health = inputs["healthCheck"]
    assert health["path"] == "/api/heartbeat" and health["matcher"] == "200" and health["enabled"] is True
    assert run.outputs["targetGroupArn"] == group.state["arn"]
    assert run.outputs["targetGroupArnSuffix"] == group.state["arnSuffix"]


def test_https_listener_uses_the_certificate_and_tls12_plus(https_run):
    listeners = {listener.inputs["port"]: listener.inputs for listener in https_run.by_type(LISTENER)}
    assert set(listeners) == {80, 443}
    https = listeners[443]
    assert https["protocol"] == "HTTPS" and https["certificateArn"] == CERT
    assert https["sslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert https["defaultActions"] == [{"type": "forward",
                                        "targetGroupArn": https_run.one("aws:lb/targetGroup:TargetGroup").state["arn"]}]
    assert listeners[80]["protocol"] == "HTTP"
    assert listeners[80]["defaultActions"] == [{"type": "redirect",
                                                "redirect": {"port": "443", "protocol": "HTTPS", "statusCode": "HTTP_301"}}]
    assert https_run.outputs["url"] == "https://analytics.example.com"
    assert https_run.outputs.get("httpsWarning") is None


def test_without_certificate_http_only_and_a_warning_output(run):
    listeners = run.by_type(LISTENER)
    assert [(listener.inputs["port"], listener.inputs["protocol"]) for listener in listeners] == [(80, "HTTP")]
    assert listeners[0].inputs["defaultActions"][0]["type"] == "forward"
    assert "plain HTTP" in run.outputs["httpsWarning"]
    assert run.outputs["url"] == "http://" + run.outputs["albDnsName"]


def test_internal_alb_is_selectable():
    alb = run_dev({"albInternal": "true"}).one("aws:lb/loadBalancer:LoadBalancer").inputs
    assert alb["internal"] is True and alb["subnets"] == PRIVATE


def test_admin_cidrs_keep_tracker_public_and_forbid_the_rest():
    admins = [f"198.51.100.{i * 8}/29" for i in range(7)]
    run = run_dev({**HTTPS, "adminCidrs": admins})
    https = next(listener for listener in run.by_type(LISTENER) if listener.inputs["port"] == 443)
    assert https.inputs["defaultActions"] == [{"type": "fixed-response", "fixedResponse": {
        "contentType": "text/plain", "messageBody": "Forbidden", "statusCode": "403"}}]
    rules = sorted((r.inputs for r in run.by_type(RULE)), key=lambda r: r["priority"])
    assert all(r["listenerArn"] == https.state["arn"] for r in rules)
    forward = [{"type": "forward", "targetGroupArn": run.one("aws:lb/targetGroup:TargetGroup").state["arn"]}]
    assert all(r["actions"] == forward for r in rules)
    assert rules[0]["conditions"] == [{"pathPattern": {"values": ["/script.js", "/api/send"]}}]
    # Admin ranges in rules of at most five values (the ALB's limit), covering every range once.
    source_sets = [r["conditions"][0]["sourceIp"]["values"] for r in rules[1:]]
    assert [len(s) for s in source_sets] == [5, 2]
    assert sum(source_sets, []) == admins
    assert rules[0]["priority"] < rules[1]["priority"]
    # The tracker stays reachable from anywhere: the ALB still admits the configured client CIDRs.
    assert {r["cidrIpv4"] for r in rules_of(run, INGRESS, sg_id(run, "umami-alb"))} == {"0.0.0.0/0"}


def test_without_admin_cidrs_there_are_no_rules(run):
    assert run.by_type(RULE) == []


# -- security groups --

def test_security_groups_have_no_inline_rules(run):
    for group in run.by_type(SG):
        assert "ingress" not in group.inputs and "egress" not in group.inputs, group.name
        assert group.inputs["vpcId"] == "vpc-0a1b2c3d4e5f60718"


def test_alb_admits_80_and_443_from_configured_cidrs_only():
    cidrs = ["203.0.113.0/24", "2001:db8::/32"]
    run = run_dev({**HTTPS, "albIngressCidrs": cidrs})
    alb = sg_id(run, "umami-alb")
    seen = {(r["fromPort"], r["toPort"], r.get("cidrIpv4") or r.get("cidrIpv6")) for r in rules_of(run, INGRESS, alb)}
    assert seen == {(p, p, c) for p in (80, 443) for c in cidrs}
    assert next(r for r in rules_of(run, INGRESS, alb) if r.get("cidrIpv6"))["cidrIpv6"] == "2001:db8::/32"
    egress = rules_of(run, EGRESS, alb)
    assert len(egress) == 1 and egress[0]["referencedSecurityGroupId"] == sg_id(run, "umami-task")
    assert (egress[0]["fromPort"], egress[0]["toPort"]) == (3000, 3000)


def test_http_only_alb_does_not_open_443(run):
    ports = {r["fromPort"] for r in rules_of(run, INGRESS, sg_id(run, "umami-alb"))}
    assert ports == {80}


def test_tasks_accept_3000_from_the_alb_only(run):
    ingress = rules_of(run, INGRESS, sg_id(run, "umami-task"))
    assert len(ingress) == 1
    rule = ingress[0]
    assert (rule["ipProtocol"], rule["fromPort"], rule["toPort"]) == ("tcp", 3000, 3000)
    assert rule["referencedSecurityGroupId"] == sg_id(run, "umami-alb")
    assert "cidrIpv4" not in rule and "cidrIpv6" not in rule


def test_tasks_egress_is_443_and_the_database_port_only():
    run = run_dev({"dbPort": "5433"})
    egress = rules_of(run, EGRESS, sg_id(run, "umami-task"))
    summary = {(r["fromPort"], r["toPort"], r.get("cidrIpv4") or r.get("referencedSecurityGroupId")) for r in egress}
    assert summary == {(443, 443, "0.0.0.0/0"), (5433, 5433, AURORA_SG)}
    assert all(r["ipProtocol"] == "tcp" for r in egress)


def test_aurora_group_gets_one_rule_from_the_tasks_on_the_database_port():
    run = run_dev({"dbPort": "5433"})
    on_aurora = rules_of(run, INGRESS, AURORA_SG) + rules_of(run, EGRESS, AURORA_SG)
    assert len(on_aurora) == 1
    rule = on_aurora[0]
    assert rule["referencedSecurityGroupId"] == sg_id(run, "umami-task")
    assert (rule["ipProtocol"], rule["fromPort"], rule["toPort"]) == ("tcp", 5433, 5433)
    assert (run.outputs["taskSecurityGroupId"], run.outputs["albSecurityGroupId"]) == (
        sg_id(run, "umami-task"), sg_id(run, "umami-alb"))


# -- service discovery and autoscaling --

def test_no_service_discovery_by_default(run):
    assert not [r for r in run.resources if r.type.startswith("aws:servicediscovery/")]
    assert "serviceRegistries" not in run.one(SERVICE).inputs


def test_cloud_map_namespace_and_registration():
    run = run_dev({"serviceDiscoveryNamespace": "umami.internal"})
    namespace = run.one("aws:servicediscovery/privateDnsNamespace:PrivateDnsNamespace")
    assert namespace.inputs["name"] == "umami.internal" and namespace.inputs["vpc"] == "vpc-0a1b2c3d4e5f60718"
    discovery = run.one("aws:servicediscovery/service:Service")
    assert discovery.inputs["dnsConfig"]["namespaceId"] == namespace.id
    assert discovery.inputs["dnsConfig"]["dnsRecords"] == [{"type": "A", "ttl": 10}]
    assert run.one(SERVICE).inputs["serviceRegistries"] == {"registryArn": discovery.state["arn"]}


def test_existing_cloud_map_namespace_is_used_by_id():
    run = run_dev({"serviceDiscoveryNamespaceId": "ns-abcdefgh12345678"})
    assert run.by_type("aws:servicediscovery/privateDnsNamespace:PrivateDnsNamespace") == []
    assert run.one("aws:servicediscovery/service:Service").inputs["dnsConfig"]["namespaceId"] == "ns-abcdefgh12345678"


def test_autoscaling_between_1_and_2_tasks_on_cpu_70_and_memory_80(run):
    target = run.one("aws:appautoscaling/target:Target").inputs
    assert (target["minCapacity"], target["maxCapacity"]) == (1, 2)
    assert target["resourceId"] == "service/umami-dev/umami-dev"
    assert target["scalableDimension"] == "ecs:service:DesiredCount" and target["serviceNamespace"] == "ecs"
    policies = {}
    for policy in run.by_type("aws:appautoscaling/policy:Policy"):
        assert policy.inputs["policyType"] == "TargetTrackingScaling"
        assert policy.inputs["resourceId"] == target["resourceId"]
        config = policy.inputs["targetTrackingScalingPolicyConfiguration"]
        policies[config["predefinedMetricSpecification"]["predefinedMetricType"]] = config["targetValue"]
    assert policies == {"ECSServiceAverageCPUUtilization": 70, "ECSServiceAverageMemoryUtilization": 80}


# -- tags, parents, outputs --

def resource_class(type_token):
    package, module_path, name = type_token.split(":")
    module = module_path.split("/")[0]
    module = importlib.import_module(f"pulumi_aws.{module}_" if keyword.iskeyword(module) else f"pulumi_aws.{module}")
    return getattr(module, name)


def test_every_taggable_service_resource_carries_the_tag_schema():
    run = run_dev({**HTTPS, "adminCidrs": ["203.0.113.0/24"], "serviceDiscoveryNamespace": "umami.internal"})
    checked = 0
    for resource in run.resources:
        if not resource.type.startswith("aws:") or "secretsmanager" in resource.type:
            continue
        if "tags" not in inspect.signature(resource_class(resource.type)._internal_init).parameters:
            continue
        tags = resource.inputs.get("tags")
        assert tags, f"{resource.type} {resource.name} is not tagged"
        assert tags["Project"] == "UserMetrics" and tags["ManagedBy"] == "pulumi" and tags["Environment"] == "dev"
        assert tags["Component"] in ("service", "monitoring") and tags["CostCenter"] == "analytics"
        checked += 1
    assert checked >= 30


def test_service_resources_are_children_of_the_component(https_run):
    component = next(r for r in https_run.resources if r.type == COMPONENT)
    owned = [r for r in https_run.resources if r.type.startswith(("aws:ecs/", "aws:lb/", "aws:iam/", "aws:vpc/",
                                                                  "aws:ec2/", "aws:appautoscaling/"))]
    assert owned and all(r.parent == component.urn for r in owned)


def test_service_outputs_form_the_contract(https_run):
    outputs = https_run.outputs_json()
    for key in ("ecsClusterName", "ecsClusterArn", "ecsServiceName", "taskDefinitionFamily", "targetGroupArn",
                "targetGroupArnSuffix", "loadBalancerArnSuffix", "albDnsName", "url", "logGroupName",
                "albSecurityGroupId", "taskSecurityGroupId", "umamiVersion"):
        assert outputs.get(key) not in (None, "[secret]"), key
    assert outputs["umamiVersion"] == "3.1.0"
    assert outputs["loadBalancerArnSuffix"].startswith("app/")
    assert outputs["targetGroupArnSuffix"].startswith("targetgroup/")
