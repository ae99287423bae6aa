"""Every `umami:` key the stack reads, in one place.

`Reader` refuses to read a key that is not listed (tests/unit/test_config_keys.py also checks the list
against the package's source both ways), and `load` rejects a configured key that is not listed,
naming the nearest one.
"""

from __future__ import annotations

from facts import CONFIG_NAMESPACE as NAMESPACE

__all__ = ["KNOWN_KEYS", "NAMESPACE", "SECRET_KEYS"]

KNOWN_KEYS = (
    # stack
    "environment", "deployService", "protectStatefulResources", "tags",
    # database
    "dbHost", "dbPort", "dbName", "dbSslMode", "allowUnencryptedDatabase", "dbCaCertificate", "dbReaderHost",
    "dbPoolSize", "adminSecretArn", "adminUsername", "adminPassword", "schemaName", "roleName",
    "applicationRoles", "connectionLimit", "statementTimeoutMs", "idleInTransactionTimeoutMs",
    "dropSchemaCascade", "auroraClusterIdentifier", "auroraInstanceIdentifiers", "maxConnections",
    # tenants
    "tenants", "tenantConnectionLimit", "tenantRegistry", "tenantServiceRole",
    # secrets
    "secretName", "appSecretName", "kmsKeyId", "secretRecoveryWindowDays",
    # network
    "vpcId", "privateSubnetIds", "publicSubnetIds", "auroraSecurityGroupId", "albInternal", "albIngressCidrs",
    "adminCidrs", "publicPaths", "certificateArn", "domainName", "sslPolicy",
    # service
    "image", "allowMovingImageTag", "cpu", "memory", "cpuArchitecture", "logRetentionDays",
    "healthCheckGracePeriodSeconds", "enableExecuteCommand", "existingClusterArn",
    "serviceDiscoveryNamespace", "serviceDiscoveryNamespaceId",
    # retention
    "retentionDays",
    # monitoring
    "alarmEmail", "responseTimeAlarmMs", "target5xxAlarmCount",
    # deployer
    "deployerSecurityGroupId",
)

# The keys whose values are secrets by meaning, however they were given (`pulumi config set --secret`
# or not, `--set`, PULUMI_CONFIG*): the program reads them only as Pulumi secrets, an error line never
# shows them, and `ops.preview plan` masks their values wherever they appear.
SECRET_KEYS = frozenset({"adminPassword"})
