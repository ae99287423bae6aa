"""The Application Load Balancer in front of Umami.

    :443 HTTPS (ACM certificate, TLS 1.2+)  -> target group (ip targets, :3000, /api/heartbeat)
    :80  HTTP -> 301 to HTTPS                  (plain HTTP forwarding only without a certificate)

With `adminCidrs`, the application listener answers 403 by default and two kinds of rules
let traffic through: the tracker paths (`/script.js`, `/api/send`) from anywhere, and
everything from the admin CIDRs (five per rule, the ALB's limit of condition values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import pulumi
import pulumi_aws as aws

from components.config import NetworkConfig
from components.service_parts.container import CONTAINER_PORT
from facts import HEARTBEAT_PATH

DEREGISTRATION_DELAY_SECONDS = 30
CONDITION_VALUES_PER_RULE = 5
PUBLIC_PATHS_PRIORITY = 10
ADMIN_RULES_FIRST_PRIORITY = 20
HSTS = "max-age=31536000"


@dataclass
class LoadBalancer:
    alb: aws.lb.LoadBalancer
    target_group: aws.lb.TargetGroup
    listeners: list[aws.lb.Listener]
    rules: list[aws.lb.ListenerRule] = field(default_factory=list)

    @property
    def attachments(self) -> list[pulumi.Resource]:
        """What ties the target group to the ALB; the ECS service must be created after it."""
        return [*self.listeners, *self.rules]


def forward_to(target_group_arn: pulumi.Input[str]) -> dict[str, Any]:
    return {"type": "forward", "target_group_arn": target_group_arn}


FORBIDDEN = {"type": "fixed-response",
             "fixed_response": {"content_type": "text/plain", "message_body": "Forbidden", "status_code": "403"}}
REDIRECT_TO_HTTPS = {"type": "redirect",
                     "redirect": {"port": "443", "protocol": "HTTPS", "status_code": "HTTP_301"}}


def chunks(values: Sequence[str], size: int) -> list[list[str]]:
    return [list(values[i:i + size]) for i in range(0, len(values), size)]


def load_balancer(name: str, *, network: NetworkConfig, security_group_id: pulumi.Input[str],
                  tags: dict[str, str], parent: pulumi.Resource) -> LoadBalancer:
    """The ALB, its target group, listeners and (with admin CIDRs) the access rules."""
    child = pulumi.ResourceOptions(parent=parent)

    alb = aws.lb.LoadBalancer(
        f"{name}-alb",
        load_balancer_type="application",
        internal=network.alb_internal,
        security_groups=[security_group_id],
        subnets=list(network.alb_subnet_ids),
        drop_invalid_header_fields=True,
        idle_timeout=60,
        enable_deletion_protection=False,
        tags=tags,
        opts=child,
    )
    target_group = aws.lb.TargetGroup(
        f"{name}-tg",
        target_type="ip",
        port=CONTAINER_PORT,
        protocol="HTTP",
        protocol_version="HTTP1",
        vpc_id=network.vpc_id,
        deregistration_delay=DEREGISTRATION_DELAY_SECONDS,
        health_check=aws.lb.TargetGroupHealthCheckArgs(
            enabled=True,
            path=HEARTBEAT_PATH,  # never "/": Umami answers it with a 307
            matcher="200",
            protocol="HTTP",
            port="traffic-port",
            interval=15,
            timeout=5,
            healthy_threshold=2,
            unhealthy_threshold=3,
        ),
        tags=tags,
        opts=child,
    )

    default_action = FORBIDDEN if network.admin_cidrs else forward_to(target_group.arn)
    listeners: list[aws.lb.Listener] = []
    if network.certificate_arn:
        listeners.append(aws.lb.Listener(
            f"{name}-https",
            load_balancer_arn=alb.arn,
            port=443,
            protocol="HTTPS",
            ssl_policy=network.ssl_policy,
            certificate_arn=network.certificate_arn,
            routing_http_response_strict_transport_security_header_value=HSTS,
            default_actions=[default_action],
            tags=tags,
            opts=child,
        ))
    # Port 80 redirects to HTTPS when there is a certificate; without one it is the application listener.
    listeners.append(aws.lb.Listener(
        f"{name}-http",
        load_balancer_arn=alb.arn,
        port=80,
        protocol="HTTP",
        default_actions=[REDIRECT_TO_HTTPS if network.certificate_arn else default_action],
        tags=tags,
        opts=child,
    ))
    app_listener = listeners[0]

    rules: list[aws.lb.ListenerRule] = []
    if network.admin_cidrs:
        rules.append(aws.lb.ListenerRule(
            f"{name}-public-paths",
            listener_arn=app_listener.arn,
            priority=PUBLIC_PATHS_PRIORITY,
            conditions=[{"path_pattern": {"values": list(network.public_paths)}}],
            actions=[forward_to(target_group.arn)],
            tags=tags,
            opts=child,
        ))
        for index, cidrs in enumerate(chunks(network.admin_cidrs, CONDITION_VALUES_PER_RULE)):
            rules.append(aws.lb.ListenerRule(
                f"{name}-admin-{index + 1}",
                listener_arn=app_listener.arn,
                priority=ADMIN_RULES_FIRST_PRIORITY + index,
                conditions=[{"source_ip": {"values": cidrs}}],
                actions=[forward_to(target_group.arn)],
                tags=tags,
                opts=child,
            ))
    return LoadBalancer(alb=alb, target_group=target_group, listeners=listeners, rules=rules)
