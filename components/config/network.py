"""The network section: where the service runs and who may reach it (VPC, subnets, load balancer
exposure, TLS)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from components.config.reader import HOSTNAME, Reader, first_problem, pattern_problem, read_list, region_problem

VPC_ID = re.compile(r"^vpc-([0-9a-f]{8}|[0-9a-f]{17})$")
SUBNET_ID = re.compile(r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$")
SECURITY_GROUP_ID = re.compile(r"^sg-([0-9a-f]{8}|[0-9a-f]{17})$")
security_group_problem = pattern_problem(SECURITY_GROUP_ID, "is not a security group id (sg-0123abcd...)")
CERTIFICATE_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$")
URL_PATH = re.compile(r"^/[A-Za-z0-9._~/*?-]{0,127}$")
# TLS 1.2+ policies only: the TLS 1.3 family from 1-2 upwards, and the TLS-1-2 / FS-1-2 families.
SSL_POLICY = re.compile(r"^ELBSecurityPolicy-(TLS13-1-[23]-[A-Za-z0-9-]+|TLS-1-2-[A-Za-z0-9-]+|FS-1-2-[A-Za-z0-9-]+)$")
DEFAULT_PUBLIC_PATHS = ("/script.js", "/api/send")
DEFAULT_SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
MAX_ADMIN_CIDRS = 25  # five per listener rule (the ALB's limit of condition values), at most five rules


@dataclass(frozen=True)
class NetworkConfig:
    """Where the service runs and who may reach it: VPC, subnets, load balancer exposure, TLS."""

    vpc_id: str
    private_subnet_ids: tuple[str, ...]
    public_subnet_ids: tuple[str, ...]
    aurora_security_group_id: str
    alb_internal: bool
    alb_ingress_cidrs: tuple[str, ...]
    admin_cidrs: tuple[str, ...]
    public_paths: tuple[str, ...]
    certificate_arn: str | None
    domain_name: str | None
    ssl_policy: str

    @property
    def alb_subnet_ids(self) -> tuple[str, ...]:
        """An internal ALB lives in the private subnets, an internet-facing one in the public subnets."""
        return self.private_subnet_ids if self.alb_internal else self.public_subnet_ids


def cidr_problem(value: str) -> str | None:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as error:
        if "host bits set" in str(error):
            return "has host bits set; use the network address (e.g. 10.0.0.0/16)"
        return "is not a CIDR block (e.g. 203.0.113.0/24)"
    return None if "/" in value else "is not a CIDR block; add the prefix length (e.g. /32)"


def read_network(reader: Reader) -> NetworkConfig:
    subnet = pattern_problem(SUBNET_ID, "is not a subnet id (subnet-0123abcd...)")
    internal = reader.boolean("albInternal", False)
    private = read_list(reader, "privateSubnetIds", subnet, minimum=2 if internal else 1, what="subnet ids")
    public = read_list(reader, "publicSubnetIds", subnet, default=[] if internal else None,
                       minimum=0 if internal else 2, what="subnet ids")
    for subnet_id in set(private) & set(public):
        reader.fail("publicSubnetIds", subnet_id, f"is also in {reader.key('privateSubnetIds')}; "
                    "tasks and an internet-facing load balancer need separate subnets")
    admin_cidrs = read_list(reader, "adminCidrs", cidr_problem, default=[], maximum=MAX_ADMIN_CIDRS, what="CIDR blocks")
    for cidr in admin_cidrs:
        if ipaddress.ip_network(cidr).prefixlen == 0:
            reader.fail("adminCidrs", cidr, "lets everyone in; list your office or VPN ranges, or leave adminCidrs unset")
    certificate_arn = reader.string("certificateArn", check=first_problem(pattern_problem(
        CERTIFICATE_ARN, "is not an ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/UUID)"), region_problem))
    domain_name = reader.string("domainName", check=lambda v: None if "." in v and HOSTNAME.match(v)
                                else "is not a DNS name; use the name the certificate covers (e.g. analytics.example.com)")
    if certificate_arn and not domain_name:
        reader.problems.append(f"{reader.key('domainName')} is required with {reader.key('certificateArn')}: "
                               "the name the certificate covers, pointed (CNAME/alias) at the load balancer")
    return NetworkConfig(
        vpc_id=reader.string("vpcId", required=True, check=pattern_problem(VPC_ID, "is not a VPC id (vpc-0123abcd...)")) or "",
        private_subnet_ids=private,
        public_subnet_ids=public,
        aurora_security_group_id=reader.string("auroraSecurityGroupId", required=True, check=security_group_problem) or "",
        alb_internal=internal,
        alb_ingress_cidrs=read_list(reader, "albIngressCidrs", cidr_problem, default=["0.0.0.0/0"], minimum=1,
                                    maximum=50, what="CIDR blocks"),
        admin_cidrs=admin_cidrs,
        public_paths=read_list(reader, "publicPaths", pattern_problem(URL_PATH, "is not a URL path (e.g. /script.js)"),
                               default=list(DEFAULT_PUBLIC_PATHS), minimum=1, maximum=5, what="paths"),
        certificate_arn=certificate_arn,
        domain_name=domain_name,
        ssl_policy=reader.string("sslPolicy", DEFAULT_SSL_POLICY, check=pattern_problem(
            SSL_POLICY, f"is not a TLS 1.2+ ALB security policy; use e.g. {DEFAULT_SSL_POLICY}")),
    )
