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

from facts import DEFAULT_ROLE, DEFAULT_SCHEMA
from ops.core import outputs as stack_outputs
from ops.core.credentials import ENV_ADMIN_DSN
from ops.core.db import target_from_dsn
from ops.core.errors import OpsError
from ops.core.outputs import CONTRACT_VERSION, DatabaseOutputs, SecretsOutputs, StackOutputs



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
    database = DatabaseOutputs(host=target.host, port=target.port, name=target.dbname, schema=schema, role=role,
                               admin_role=target.user, sslmode=target.sslmode)
    return StackOutputs(contract_version=CONTRACT_VERSION, database=database, secrets=SecretsOutputs(db_secret_arn=""))


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
    database = outputs.database
    if options.aurora_cluster:
        database = replace(database, aurora_cluster_identifier=options.aurora_cluster)
    if options.aurora_instances:
        database = replace(database, aurora_instance_identifiers=tuple(options.aurora_instances))
    outputs = replace(outputs, database=database, aws_region=options.region or outputs.aws_region)
    return outputs, predeploy
