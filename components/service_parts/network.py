"""Security groups: who may talk to the load balancer, the tasks and the database.

    clients (configured CIDRs) --80/443--> ALB --3000--> tasks --5432--> Aurora (existing SG)
                                                          tasks --443--> registry, AWS APIs

Every rule is its own resource (vpc.SecurityGroupIngressRule/EgressRule), so a rule
changes without touching the others, and the groups carry no inline rules. The only
change to the existing Aurora security group is one ingress rule from the task group
on the database port.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.config import NetworkConfig
from components.service_parts.container import CONTAINER_PORT

ANYWHERE_IPV4 = "0.0.0.0/0"


@dataclass
class SecurityGroups:
    alb: aws.ec2.SecurityGroup
    task: aws.ec2.SecurityGroup


def cidr_slug(cidr: str) -> str:
    """A resource-name-safe form of a CIDR, so a rule keeps its name when the list is reordered."""
    return re.sub(r"[^0-9a-zA-Z]+", "-", cidr).strip("-")


def is_ipv6(cidr: str) -> bool:
    return ipaddress.ip_network(cidr).version == 6


def listener_ports(https: bool) -> list[int]:
    """Port 80 always (plain HTTP, or the redirect to HTTPS); 443 only when there is a certificate."""
    return [80, 443] if https else [80]


def security_groups(name: str, *, network: NetworkConfig, db_port: int, https: bool,
                    tags: dict[str, str], parent: pulumi.Resource) -> SecurityGroups:
    """The ALB and task security groups, their rules, and the rule on Aurora's group."""
    child = pulumi.ResourceOptions(parent=parent)

    alb = aws.ec2.SecurityGroup(
        f"{name}-alb",
        vpc_id=network.vpc_id,
        description="Umami load balancer: HTTP(S) in from the configured CIDRs, out to the tasks only",
        tags=tags,
        opts=child,
    )
    task = aws.ec2.SecurityGroup(
        f"{name}-task",
        vpc_id=network.vpc_id,
        description="Umami tasks: in from the load balancer only; out HTTPS and the database",
        tags=tags,
        opts=child,
    )

    for port in listener_ports(https):
        for cidr in network.alb_ingress_cidrs:
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-alb-in-{port}-{cidr_slug(cidr)}",
                security_group_id=alb.id,
                cidr_ipv4=None if is_ipv6(cidr) else cidr,
                cidr_ipv6=cidr if is_ipv6(cidr) else None,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                description=f"Clients to the load balancer ({'HTTPS' if port == 443 else 'HTTP'})",
                tags=tags,
                opts=child,
            )
    aws.vpc.SecurityGroupEgressRule(
        f"{name}-alb-out-task",
        security_group_id=alb.id,
        referenced_security_group_id=task.id,
        ip_protocol="tcp",
        from_port=CONTAINER_PORT,
        to_port=CONTAINER_PORT,
        description="Load balancer to the Umami tasks",
        tags=tags,
        opts=child,
    )

    aws.vpc.SecurityGroupIngressRule(
        f"{name}-task-in-alb",
        security_group_id=task.id,
        referenced_security_group_id=alb.id,
        ip_protocol="tcp",
        from_port=CONTAINER_PORT,
        to_port=CONTAINER_PORT,
        description="Only the load balancer reaches Umami",
        tags=tags,
        opts=child,
    )
    # The image registry, Secrets Manager and CloudWatch Logs are HTTPS endpoints with changing addresses.
    aws.vpc.SecurityGroupEgressRule(
        f"{name}-task-out-https",
        security_group_id=task.id,
        cidr_ipv4=ANYWHERE_IPV4,
        ip_protocol="tcp",
        from_port=443,
        to_port=443,
        description="Image pulls, Secrets Manager and CloudWatch Logs over HTTPS",
        tags=tags,
        opts=child,
    )
    aws.vpc.SecurityGroupEgressRule(
        f"{name}-task-out-db",
        security_group_id=task.id,
        referenced_security_group_id=network.aurora_security_group_id,
        ip_protocol="tcp",
        from_port=db_port,
        to_port=db_port,
        description="Umami to Aurora PostgreSQL",
        tags=tags,
        opts=child,
    )
    aws.vpc.SecurityGroupIngressRule(
        f"{name}-aurora-in-task",
        security_group_id=network.aurora_security_group_id,
        referenced_security_group_id=task.id,
        ip_protocol="tcp",
        from_port=db_port,
        to_port=db_port,
        description="Umami tasks to PostgreSQL (managed by the umami stack)",
        tags=tags,
        opts=child,
    )
    return SecurityGroups(alb=alb, task=task)
