"""The stack configuration: read once from `pulumi.Config`, typed, and validated
before any resource is declared.

Every problem is reported as one line naming the key, the value and what is
allowed, e.g. `umami:dbPort=70000 is not a port; use 1-65535`. All problems
are collected and raised together as a `ConfigError`, which Pulumi prints
without a traceback. A key this package does not read (KNOWN_KEYS) is a problem
naming the nearest known key; a YAML null or an empty value is a problem, never
"unset"; values are shown with control characters escaped and cut after
MAX_SHOWN characters; secret values are never shown.

One module per section, each with its dataclass, its constants and its reading:

    keys.py        KNOWN_KEYS, the one list of `umami:` keys; SECRET_KEYS, those that are secrets
    reader.py      Reader, ConfigError, show, and the validators the sections share
    database.py    DatabaseConfig, TLS, the connection budget
    secrets.py     SecretsConfig
    tenants.py     TenantsConfig (schema-per-tenant names, their connection limit, the registry)
    network.py     NetworkConfig
    service.py     ServiceConfig
    monitoring.py  MonitoringConfig
    retention.py   RetentionConfig (how many days of events the scheduled job keeps)
    deployer.py    DeployerAccess (the security group `pulumi up` connects to Aurora from)
    stack.py       StackConfig, tags, unknown keys, and `load`, which reads them all

Callers import from `components.config`; the names below are its interface.
"""

from __future__ import annotations

from components.config.database import (DEFAULT_ADMIN_USERNAME, DEPLOYMENT_MAXIMUM_PERCENT, RESERVED_KEYWORDS,
                                        RESERVED_ROLE_NAMES, SSL_MODES, ConnectionBudget, DatabaseConfig,
                                        derived_cluster_identifier, read_database)
from components.config.deployer import DeployerAccess, read_deployer
from components.config.keys import KNOWN_KEYS, NAMESPACE, SECRET_KEYS
from components.config.monitoring import MonitoringConfig, read_monitoring
from components.config.network import NetworkConfig, read_network
from components.config.reader import MAX_SHOWN, ConfigError, Reader, show
from components.config.retention import DEFAULT_RETENTION_DAYS, MAX_RETENTION_DAYS, RetentionConfig, read_retention
from components.config.secrets import SecretsConfig, read_secrets
from components.config.service import DEFAULT_IMAGE, LOG_RETENTION_DAYS, ServiceConfig, read_service
from components.config.stack import StackConfig, load
from components.config.tenants import TenantsConfig, read_tenants

__all__ = [
    "DEFAULT_ADMIN_USERNAME", "DEFAULT_IMAGE", "DEFAULT_RETENTION_DAYS", "DEPLOYMENT_MAXIMUM_PERCENT", "KNOWN_KEYS",
    "LOG_RETENTION_DAYS", "MAX_RETENTION_DAYS", "MAX_SHOWN", "NAMESPACE", "RESERVED_KEYWORDS", "RESERVED_ROLE_NAMES",
    "SECRET_KEYS", "SSL_MODES",
    "ConfigError", "ConnectionBudget", "DatabaseConfig", "DeployerAccess", "MonitoringConfig", "NetworkConfig", "Reader",
    "RetentionConfig", "SecretsConfig", "ServiceConfig", "StackConfig", "TenantsConfig",
    "derived_cluster_identifier", "load", "read_database", "read_deployer", "read_monitoring", "read_network",
    "read_retention", "read_secrets", "read_service", "read_tenants", "show",
]
