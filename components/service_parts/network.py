"""Security groups: who may talk to the load balancer, the tasks and the database.

    clients (configured CIDRs) --80/443--> ALB --3000--> tasks --5432--> Aurora (existing SG)
                                                          tasks --443--> registry, AWS APIs

Every rule is its own resource (vpc.SecurityGroupIngressRule/EgressRule), so a rule
changes without touching the others, and the groups carry no inline rules. The service's
only change to the existing Aurora security group is one ingress rule from the task group
on the database port. The deployer's rule on that group (umami:deployerSecurityGroupId) is
components/database_parts/deployer_access.py: the database's provider waits for it, and a
database-only stack has it too.
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


def _tcp_rule(kind: type[aws.vpc.SecurityGroupIngressRule] | type[aws.vpc.SecurityGroupEgressRule],
              resource_name: str, security_group_id: pulumi.Input[str], port: int, description: str,
              tags: dict[str, str], opts: pulumi.ResourceOptions, **peer: pulumi.Input[str] | None) -> None:
    """One TCP rule on a single port; `peer` names the other side (cidr_ipv4/cidr_ipv6 or a security group)."""
    kind(
        resource_name,
        security_group_id=security_group_id,
        ip_protocol="tcp",
        from_port=port,
        to_port=port,
        description=description,
        tags=tags,
        opts=opts,
        **peer,
    )


def security_groups(name: str, *, network: NetworkConfig, db_port: int, https: bool,
                    tags: dict[str, str], parent: pulumi.Resource) -> SecurityGroups:
    """The ALB and task security groups, their rules, and the rule on Aurora's group."""
    child = pulumi.ResourceOptions(parent=parent)

    def group(suffix: str, description: str) -> aws.ec2.SecurityGroup:
        return aws.ec2.SecurityGroup(f"{name}-{suffix}", vpc_id=network.vpc_id, description=description,
                                     tags=tags, opts=child)

    alb = group("alb", "Umami load balancer: HTTP(S) in from the configured CIDRs, out to the tasks only")
    task = group("task", "Umami tasks: in from the load balancer only; out HTTPS and the database")

    ingress, egress = aws.vpc.SecurityGroupIngressRule, aws.vpc.SecurityGroupEgressRule
    for port in listener_ports(https):
        for cidr in network.alb_ingress_cidrs:
            _tcp_rule(ingress, f"{name}-alb-in-{port}-{cidr_slug(cidr)}", alb.id, port,
                      f"Clients to the load balancer ({'HTTPS' if port == 443 else 'HTTP'})", tags, child,
                      cidr_ipv4=None if is_ipv6(cidr) else cidr, cidr_ipv6=cidr if is_ipv6(cidr) else None)
    _tcp_rule(egress, f"{name}-alb-out-task", alb.id, CONTAINER_PORT,
              "Load balancer to the Umami tasks", tags, child, referenced_security_group_id=task.id)

    _tcp_rule(ingress, f"{name}-task-in-alb", task.id, CONTAINER_PORT,
              "Only the load balancer reaches Umami", tags, child, referenced_security_group_id=alb.id)
    # The image registry, Secrets Manager and CloudWatch Logs are HTTPS endpoints with changing addresses.
    _tcp_rule(egress, f"{name}-task-out-https", task.id, 443,
              "Image pulls, Secrets Manager and CloudWatch Logs over HTTPS", tags, child, cidr_ipv4=ANYWHERE_IPV4)
    _tcp_rule(egress, f"{name}-task-out-db", task.id, db_port,
              "Umami to Aurora PostgreSQL", tags, child,
              referenced_security_group_id=network.aurora_security_group_id)
    _tcp_rule(ingress, f"{name}-aurora-in-task", network.aurora_security_group_id, db_port,
              "Umami tasks to PostgreSQL (managed by the umami stack)", tags, child,
              referenced_security_group_id=task.id)
    return SecurityGroups(alb=alb, task=task)
