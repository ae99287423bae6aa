"""`UmamiService`: Umami on ECS Fargate in private subnets behind an Application Load Balancer.

Read top to bottom like the architecture:

    cluster (Container Insights) ─ log group (retention)
    IAM: execution role (logs, the stack's two secrets) · task role (nothing)
    security groups: ALB ← CIDRs · tasks ← ALB · tasks → 443, Aurora · Aurora ← tasks
    ALB: HTTPS (or HTTP) → target group (ip, :3000, /api/heartbeat)
    task definition: Fargate, awsvpc, ARM64, one container, secrets from Secrets Manager
    deploy step: migrations and the admin rotation as a one-off task, run by a Lambda
        invocation inside `pulumi up` before the service rolls (service_parts/deploy_step.py)
    service: private subnets, no public IP, circuit breaker with rollback, 100/200 %, grace period
    optional Cloud Map DNS · autoscaling 1..2 on CPU 70 % and memory 80 %
    retention: a nightly schedule runs a one-off task deleting old events (service_parts/retention.py)
"""

from __future__ import annotations

import json
from typing import Sequence

import pulumi
import pulumi_aws as aws

from components.service_parts.autoscaling import service_autoscaling
from components.config import DEPLOYMENT_MAXIMUM_PERCENT, NetworkConfig, RetentionConfig, ServiceConfig
from components.service_parts.container import CONTAINER_NAME, CONTAINER_PORT, container_definitions
from components.service_parts.deploy_step import deploy_step
from components.service_parts.discovery import service_registry
from components.service_parts.iam import task_roles
from components.service_parts.loadbalancer import load_balancer
from components.service_parts.network import security_groups
from components.service_parts.retention import retention_job
from components.service_parts.task import fargate_task_definition
from facts import resource_base_name

DESIRED_COUNT = 1
HTTPS_WARNING = (
    "No umami:certificateArn is configured: the load balancer serves plain HTTP, so logins and "
    "tracking data cross the network unencrypted. Set umami:certificateArn and umami:domainName."
)


def service_url(network: NetworkConfig, alb_dns_name: pulumi.Input[str]) -> pulumi.Output[str]:
    """Where browsers reach Umami: the certificate's name over HTTPS, else the ALB over HTTP."""
    if network.certificate_arn:
        return pulumi.Output.from_input(f"https://{network.domain_name}")
    host = network.domain_name or alb_dns_name
    return pulumi.Output.concat("http://", host)


