"""Umami analytics on AWS: an isolated schema in an existing Aurora PostgreSQL,
generated credentials in Secrets Manager, Umami on ECS Fargate behind an ALB with
alarms and a dashboard, and the outputs ops relies on.

Configuration is validated before any resource is declared (components/config.py).
The exported outputs are the versioned contract documented in README.md.
"""

import pulumi
import pulumi_aws as aws

from components import config as stack_config
from components.admin import admin_credentials
from components.alarms import Watched
from components.database import UmamiDatabase
from components.monitoring import UmamiMonitoring
from components.secrets import UmamiSecrets
from components.service import UmamiService
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
    role_password_verifier=secrets.db_password_verifier,  # PostgreSQL never sees the password
    protect=cfg.protect,
)

service = None
monitoring = None
if cfg.service is not None:
    service = UmamiService(
        "umami",
        environment=cfg.environment,
        network=cfg.network,
        service=cfg.service,
        db_port=cfg.database.port,
        db_secret_arn=secrets.db_secret_arn,
        app_secret_arn=secrets.app_secret_arn,
        kms_key_id=cfg.secrets.kms_key_id,
        tags=tagging.for_component("service"),
        db_ca_pem=cfg.database.ca_bundle_pem,
        db_replica=cfg.database.reader_host is not None,
    )
    monitoring = UmamiMonitoring(
        "umami",
        environment=cfg.environment,
        monitoring=cfg.monitoring,
        database=cfg.database,
        watched=Watched(
            cluster_name=service.cluster_name,
            service_name=service.service_name,
            load_balancer=service.load_balancer_arn_suffix,
            target_group=service.target_group_arn_suffix,
        ),
        tags=tagging.for_component("monitoring"),
    )
    if service.https_warning:
        pulumi.log.warn(service.https_warning)

pulumi.export("contractVersion", CONTRACT_VERSION)
pulumi.export("environment", cfg.environment)
pulumi.export("dbHost", cfg.database.host)
pulumi.export("dbPort", cfg.database.port)
pulumi.export("dbName", cfg.database.name)
pulumi.export("dbSslMode", cfg.database.sslmode)
# The CA every client verifies the database with (PEM text; null with disable) and the reader, if any.
pulumi.export("dbCaBundle", cfg.database.ca_bundle_pem)
pulumi.export("dbReaderHost", cfg.database.reader_host)
pulumi.export("dbPoolSize", cfg.database.pool_size)
pulumi.export("dbConnectionLimit", cfg.database.connection_limit)
pulumi.export("dbConnectionBudget", cfg.database.connection_budget.as_output())
pulumi.export("dbSchema", database.schema_name)
pulumi.export("dbRole", database.role_name)
pulumi.export("dbAdminRole", pulumi.Output.unsecret(pulumi.Output.from_input(admin.username)))
pulumi.export("dbSecretArn", secrets.db_secret_arn)
pulumi.export("dbSecretName", secrets.db_secret_name)
pulumi.export("appSecretArn", secrets.app_secret_arn)
pulumi.export("adminSecretArn", cfg.database.admin_secret_arn)
pulumi.export("applicationRoles", list(cfg.database.application_roles))
pulumi.export("awsRegion", aws.get_region_output().region)
pulumi.export("auroraClusterIdentifier", cfg.database.cluster_identifier)  # set, or taken from dbHost
pulumi.export("auroraInstanceIdentifiers", list(cfg.database.instance_identifiers))
pulumi.export("dbMaxConnections", cfg.database.max_connections)

# The service part of the contract; every key is present (null) in a database-only stack.
pulumi.export("ecsClusterName", service.cluster_name if service else None)
pulumi.export("ecsClusterArn", service.cluster_arn if service else None)
pulumi.export("ecsServiceName", service.service_name if service else None)
pulumi.export("taskDefinitionFamily", service.task_definition_family if service else None)
pulumi.export("targetGroupArn", service.target_group_arn if service else None)
pulumi.export("targetGroupArnSuffix", service.target_group_arn_suffix if service else None)
pulumi.export("loadBalancerArnSuffix", service.load_balancer_arn_suffix if service else None)
pulumi.export("albDnsName", service.alb_dns_name if service else None)
pulumi.export("url", service.url if service else None)
pulumi.export("logGroupName", service.log_group_name if service else None)
pulumi.export("albSecurityGroupId", service.alb_security_group_id if service else None)
pulumi.export("taskSecurityGroupId", service.task_security_group_id if service else None)
pulumi.export("umamiVersion", service.umami_version if service else None)
pulumi.export("httpsWarning", service.https_warning if service else None)
pulumi.export("alarmNames", monitoring.alarm_names if monitoring else [])
pulumi.export("alarmTopicArn", monitoring.alarm_topic_arn if monitoring else None)
pulumi.export("dashboardName", monitoring.dashboard_name if monitoring else None)
