"""The deployer's way into Aurora: one ingress rule on Aurora's security group, on the database port,
from the security group of the machine that runs `pulumi up` (a CI runner inside the VPC).

    deployer (umami:deployerSecurityGroupId) --db port--> Aurora (umami:auroraSecurityGroupId)

The postgresql provider connects straight to the writer, so the rule must exist before the provider's
first statement and outlive its last one: UmamiDatabase's provider depends on it. Pulumi then creates
it first on `pulumi up` and deletes it last on `pulumi destroy`. It lives outside UmamiService, next to
the database, so a database-only stack gets it too and its name does not change with deployService.
The service's own rule on Aurora's group (tasks → Aurora) is in components/service_parts/network.py.
"""

from __future__ import annotations

import pulumi_aws as aws

from components.config import DeployerAccess

RULE_DESCRIPTION = "Deployer (pulumi up, ops) to PostgreSQL (managed by the umami stack)"


def deployer_ingress(name: str, *, access: DeployerAccess | None, db_port: int,
                     tags: dict[str, str]) -> aws.vpc.SecurityGroupIngressRule | None:
    """The rule admitting the deployer's group to Aurora on `db_port`; None without a deployer group."""
    if access is None:
        return None
    return aws.vpc.SecurityGroupIngressRule(
        f"{name}-aurora-in-deployer",
        security_group_id=access.aurora_security_group_id,
        referenced_security_group_id=access.security_group_id,
        ip_protocol="tcp",
        from_port=db_port,
        to_port=db_port,
        description=RULE_DESCRIPTION,
        tags=tags,
    )
