"""The deployer section: the security group of the machine that runs `pulumi up`, `refresh`, `destroy`
and the ops commands (a CI runner inside the VPC), which the postgresql provider connects from.

With `umami:deployerSecurityGroupId` the stack adds one ingress rule to Aurora's security group
(`umami:auroraSecurityGroupId`) on the database port from that group, for a service stack and a
database-only stack alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.config.network import NetworkConfig, security_group_problem
from components.config.reader import Reader


@dataclass(frozen=True)
class DeployerAccess:
    """The deployer's security group and Aurora's, which gets the rule admitting it."""

    security_group_id: str
    aurora_security_group_id: str


def read_deployer(reader: Reader, network: NetworkConfig | None) -> DeployerAccess | None:
    """The deployer's access, or None without `deployerSecurityGroupId`.

    A service stack has read Aurora's group with its network section (required there); a database-only
    stack reads it here, optional unless the deployer's group is set.
    """
    if network is not None:
        aurora = network.aurora_security_group_id or None
    else:
        aurora = reader.string("auroraSecurityGroupId", check=security_group_problem)
    deployer = reader.string("deployerSecurityGroupId", check=security_group_problem)
    if deployer is None:
        return None
    if aurora is None:
        if network is None:  # a service stack reports the missing key with its network section
            reader.problems.append(f"{reader.key('auroraSecurityGroupId')} is required with "
                                   f"{reader.key('deployerSecurityGroupId')}: the rule admitting the deployer "
                                   "is added to Aurora's security group")
        return None
    if deployer == aurora:
        reader.fail("deployerSecurityGroupId", deployer, f"is Aurora's own group ({reader.key('auroraSecurityGroupId')}); "
                    "give the deployer a group of its own: a rule from Aurora's group to itself admits every "
                    "member of that group")
        return None
    return DeployerAccess(security_group_id=deployer, aurora_security_group_id=aurora)
