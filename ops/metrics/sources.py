"""What a snapshot is about: the stack outputs, or, before the first deploy, the admin DSN.

The baseline of story 1.2 is taken before the Umami schema exists, often before
the stack has any outputs. Then the database comes from UMAMI_ADMIN_DSN, the
names the stack will use from --schema/--role (defaults umami, umami_user), and
the Aurora identifiers from --aurora-cluster/--aurora-instance. Those two and
--region also override the outputs, for stacks that do not configure them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from ops import outputs as stack_outputs
from ops.credentials import ENV_ADMIN_DSN
from ops.db import target_from_dsn
from ops.errors import OpsError
from ops.outputs import CONTRACT_VERSION, StackOutputs

DEFAULT_SCHEMA = "umami"
DEFAULT_ROLE = "umami_user"


@dataclass(frozen=True)
class SourceOptions:
    """The command-line options that say what to snapshot."""

    stack: str | None = None
    outputs_file: str | None = None
    schema: str | None = None
    role: str | None = None
    aurora_cluster: str | None = None
    aurora_instances: tuple[str, ...] = ()
    region: str | None = None


def predeploy_outputs(schema: str, role: str) -> StackOutputs:
    """Outputs-shaped facts for a database without a deployed stack, from UMAMI_ADMIN_DSN."""
    dsn = os.environ.get(ENV_ADMIN_DSN)
    if not dsn:
        raise OpsError(f"pass --stack NAME or --outputs FILE, or, before the first deploy, set {ENV_ADMIN_DSN} "
                       "to the admin's DSN (add --aurora-cluster ID for the CloudWatch part)")
    target = target_from_dsn(dsn)
    raw = {"contractVersion": CONTRACT_VERSION, "dbHost": target.host, "dbPort": target.port,
           "dbName": target.dbname, "dbSchema": schema, "dbRole": role, "dbAdminRole": target.user,
           "dbSslMode": target.sslmode, "dbSecretArn": None, "adminSecretArn": None,
           "auroraClusterIdentifier": None, "auroraInstanceIdentifiers": []}
    return StackOutputs(contract_version=CONTRACT_VERSION, db_host=target.host, db_port=target.port,
                        db_name=target.dbname, db_schema=schema, db_role=role, db_secret_arn="",
                        db_admin_role=target.user, db_sslmode=target.sslmode, raw=raw)


def resolve(options: SourceOptions) -> tuple[StackOutputs, bool]:
    """(outputs, predeploy): the stack's outputs with the overrides applied."""
    predeploy = not (options.stack or options.outputs_file)
    if predeploy:
        outputs = predeploy_outputs(options.schema or DEFAULT_SCHEMA, options.role or DEFAULT_ROLE)
    else:
        if options.schema or options.role:
            raise OpsError("--schema and --role are for a snapshot before the first deploy; "
                           "with --stack/--outputs the stack's own names are used")
        outputs = stack_outputs.load(options.stack, options.outputs_file)
    overrides = {}
    if options.aurora_cluster:
        overrides["auroraClusterIdentifier"] = options.aurora_cluster
    if options.aurora_instances:
        overrides["auroraInstanceIdentifiers"] = list(options.aurora_instances)
    if options.region:
        overrides["awsRegion"] = options.region
    if overrides:
        outputs = replace(outputs, raw={**outputs.raw, **overrides})
    return outputs, predeploy
