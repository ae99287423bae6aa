"""The stack's invariants as pure functions: each returns the violations it finds.

Resource checks take `(resource_type, props)` as the policy engine sees them
(camelCase input names, JSON documents as strings) and return a list of
messages; an empty list means compliant or not applicable. Stack checks take
`(urn, resource_type, props)` triples and return `(urn, message)` pairs.

Only the standard library is used here (and the repository's `facts`, standard
library too, which the pack's `__main__` puts on the path): the policy pack runs
in its own virtual environment with nothing but `pulumi-policy` installed. `props` may be plain
dicts/lists or the engine's read-only mapping proxies, so the code relies on
`Mapping`/`Sequence` only.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from facts import (ECS_SERVICE, FARGATE_SIZES, HEARTBEAT_PATH, IAM_POLICY, IAM_ROLE, IAM_ROLE_POLICY,
                   LOAD_BALANCER, LOG_GROUP, PG_DEFAULT_PRIVILEGES, PG_EXTENSION, PG_GRANT, PG_ROLE, PG_SCHEMA,
                   REQUIRED_TAGS, SECRET, SECURITY_GROUP, TARGET_GROUP, TASK_DEFINITION)

# Secrets Umami reads; they must arrive through the task definition's `secrets`.
UMAMI_SECRETS = ("DATABASE_URL", "APP_SECRET")
STATEFUL_DATABASE_TYPES = (PG_SCHEMA, PG_ROLE, PG_EXTENSION)

# The AWS types this stack declares that accept tags (SecretVersion, RolePolicy,
# Dashboard, scaling policies, ... do not).
TAGGABLE_TYPES = frozenset({
    SECRET,
    LOG_GROUP,
    "aws:cloudwatch/metricAlarm:MetricAlarm",
    "aws:sns/topic:Topic",
    "aws:ecs/cluster:Cluster",
    ECS_SERVICE,
    TASK_DEFINITION,
    LOAD_BALANCER,
    TARGET_GROUP,
    "aws:lb/listener:Listener",
    "aws:lb/listenerRule:ListenerRule",
    SECURITY_GROUP,
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    IAM_ROLE,
    IAM_POLICY,
    "aws:appautoscaling/target:Target",
    "aws:kms/key:Key",
})

SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|DATABASE_URL|PRIVATE_KEY|ACCESS_KEY|API_KEY|CREDENTIAL",
                         re.IGNORECASE)
SECRET_VALUE = re.compile(
    r"://[^/\s:@]+:[^/\s@]+@"            # a URL with user:password@
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|\b(AKIA|ASIA)[0-9A-Z]{16}\b"       # an AWS access key id
)
SECRET_REFERENCE = re.compile(r"^arn:aws[a-z-]*:(secretsmanager:[a-z0-9-]+:\d{12}:secret:.+"
                              r"|ssm:[a-z0-9-]+:\d{12}:parameter/.+)$")
SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:(?P<name>[^*?]+?)"
                        r"(?P<suffix>-\*|-\?{6})?$")
SECRET_READ_ACTION = "secretsmanager:getsecretvalue"


def _is_map(value: Any) -> bool:
    return isinstance(value, Mapping)


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if _is_list(value) else [value]


def _document(value: Any) -> Any:
    """A JSON document given as a string (as pulumi_aws inputs are) or already parsed."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


# -- ECS ------------------------------------------------------------------------------------

