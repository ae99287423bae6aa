"""Diff two offline plans: resources added, removed and changed, property by property.

Whether a change is an in-place update or a replacement is decided the way the
providers decide it: `REPLACE_ON_CHANGE` lists, for the types this stack uses,
the inputs the provider cannot change in place (ForceNew in the Terraform
providers Pulumi bridges). Properties holding JSON documents (IAM policies,
container definitions) are compared as documents, so a reviewer sees
`policy.Statement[0].Action[1]`, not two unreadable strings.
"""

from __future__ import annotations

import json
from typing import Any

from ops.preview.model import (CREATE, DELETE, MASK, REPLACE, SAME, UPDATE, PropertyChange, ResourceChange,
                               Review, top_level_key)
from ops.preview.risk import assess

ALL_INPUTS = "*"

# Inputs whose change makes the provider replace the resource (checked against the
# provider sources: terraform-provider-postgresql, terraform-provider-aws).
# Note what is *not* here: postgresql Schema and Role `name` (ALTER ... RENAME TO)
# and Extension `schema` (ALTER EXTENSION ... SET SCHEMA) change in place.
REPLACE_ON_CHANGE: dict[str, frozenset[str]] = {
    "postgresql:index/schema:Schema": frozenset({"database"}),
    "postgresql:index/extension:Extension": frozenset({"name", "database"}),
    "postgresql:index/grant:Grant": frozenset({"role", "database", "schema", "objectType", "objects", "columns"}),
    "postgresql:index/defaultPrivileges:DefaultPrivileges": frozenset(
        {"role", "database", "owner", "schema", "objectType"}),
    "random:index/randomPassword:RandomPassword": frozenset({ALL_INPUTS}),
    "aws:secretsmanager/secret:Secret": frozenset({"name", "namePrefix"}),
    "aws:secretsmanager/secretVersion:SecretVersion": frozenset({"secretId"}),
    "aws:cloudwatch/logGroup:LogGroup": frozenset({"name", "namePrefix"}),
    "aws:cloudwatch/metricAlarm:MetricAlarm": frozenset({"name"}),
    "aws:cloudwatch/dashboard:Dashboard": frozenset({"dashboardName"}),
    "aws:lb/loadBalancer:LoadBalancer": frozenset({"name", "namePrefix", "internal", "loadBalancerType"}),
    "aws:lb/targetGroup:TargetGroup": frozenset(
        {"name", "namePrefix", "port", "protocol", "protocolVersion", "targetType", "vpcId", "ipAddressType"}),
    "aws:lb/listener:Listener": frozenset({"loadBalancerArn"}),
    "aws:ecs/cluster:Cluster": frozenset({"name"}),
    "aws:ecs/service:Service": frozenset({"name", "cluster", "iamRole", "schedulingStrategy", "launchType"}),
    # Task definitions are immutable: every change registers a new revision.
    "aws:ecs/taskDefinition:TaskDefinition": frozenset({ALL_INPUTS}),
    "aws:ec2/securityGroup:SecurityGroup": frozenset({"name", "namePrefix", "description", "vpcId"}),
    "aws:ec2/securityGroupRule:SecurityGroupRule": frozenset(
        {"type", "securityGroupId", "protocol", "fromPort", "toPort", "cidrBlocks", "ipv6CidrBlocks",
         "prefixListIds", "sourceSecurityGroupId", "self"}),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": frozenset({"securityGroupId"}),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": frozenset({"securityGroupId"}),
    "aws:iam/role:Role": frozenset({"name", "namePrefix", "path"}),
    "aws:iam/policy:Policy": frozenset({"name", "namePrefix", "path", "description"}),
    "aws:iam/rolePolicy:RolePolicy": frozenset({"name", "namePrefix", "role"}),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": frozenset({"role", "policyArn"}),
    "aws:appautoscaling/target:Target": frozenset({"resourceId", "scalableDimension", "serviceNamespace"}),
    "aws:appautoscaling/policy:Policy": frozenset({"name", "resourceId", "scalableDimension", "serviceNamespace"}),
}


def forces_replacement(type_token: str, key: str) -> bool:
    keys = REPLACE_ON_CHANGE.get(type_token, frozenset())
    return ALL_INPUTS in keys or key in keys


def _as_document(value: Any) -> Any:
    """A string holding a JSON object or array, parsed; anything else unchanged."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _join(path: str, key: str | int) -> str:
    """Pulumi's property path notation: `a.b`, `a[0]`, `a["key.with:odd chars"]` (top-level keys plain)."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if not path:
        return key
    plain = key.replace("_", "").replace("-", "").isalnum()
    return f"{path}.{key}" if plain else f'{path}["{key}"]'


