"""Optional Cloud Map private DNS for the tasks (`umami.<namespace>` A records).

Either the stack creates a private DNS namespace (`umami:serviceDiscoveryNamespace`)
or it registers in an existing one (`umami:serviceDiscoveryNamespaceId`).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.config import ServiceConfig

DISCOVERY_NAME = "umami"
RECORD_TTL_SECONDS = 10


def service_registry(name: str, *, service: ServiceConfig, vpc_id: str, tags: dict[str, str],
                     parent: pulumi.Resource) -> aws.servicediscovery.Service | None:
    """The Cloud Map service ECS registers each task in, or None when discovery is not configured."""
    if not (service.service_discovery_namespace or service.service_discovery_namespace_id):
        return None
    child = pulumi.ResourceOptions(parent=parent)
    namespace_id: pulumi.Input[str]
    if service.service_discovery_namespace:
        namespace = aws.servicediscovery.PrivateDnsNamespace(
            f"{name}-namespace",
            name=service.service_discovery_namespace,
            vpc=vpc_id,
            description="Private DNS for Umami",
            tags=tags,
            opts=child,
        )
        namespace_id = namespace.id
    else:
        namespace_id = service.service_discovery_namespace_id
    return aws.servicediscovery.Service(
        f"{name}-discovery",
        name=DISCOVERY_NAME,
        dns_config=aws.servicediscovery.ServiceDnsConfigArgs(
            namespace_id=namespace_id,
            routing_policy="MULTIVALUE",
            dns_records=[aws.servicediscovery.ServiceDnsConfigDnsRecordArgs(ttl=RECORD_TTL_SECONDS, type="A")],
        ),
        # No health_check_custom_config: with its only field deprecated, the AWS provider reads back a
        # value the program cannot declare and would replace this service on every update. ECS still
        # registers each task when it starts and deregisters it when it stops.
        tags=tags,
        opts=child,
    )
