"""The whole stack configuration: its sections read together, the stack-wide keys (environment,
deployService, protection, tags), and the check that every configured key is one the stack reads."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Mapping

import pulumi

from components.config.database import DatabaseConfig, read_database
from components.config.deployer import DeployerAccess, read_deployer
from components.config.keys import KNOWN_KEYS, NAMESPACE
from components.config.monitoring import MonitoringConfig, read_monitoring
from components.config.network import NetworkConfig, read_network
from components.config.reader import ConfigError, Reader, show
from components.config.retention import RetentionConfig, read_retention
from components.config.secrets import SecretsConfig, read_secrets
from components.config.service import ServiceConfig, read_service
from components.config.tenants import TenantsConfig, read_tenants
from facts import REQUIRED_TAGS, SECRET_MASK

TAG_KEY = re.compile(r"^[\w .:/=+@-]{1,128}$")
ENVIRONMENT = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
RESERVED_TAG_KEYS = REQUIRED_TAGS  # the stack sets them; configured extras may not override them


@dataclass(frozen=True)
class StackConfig:
    environment: str
    database: DatabaseConfig
    secrets: SecretsConfig
    protect: bool
    extra_tags: Mapping[str, str] = field(default_factory=dict)
    tenants: TenantsConfig = field(default_factory=TenantsConfig)  # none declared by default
    # None when umami:deployService=false (a database-only stack).
    network: NetworkConfig | None = None
    service: ServiceConfig | None = None
    monitoring: MonitoringConfig | None = None
    retention: RetentionConfig | None = None
    # None without umami:deployerSecurityGroupId; for service and database-only stacks alike.
    deployer: DeployerAccess | None = None


def environment_problem(value: str) -> str | None:
    return None if ENVIRONMENT.match(value) else "is not an environment name; use lowercase letters, digits and - (max 32)"


def read_tags(reader: Reader) -> dict[str, str]:
    tags = reader.object("tags", dict, {})
    clean: dict[str, str] = {}
    for key, value in tags.items():
        if key in RESERVED_TAG_KEYS:
            reader.fail("tags", key, f"overrides a managed tag; {', '.join(RESERVED_TAG_KEYS)} are set by the stack")
        elif key.lower().startswith("aws:") or not TAG_KEY.match(key):
            reader.fail("tags", key, "is not a valid tag key (1-128 characters, not starting with aws:)")
        elif not isinstance(value, str) or len(value) > 256:
            reader.fail(f"tags.{show(key, 40)}", value, "is not a tag value; use a string of at most 256 characters")
        else:
            clean[key] = value
    return clean


def configured_keys(namespace: str = NAMESPACE) -> list[str]:
    """The keys of `namespace` the stack sets, without the namespace: from the config the program was
    given (set_all_config, as under mocks) and from PULUMI_CONFIG (how the language host passes it)."""
    prefix = f"{namespace}:"
    keys = set(pulumi.runtime.config.CONFIG.get()) | set(pulumi.runtime.config.get_config_env())
    return sorted(key[len(prefix):] for key in keys if key.startswith(prefix))


def unknown_key_problems(reader: Reader) -> list[str]:
    """One line per configured key this stack never reads, naming the nearest known key."""
    by_lower = {key.lower(): key for key in KNOWN_KEYS}
    problems = []
    for name in configured_keys(reader.config.name):
        if name in KNOWN_KEYS:
            continue
        value = SECRET_MASK if reader.is_secret(name) else show(reader.config.get(name))
        nearest = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
        hint = (f"did you mean {reader.key(by_lower[nearest[0]])}?" if nearest
                else "see Pulumi.dev.yaml or README for the keys this stack reads")
        problems.append(f"{show(reader.key(name))}={value} is not a key this stack reads; {hint}")
    return problems


def load(config: pulumi.Config | None = None, stack: str | None = None) -> StackConfig:
    """Read and validate the whole stack configuration, or raise ConfigError."""
    reader = Reader(config or pulumi.Config(NAMESPACE))
    reader.problems.extend(unknown_key_problems(reader))
    stack_name = stack or pulumi.get_stack()
    environment = reader.string("environment", stack_name, check=environment_problem)
    deploy_service = reader.boolean("deployService", True)
    database = read_database(reader, deploy_service)
    secrets = read_secrets(reader)
    result = StackConfig(
        environment=environment,
        database=database,
        secrets=secrets,
        protect=reader.boolean("protectStatefulResources", True),
        extra_tags=read_tags(reader),
        tenants=read_tenants(reader, database, secrets),
        network=(network := read_network(reader) if deploy_service else None),
        # Sections are read in this order, so their problems are listed in it.
        service=(service := read_service(reader) if deploy_service else None),
        monitoring=read_monitoring(reader) if deploy_service else None,
        retention=read_retention(reader, service.umami_version) if service else None,
        deployer=read_deployer(reader, network),
    )
    if reader.problems:
        raise ConfigError(reader.problems)
    return result