def property_changes(old: Any, new: Any, path: str = "") -> list[PropertyChange]:
    """Leaf-level differences between two input values, in Pulumi's path notation."""
    old, new = _as_document(old), _as_document(new)
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for key in sorted(set(old) | set(new), key=str):
            child = _join(path, key)
            if key not in old:
                changes.append(PropertyChange(child, "add", None, new[key]))
            elif key not in new:
                changes.append(PropertyChange(child, "delete", old[key], None))
            else:
                changes.extend(property_changes(old[key], new[key], child))
        return changes
    if isinstance(old, list) and isinstance(new, list):
        if len(old) == len(new):
            changes = []
            for index, (before, after) in enumerate(zip(old, new)):
                changes.extend(property_changes(before, after, _join(path, index)))
            return changes
        return _list_membership(old, new, path)
    return [PropertyChange(path, "update", old, new)]


def _list_membership(old: list[Any], new: list[Any], path: str) -> list[PropertyChange]:
    """Lists of different lengths: which elements went and which came (e.g. a policy statement)."""
    def key(value: Any) -> str:
        return json.dumps(_as_document(value), sort_keys=True)

    remaining = [key(v) for v in new]
    changes = []
    for index, value in enumerate(old):
        if key(value) in remaining:
            remaining.remove(key(value))
        else:
            changes.append(PropertyChange(_join(path, index), "delete", value, None))
    kept = [key(v) for v in old]
    for index, value in enumerate(new):
        if key(value) in kept:
            kept.remove(key(value))
        else:
            changes.append(PropertyChange(_join(path, index), "add", None, value))
    return changes


def input_changes(type_token: str, old: dict[str, Any], new: dict[str, Any]) -> list[PropertyChange]:
    """Property changes of a resource's inputs, each marked when it forces replacement."""
    changes = property_changes(old, new)
    return [
        PropertyChange(c.path, c.kind, c.old, c.new, forces_replacement(type_token, top_level_key(c.path)))
        for c in changes
    ]


def secret_changes(type_token: str, base: dict[str, Any], head: dict[str, Any]) -> list[PropertyChange]:
    """Secret inputs whose fingerprint differs: both sides show [secret], the change is still real."""
    before, after = base.get("secretDigests") or {}, head.get("secretDigests") or {}
    return [
        PropertyChange(key, "update", MASK, MASK, forces_replacement(type_token, key))
        for key in sorted(set(before) & set(after)) if before[key] != after[key]
    ]


def _change(base: dict[str, Any] | None, head: dict[str, Any] | None) -> ResourceChange:
    entry = head or base or {}
    old_inputs = base.get("inputs", {}) if base else None
    new_inputs = head.get("inputs", {}) if head else None
    change = ResourceChange(
        urn=entry["urn"], type=entry.get("type", ""), name=entry.get("name", ""), action=SAME,
        old_inputs=old_inputs, new_inputs=new_inputs,
        old_protect=bool(base and base.get("protect")), new_protect=bool(head and head.get("protect")),
        retain_on_delete=bool((base or head or {}).get("retainOnDelete")),
        old_id=str(base.get("id", "")) if base else "", new_id=str(head.get("id", "")) if head else "",
    )
    if base is None:
        change.action = CREATE
    elif head is None:
        change.action = DELETE
    else:
        change.properties = input_changes(change.type, old_inputs or {}, new_inputs or {})
        change.properties += secret_changes(change.type, base, head)
        change.replace_keys = sorted({top_level_key(p.path) for p in change.properties if p.forces_replacement})
        if change.replace_keys:
            change.action = REPLACE
        elif change.properties:
            change.action = UPDATE
        elif base.get("protect") != head.get("protect") or base.get("retainOnDelete") != head.get("retainOnDelete"):
            change.action = UPDATE  # an option change: recorded in state, nothing touches the cloud
    return change


def diff_plans(base: dict[str, Any], head: dict[str, Any], source: str = "offline plan") -> Review:
    """Compare two plans; every resource of either appears once (unchanged ones as `same`)."""
    base_by_urn = {r["urn"]: r for r in base.get("resources", [])}
    head_by_urn = {r["urn"]: r for r in head.get("resources", [])}
    changes = [_change(base_by_urn.get(urn), head_by_urn.get(urn))
               for urn in sorted(set(base_by_urn) | set(head_by_urn))]
    stack = head.get("stack") or base.get("stack") or "?"
    return Review(
        title=f"Offline plan diff · stack `{stack}`",
        source=source,
        changes=changes,
        findings=assess(changes),
        config_changes=property_changes(base.get("config", {}), head.get("config", {})),
    )