def tasks_without_public_ip(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """ECS services run in subnets they are given, with no public IP."""
    if resource_type != ECS_SERVICE:
        return []
    network = props.get("networkConfiguration")
    if not _is_map(network):
        return ["the service has no networkConfiguration: Fargate tasks must run in the stack's private subnets"]
    problems = []
    if _truthy(network.get("assignPublicIp")):
        problems.append("networkConfiguration.assignPublicIp is true: tasks must not get a public IP")
    if not _as_list(network.get("subnets")):
        problems.append("networkConfiguration.subnets is empty: name the private subnets")
    return problems


def task_size_in_range(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Fargate cpu/memory stay within the story's sizes."""
    if resource_type != TASK_DEFINITION:
        return []
    try:
        size = (int(str(props.get("cpu"))), int(str(props.get("memory"))))
    except ValueError:
        size = None
    if size in FARGATE_SIZES:
        return []
    allowed = ", ".join(f"{c}/{m}" for c, m in FARGATE_SIZES)
    return [f"cpu={props.get('cpu')} memory={props.get('memory')} is outside the allowed cpu/memory: {allowed}"]


def _containers(props: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    containers = _document(props.get("containerDefinitions"))
    if not _is_list(containers):
        return None
    return [c for c in containers if _is_map(c)]


def secrets_only_through_task_secrets(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """No secret-looking environment values; `secrets` reference Secrets Manager/SSM ARNs;
    Umami's DATABASE_URL and APP_SECRET arrive through `secrets`."""
    if resource_type != TASK_DEFINITION:
        return []
    containers = _containers(props)
    if containers is None:
        return ["containerDefinitions is not a JSON list of containers"]
    problems = []
    for container in containers:
        name = container.get("name", "?")
        for variable in _as_list(container.get("environment")):
            if not _is_map(variable):
                continue
            key, value = str(variable.get("name", "")), str(variable.get("value", ""))
            if SECRET_NAME.search(key):
                problems.append(f"container {name}: environment variable {key} looks like a secret; "
                                "pass it in `secrets` (valueFrom a Secrets Manager ARN)")
            elif SECRET_VALUE.search(value):
                problems.append(f"container {name}: environment variable {key} holds a credential-like value; "
                                "pass it in `secrets`")
        delivered = set()
        for secret in _as_list(container.get("secrets")):
            if not _is_map(secret):
                continue
            delivered.add(str(secret.get("name", "")))
            if not SECRET_REFERENCE.match(str(secret.get("valueFrom", ""))):
                problems.append(f"container {name}: secret {secret.get('name')} valueFrom is not a Secrets Manager "
                                "or SSM parameter ARN")
        if "umami-software/umami" in str(container.get("image", "")):
            for required in UMAMI_SECRETS:
                if required not in delivered:
                    problems.append(f"container {name}: {required} is not delivered through `secrets`")
    return problems


# -- IAM ------------------------------------------------------------------------------------

def _policy_documents(resource_type: str, props: Mapping[str, Any]) -> list[Any]:
    if resource_type in (IAM_POLICY, IAM_ROLE_POLICY):
        return [_document(props.get("policy"))]
    if resource_type == IAM_ROLE:
        return [_document(p.get("policy")) for p in _as_list(props.get("inlinePolicies")) if _is_map(p)]
    return []


def _grants_secret_read(actions: list[Any]) -> bool:
    return any(fnmatch.fnmatchcase(SECRET_READ_ACTION, str(a).lower()) for a in actions)


def secret_access_scoped(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Who may read secrets may read named secrets only: no `*`, no NotResource/NotAction."""
    problems = []
    for document in _policy_documents(resource_type, props):
        if not _is_map(document):
            continue
        for index, statement in enumerate(_as_list(document.get("Statement"))):
            if not _is_map(statement) or statement.get("Effect") != "Allow":
                continue
            label = f"statement {statement.get('Sid') or index}"
            if "NotAction" in statement:
                problems.append(f"{label}: Allow with NotAction can grant secretsmanager:GetSecretValue on "
                                "anything; list the actions")
                continue
            if not _grants_secret_read(_as_list(statement.get("Action"))):
                continue
            if "NotResource" in statement:
                problems.append(f"{label}: secret read with NotResource; list the secret ARNs")
                continue
            resources = _as_list(statement.get("Resource"))
            if not resources:
                problems.append(f"{label}: secret read without Resource")
            for resource in resources:
                if not SECRET_ARN.match(str(resource)):
                    problems.append(f"{label}: secret read on {resource!r}; scope it to the stack's secret ARNs")
    return problems


# -- load balancing, logs, tags ------------------------------------------------------------------

def heartbeat_health_check(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Target groups check Umami's /api/heartbeat (GET / answers 307 and would never be healthy)."""
    if resource_type != TARGET_GROUP:
        return []
    check = props.get("healthCheck")
    if not _is_map(check):
        return [f"no healthCheck: the default path / answers 307; set healthCheck.path={HEARTBEAT_PATH}"]
    problems = []
    if check.get("enabled") is False:
        problems.append("healthCheck.enabled is false")
    if check.get("path") != HEARTBEAT_PATH:
        problems.append(f"healthCheck.path={check.get('path')!r}; use {HEARTBEAT_PATH}")
    matcher = check.get("matcher")
    if matcher is not None and "200" not in re.split(r"[,\s]+", str(matcher)) and "200-" not in str(matcher):
        problems.append(f"healthCheck.matcher={matcher!r} does not accept 200, which the heartbeat returns")
    return problems


def log_retention_set(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Log groups expire their events (0 or unset means kept forever, billed forever)."""
    if resource_type != LOG_GROUP:
        return []
    try:
        days = int(str(props.get("retentionInDays")))
    except ValueError:
        days = 0
    return [] if days > 0 else ["retentionInDays is not set: set a retention (e.g. 30 days)"]


def tags_present(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Taggable AWS resources carry the UserMetrics tagging schema."""
    if resource_type not in TAGGABLE_TYPES:
        return []
    tags = props.get("tags")
    tags = tags if _is_map(tags) else {}
    missing = [key for key in REQUIRED_TAGS if not str(tags.get(key) or "").strip()]
    return [f"missing tag(s) {', '.join(missing)}"] if missing else []


# -- PostgreSQL ---------------------------------------------------------------------------------

ROLE_ATTRIBUTES = {
    "superuser": "SUPERUSER",
    "createRole": "CREATEROLE",
    "createDatabase": "CREATEDB",
    "replication": "REPLICATION",
    "bypassRowLevelSecurity": "BYPASSRLS",
}


def role_least_privilege(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Roles the stack creates have no dangerous attribute and no membership."""
    if resource_type != PG_ROLE:
        return []
    problems = [f"role {props.get('name')} has {keyword}" for attr, keyword in ROLE_ATTRIBUTES.items()
                if _truthy(props.get(attr))]
    members = _as_list(props.get("roles"))
    if members:
        problems.append(f"role {props.get('name')} is a member of {', '.join(map(str, members))}")
    return problems


def stateful_protected(resource_type: str, protect: bool) -> list[str]:
    """Schema, role and extension are protected: deleting them loses data or breaks Umami."""
    if resource_type in STATEFUL_DATABASE_TYPES and not protect:
        return [f"{resource_type.split(':')[-1]} is not protected; set protect (umami:protectStatefulResources)"]
    return []


def grants_within_schema(resources: Sequence[tuple[str, str, Mapping[str, Any]]]) -> list[tuple[str, str]]:
    """Grants and default privileges only on the schema(s) the stack creates; on the
    database, nothing beyond CONNECT."""
    schemas = {str(props.get("name")) for _, kind, props in resources if kind == PG_SCHEMA}
    allowed = ", ".join(sorted(schemas)) or "none declared"
    problems = []
    for urn, kind, props in resources:
        if kind not in (PG_GRANT, PG_DEFAULT_PRIVILEGES):
            continue
        object_type = str(props.get("objectType", ""))
        if kind == PG_GRANT and object_type == "database":
            extra = sorted({str(p).upper() for p in _as_list(props.get("privileges"))} - {"CONNECT"})
            if extra:
                problems.append((urn, f"grants {', '.join(extra)} on database {props.get('database')}; "
                                      "only CONNECT is allowed"))
            continue
        schema = props.get("schema")
        if not schema:
            problems.append((urn, f"{object_type or 'privileges'} without a schema apply database-wide; "
                                  f"name the schema ({allowed})"))
        elif str(schema) not in schemas:
            problems.append((urn, f"grants on schema {schema}; only the stack's schema is allowed ({allowed})"))
    return problems


def tasks_in_private_subnets(resources: Sequence[tuple[str, str, Mapping[str, Any]]]) -> list[tuple[str, str]]:
    """Services never share a subnet with an internet-facing load balancer (which sits in public subnets)."""
    public: set[str] = set()
    for _, kind, props in resources:
        if kind == LOAD_BALANCER and not _truthy(props.get("internal")):
            public.update(str(s) for s in _as_list(props.get("subnets")))
            public.update(str(m.get("subnetId")) for m in _as_list(props.get("subnetMappings")) if _is_map(m))
    problems = []
    for urn, kind, props in resources:
        if kind != ECS_SERVICE or not _is_map(props.get("networkConfiguration")):
            continue
        shared = sorted(public & {str(s) for s in _as_list(props["networkConfiguration"].get("subnets"))})
        if shared:
            problems.append((urn, f"tasks run in {', '.join(shared)}, a subnet of an internet-facing load "
                                  "balancer; use private subnets"))
    return problems