class UmamiService(pulumi.ComponentResource):
    """The Umami container on ECS Fargate behind an ALB, with logs, least-privilege IAM and autoscaling.

    Args:
        name: logical name of the component (prefix of its children's names).
        environment: the stack's environment; names the cluster, service, task family and log group.
        network: VPC, subnets, Aurora security group, ALB exposure and TLS settings.
        service: image, task size, architecture, log retention, grace period, ECS Exec, cluster, discovery.
        db_port: the Aurora port the tasks may reach.
        db_secret_arn: ARN of the credentials secret; DATABASE_URL is read from its JSON key.
        app_secret_arn: ARN of the APP_SECRET secret.
        admin_secret_arn: ARN of Umami's admin login secret; the deploy step reads its passwordHash.
        deploy_after: what the deploy step waits for (the database's resources, the secrets).
        kms_key_id: the secrets' customer managed key, if any (the execution role may decrypt with it).
        tags: tags for every taggable resource.
        db_ca_pem: the database CA the container trusts (None with sslmode=disable).
        db_replica: the credentials secret holds DATABASE_REPLICA_URL (a reader endpoint is configured).
        retention: how many days of events the nightly job keeps (None or 0: no job).
    """

    def __init__(self, name: str, *, environment: str, network: NetworkConfig, service: ServiceConfig,
                 db_port: int, db_secret_arn: pulumi.Input[str], app_secret_arn: pulumi.Input[str],
                 admin_secret_arn: pulumi.Input[str], kms_key_id: str | None, tags: dict[str, str],
                 db_ca_pem: str | None = None, db_replica: bool = False,
                 deploy_after: Sequence[pulumi.Resource] = (), retention: RetentionConfig | None = None,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("umami:service:UmamiService", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        base = resource_base_name(environment)
        region = aws.get_region_output().region

        if service.existing_cluster_arn:
            cluster_arn: pulumi.Input[str] = service.existing_cluster_arn
            cluster_name: pulumi.Input[str] = service.existing_cluster_name
        else:
            cluster = aws.ecs.Cluster(
                f"{name}-cluster",
                name=base,
                settings=[aws.ecs.ClusterSettingArgs(name="containerInsights", value="enabled")],
                tags=tags,
                opts=child,
            )
            cluster_arn, cluster_name = cluster.arn, cluster.name

        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/ecs/{base}",
            retention_in_days=service.log_retention_days,
            tags=tags,
            opts=child,
        )

        roles = task_roles(
            name,
            log_group_arn=log_group.arn,
            secret_arns=[db_secret_arn, app_secret_arn, admin_secret_arn],
            kms_key_id=kms_key_id,
            image=service.image,
            enable_execute_command=service.enable_execute_command,
            tags=tags,
            parent=self,
        )
        groups = security_groups(name, network=network, db_port=db_port, https=bool(network.certificate_arn),
                                 tags=tags, parent=self)
        balancer = load_balancer(name, network=network, security_group_id=groups.alb.id, tags=tags, parent=self)

        task_definition = fargate_task_definition(
            f"{name}-task",
            family=base,
            cpu=service.cpu,
            memory=service.memory,
            cpu_architecture=service.cpu_architecture,
            roles=roles,
            container_definitions=pulumi.Output.all(db_secret_arn, app_secret_arn, log_group.name, region).apply(
                lambda v: json.dumps(container_definitions(
                    image=service.image, db_secret_arn=v[0], app_secret_arn=v[1], log_group=v[2], region=v[3],
                    start_period_seconds=service.health_check_grace_period_seconds,
                    ca_pem=db_ca_pem, umami_version=service.umami_version, replica=db_replica,
                ))),
            tags=tags,
            parent=self,
        )

        step = deploy_step(
            name, base=base, service=service, roles=roles, log_group=log_group, cluster_arn=cluster_arn,
            cluster_name=cluster_name, subnets=network.private_subnet_ids, task_security_group_id=groups.task.id,
            db_secret_arn=db_secret_arn, app_secret_arn=app_secret_arn, admin_secret_arn=admin_secret_arn,
            ca_pem=db_ca_pem, replica=db_replica, tags=tags, depends_on=deploy_after, parent=self,
        )

        registry = service_registry(name, service=service, vpc_id=network.vpc_id, tags=tags, parent=self)

        ecs_service = aws.ecs.Service(
            f"{name}-service",
            name=base,
            cluster=cluster_arn,
            task_definition=task_definition.arn,
            launch_type="FARGATE",
            platform_version="LATEST",
            desired_count=DESIRED_COUNT,
            network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(
                subnets=list(network.private_subnet_ids),
                security_groups=[groups.task.id],
                assign_public_ip=False,
            ),
            load_balancers=[aws.ecs.ServiceLoadBalancerArgs(
                target_group_arn=balancer.target_group.arn,
                container_name=CONTAINER_NAME,
                container_port=CONTAINER_PORT,
            )],
            # A first start checks the database before /api/heartbeat answers; don't kill the task meanwhile.
            health_check_grace_period_seconds=service.health_check_grace_period_seconds,
            deployment_circuit_breaker=aws.ecs.ServiceDeploymentCircuitBreakerArgs(enable=True, rollback=True),
            deployment_minimum_healthy_percent=100,
            deployment_maximum_percent=DEPLOYMENT_MAXIMUM_PERCENT,
            propagate_tags="SERVICE",
            enable_ecs_managed_tags=True,
            enable_execute_command=service.enable_execute_command,
            service_registries=aws.ecs.ServiceServiceRegistriesArgs(registry_arn=registry.arn) if registry else None,
            # `pulumi up` fails when the deployment does not become healthy (and the breaker rolls it back).
            wait_for_steady_state=True,
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                # The target group must be attached to the ALB (by a listener or rule) before ECS uses it;
                # the deploy step has migrated the database for the new image (and failed `up` otherwise).
                depends_on=[*balancer.attachments, step.invocation],
                # Autoscaling owns the running count after creation.
                ignore_changes=["desiredCount"],
            ),
        )

        service_autoscaling(name, cluster_name=cluster_name, service_name=ecs_service.name, tags=tags, parent=self)

        job = retention_job(
            name, base=base, retention=retention, service=service, network=network, cluster_arn=cluster_arn,
            roles=roles, task_security_group_id=groups.task.id, log_group_name=log_group.name,
            db_secret_arn=db_secret_arn, app_secret_arn=app_secret_arn, ca_pem=db_ca_pem, tags=tags, parent=self,
        )

        self.cluster_name = pulumi.Output.from_input(cluster_name)
        self.cluster_arn = pulumi.Output.from_input(cluster_arn)
        self.service_name = ecs_service.name
        self.task_definition_family = task_definition.family
        self.target_group_arn = balancer.target_group.arn
        self.target_group_arn_suffix = balancer.target_group.arn_suffix
        self.load_balancer_arn_suffix = balancer.alb.arn_suffix
        self.alb_dns_name = balancer.alb.dns_name
        self.url = service_url(network, balancer.alb.dns_name)
        self.log_group_name = log_group.name
        self.alb_security_group_id = groups.alb.id
        self.task_security_group_id = groups.task.id
        self.umami_version = service.umami_version
        self.https_warning = None if network.certificate_arn else HTTPS_WARNING
        self.retention_days = retention.days if retention else 0
        self.retention_schedule_name = job.schedule.name if job else None
        self.register_outputs({
            "clusterName": self.cluster_name,
            "serviceName": self.service_name,
            "taskDefinitionFamily": self.task_definition_family,
            "targetGroupArn": self.target_group_arn,
            "albDnsName": self.alb_dns_name,
            "url": self.url,
            "logGroupName": self.log_group_name,
        })
