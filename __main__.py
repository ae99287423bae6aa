"""Umami analytics on AWS: an isolated schema in an existing Aurora PostgreSQL,
generated credentials in Secrets Manager, Umami on ECS Fargate behind an ALB with
alarms and a dashboard, and the outputs ops relies on.

Configuration is validated before any resource is declared (components/config/).
The exported outputs are the versioned contract of contract.py (README.md, "Stack outputs").
"""

import pulumi
import pulumi_aws as aws

import contract
from components import config as stack_config
from components.database_parts.admin import admin_credentials
from components.database_parts.deployer_access import deployer_ingress
from components.monitoring_parts.alarms import Watched
from components.database import UmamiDatabase
from components.isolated_schema import tenant_schemas
from components.monitoring import UmamiMonitoring
from components.secrets import UmamiSecrets
from components.service import UmamiService
from components.shared.tags import Tagging
from contract import CONTRACT_VERSION

cfg = stack_config.load()
tagging = Tagging(environment=cfg.environment, extra=cfg.extra_tags)
admin = admin_credentials(cfg.database)

secrets = UmamiSecrets(
    "umami",
    database=cfg.database,
    secrets=cfg.secrets,
    tags=tagging.for_component("secrets"),
    protect=cfg.protect,
    admin_login=cfg.service is not None,  # installed by the service's deploy step
)
# With umami:deployerSecurityGroupId: the runner that runs `pulumi up` reaches Aurora through this rule.
deployer_rule = deployer_ingress("umami", access=cfg.deployer, db_port=cfg.database.port,
                                 tags=tagging.for_component("database"))
database = UmamiDatabase(
    "umami",
    config=cfg.database,
    admin=admin,
    role_password_verifier=secrets.db_password_verifier,  # PostgreSQL never sees the password
    protect=cfg.protect,
    reachable_after=[deployer_rule] if deployer_rule else [],
)
# Schema-per-tenant (umami:tenants): each its own schema, role and secret, through the same provider.
tenant_schemas(
    cfg.tenants,
    database=cfg.database,
    secrets=cfg.secrets,
    admin_username=admin.username,
    provider=database.provider,
    tags=tagging.for_component("tenants"),
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
        admin_secret_arn=secrets.admin_secret_arn,
        kms_key_id=cfg.secrets.kms_key_id,
        tags=tagging.for_component("service"),
        db_ca_pem=cfg.database.ca_bundle_pem,
        db_replica=cfg.database.reader_host is not None,
        deploy_after=[database, secrets],  # migrations need the schema and role; the task reads the secrets
        retention=cfg.retention,
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

# The outputs: the contract (contract.py, README "Stack outputs"), group by group. A database-only stack
# exports no service and no monitoring group at all; a None value is dropped by Pulumi (absent).
contract.export(
    pulumi.export,
    stack={
        "contractVersion": CONTRACT_VERSION,
        "environment": cfg.environment,
        "awsRegion": aws.get_region_output().region,
    },
    database={
        "dbHost": cfg.database.host,
        "dbPort": cfg.database.port,
        "dbName": cfg.database.name,
        "dbSslMode": cfg.database.sslmode,
        "dbCaBundle": cfg.database.ca_bundle_pem,  # PEM text every client verifies with; None with disable
        "dbReaderHost": cfg.database.reader_host,
        "dbPoolSize": cfg.database.pool_size,
        "dbConnectionLimit": cfg.database.connection_limit,
        "dbConnectionBudget": cfg.database.connection_budget.as_output(),
        "dbStatementTimeoutMs": cfg.database.statement_timeout_ms,
        "dbIdleInTransactionTimeoutMs": cfg.database.idle_in_transaction_timeout_ms,
        "dbSchema": database.schema_name,
        "dbRole": database.role_name,
        "dbAdminRole": pulumi.Output.unsecret(pulumi.Output.from_input(admin.username)),
        "dbDropSchemaCascade": True if cfg.database.drop_schema_cascade else None,
        "applicationRoles": list(cfg.database.application_roles),
        "tenants": list(cfg.tenants.names),  # each has schema and role tenant_<name>
        "tenantRegistry": cfg.tenants.registry,  # kept by `python -m ops.tenants registry --apply`
        "tenantServiceRole": cfg.tenants.service_role,
        "auroraClusterIdentifier": cfg.database.cluster_identifier,  # set, or taken from dbHost
        "auroraInstanceIdentifiers": list(cfg.database.instance_identifiers),
        "dbMaxConnections": cfg.database.max_connections,
    },
    secrets={
        "dbSecretArn": secrets.db_secret_arn,
        "dbSecretName": secrets.db_secret_name,
        "appSecretArn": secrets.app_secret_arn,
        "adminSecretArn": cfg.database.admin_secret_arn,
        "umamiAdminSecretArn": secrets.admin_secret_arn,
        "umamiAdminSecretName": secrets.admin_secret_name,
    },
    service=None if service is None else {
        "ecsClusterName": service.cluster_name,
        "ecsClusterArn": service.cluster_arn,
        "ecsServiceName": service.service_name,
        "taskDefinitionFamily": service.task_definition_family,
        "targetGroupArn": service.target_group_arn,
        "targetGroupArnSuffix": service.target_group_arn_suffix,
        "loadBalancerArnSuffix": service.load_balancer_arn_suffix,
        "albDnsName": service.alb_dns_name,
        "url": service.url,
        "logGroupName": service.log_group_name,
        "albSecurityGroupId": service.alb_security_group_id,
        "taskSecurityGroupId": service.task_security_group_id,
        "umamiVersion": service.umami_version,
        "httpsWarning": service.https_warning,
        "retentionDays": service.retention_days,
        "retentionScheduleName": service.retention_schedule_name,
    },
    monitoring=None if monitoring is None else {
        "alarmNames": monitoring.alarm_names,
        "alarmTopicArn": monitoring.alarm_topic_arn,
        "dashboardName": monitoring.dashboard_name,
    },
)
