"""Umami analytics on AWS: an isolated schema in an existing Aurora PostgreSQL,
generated credentials in Secrets Manager, and the outputs ops relies on.

Configuration is validated before any resource is declared (components/config.py).
The exported outputs are the versioned contract documented in README.md.
"""

import pulumi
import pulumi_aws as aws

from components import config as stack_config
from components.admin import admin_credentials
from components.database import UmamiDatabase
from components.secrets import UmamiSecrets
from components.tags import Tagging

CONTRACT_VERSION = 1

cfg = stack_config.load()
tagging = Tagging(environment=cfg.environment, extra=cfg.extra_tags)
admin = admin_credentials(cfg.database)

secrets = UmamiSecrets(
    "umami",
    database=cfg.database,
    secrets=cfg.secrets,
    tags=tagging.for_component("secrets"),
    protect=cfg.protect,
)
database = UmamiDatabase(
    "umami",
    config=cfg.database,
    admin=admin,
    role_password=secrets.db_password.result,
    protect=cfg.protect,
)

pulumi.export("contractVersion", CONTRACT_VERSION)
pulumi.export("environment", cfg.environment)
pulumi.export("dbHost", cfg.database.host)
pulumi.export("dbPort", cfg.database.port)
pulumi.export("dbName", cfg.database.name)
pulumi.export("dbSslMode", cfg.database.sslmode)
pulumi.export("dbSchema", database.schema_name)
pulumi.export("dbRole", database.role_name)
pulumi.export("dbAdminRole", pulumi.Output.unsecret(pulumi.Output.from_input(admin.username)))
pulumi.export("dbSecretArn", secrets.db_secret_arn)
pulumi.export("dbSecretName", secrets.db_secret_name)
pulumi.export("appSecretArn", secrets.app_secret_arn)
pulumi.export("adminSecretArn", cfg.database.admin_secret_arn)
pulumi.export("applicationRoles", list(cfg.database.application_roles))
pulumi.export("awsRegion", aws.get_region_output().region)
pulumi.export("auroraClusterIdentifier", cfg.database.cluster_identifier)
pulumi.export("auroraInstanceIdentifiers", list(cfg.database.instance_identifiers))
pulumi.export("dbMaxConnections", cfg.database.max_connections)
