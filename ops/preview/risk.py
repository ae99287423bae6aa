"""The risk rules: which changes a reviewer must not miss, and why.

Each rule looks at the list of `ResourceChange`s (from two offline plans or from
`pulumi preview --json`) and returns `Finding`s:

- stateful-delete / stateful-replace: deleting or replacing what holds data or
  serves traffic (schema, role, extension, secrets, log group, load balancer,
  target group);
- stateful-rename: renaming the schema or the role in place;
- forced-replace: any other replacement (ECS task definitions excepted: a new
  revision is how they change);
- secret-regenerated: a generated password is replaced;
- provider-target: the database provider now points somewhere else;
- iam-widened: new actions, new resources, `*`, new statements or managed policies;
- sg-world-open: ingress from 0.0.0.0/0 or ::/0 beyond the load balancer's 80/443;
- protect-removed: `protect` taken off a resource;
- task-size: Fargate cpu/memory outside the story's (256,512), (256,1024), (512,1024).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from facts import (ECS_SERVICE, FARGATE_SIZES, IAM_POLICY, IAM_ROLE, IAM_ROLE_POLICY, LOAD_BALANCER, LOG_GROUP,
                   RANDOM_PASSWORD, SECRET, SECURITY_GROUP, TARGET_GROUP, TASK_DEFINITION)
from facts import PG_EXTENSION as EXTENSION
from facts import PG_ROLE as ROLE
from facts import PG_SCHEMA as SCHEMA
from ops.preview.model import (CREATE, CRITICAL, DELETE, HIGH, MEDIUM, REPLACE, SAME, UNKNOWN, UPDATE, Finding,
                               ResourceChange, severity_rank, short_type)

POSTGRES_PROVIDER = "pulumi:providers:postgresql"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SG_INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
IAM_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
IAM_ATTACHMENTS_EXCLUSIVE = "aws:iam/rolePolicyAttachmentsExclusive:RolePolicyAttachmentsExclusive"

# type -> (severity, what is lost when it is deleted or replaced)
STATEFUL: dict[str, tuple[str, str]] = {
    SCHEMA: (CRITICAL, "it holds every Umami table: DROP SCHEMA fails while tables exist, or with "
                       "dropCascade deletes them all"),
    ROLE: (CRITICAL, "it is Umami's login: its objects are reassigned to the admin, the role is dropped "
                     "and every connection fails until a new role and secret are in place"),
    EXTENSION: (HIGH, "Umami's migrations and functions use pgcrypto; DROP EXTENSION breaks them"),
    SECRET: (HIGH, "tasks cannot start without it, and a new secret with the same "
             "name fails while the old one waits out its recovery window"),
    LOG_GROUP: (HIGH, "its log history is deleted with it"),
    LOAD_BALANCER: (HIGH, "a new load balancer has a new DNS name: clients and DNS records break until updated"),
    TARGET_GROUP: (HIGH, "listeners and the ECS service point at it: traffic drops while it is replaced"),
}

WORLD = ("0.0.0.0/0", "::/0")
ALB_PORTS = (80, 443)


def _finding(change: ResourceChange, severity: str, rule: str, title: str, detail: str) -> Finding:
    return Finding(severity=severity, rule=rule, urn=change.urn, resource=change.name, type=change.type,
                   title=title, detail=detail)


def _shown(value: Any) -> str:
    if value == UNKNOWN:
        return "(known after apply)"
    return value if isinstance(value, str) else json.dumps(value)


def _protect_note(change: ResourceChange) -> str:
    if change.old_protect:
        return (" It is protected, so `pulumi up` refuses until protect is lifted in a separate change"
                " — which is itself the moment to stop and check.")
    return " It is not protected: nothing stops this in `pulumi up`."


# -- stateful resources ---------------------------------------------------------------

def stateful_changes(changes: list[ResourceChange]) -> list[Finding]:
    findings = []
    for change in changes:
        if change.type not in STATEFUL or change.action not in (DELETE, REPLACE):
            continue
        severity, loss = STATEFUL[change.type]
        label = short_type(change.type)
        if change.action == DELETE:
            if change.retain_on_delete:
                findings.append(_finding(change, MEDIUM, "stateful-delete", f"{label} `{change.name}` leaves the stack",
                                         "retainOnDelete is set: the object stays in place but is no longer managed."))
                continue
            findings.append(_finding(change, severity, "stateful-delete", f"{label} `{change.name}` will be deleted",
                                     f"Data-loss or outage risk: {loss}.{_protect_note(change)}"))
        else:
            reasons = ", ".join(f"`{k}`" for k in change.replace_keys) or "provider decision"
            findings.append(_finding(change, severity, "stateful-replace",
                                     f"{label} `{change.name}` will be replaced ({reasons})",
                                     f"Replacement deletes the old one: {loss}.{_protect_note(change)}"))
    return findings


def renames(changes: list[ResourceChange]) -> list[Finding]:
    """Schema and role renames: in place for the provider, but the app still uses the old name."""
    findings = []
    restarts = any(c.type in (ECS_SERVICE, TASK_DEFINITION) and c.action in (UPDATE, REPLACE) for c in changes)
    restart_note = "" if restarts else " Nothing in this change restarts them: force a new ECS deployment."
    for change in changes:
        if change.action != UPDATE or change.type not in (SCHEMA, ROLE) or "name" not in change.changed_keys():
            continue
        old, new = _shown((change.old_inputs or {}).get("name")), _shown((change.new_inputs or {}).get("name"))
        if change.type == SCHEMA:
            findings.append(_finding(
                change, CRITICAL, "stateful-rename", f"schema `{old}` renamed to `{new}`",
                "Pulumi shows an in-place update, but the schema that holds every Umami table changes "
                f"identity: the provider runs ALTER SCHEMA {old} RENAME TO {new}. Running tasks keep "
                f"`?schema={old}` in DATABASE_URL and lose every table until they restart with the new "
                f"secret.{restart_note} Grants and default privileges on the schema are replaced in the same "
                "update. Plan it as a migration with a maintenance window, or keep the name."))
        else:
            findings.append(_finding(
                change, HIGH, "stateful-rename", f"role `{old}` renamed to `{new}`",
                f"The provider runs ALTER ROLE {old} RENAME TO {new}. Running tasks log in as `{old}` and fail "
                f"on their next connection until they restart with the new secret.{restart_note}"))
    return findings


def forced_replacements(changes: list[ResourceChange]) -> list[Finding]:
    """Replacements of everything not covered by the stateful or secret rules."""
    findings = []
    skip = set(STATEFUL) | {TASK_DEFINITION, RANDOM_PASSWORD}
    for change in changes:
        if change.action != REPLACE or change.type in skip:
            continue
        reasons = ", ".join(f"`{k}`" for k in change.replace_keys) or "provider decision"
        findings.append(_finding(change, MEDIUM, "forced-replace",
                                 f"{short_type(change.type)} `{change.name}` will be replaced ({reasons})",
                                 "The provider cannot change these properties in place: the old resource is "
                                 "deleted and a new one created, with a gap in between."))
    return findings


def regenerated_secrets(changes: list[ResourceChange]) -> list[Finding]:
    return [
        _finding(change, HIGH, "secret-regenerated", f"generated secret `{change.name}` will be regenerated",
                 "A changed input of a random password makes a new value: the role password and the stored "
                 "secret change, and running tasks fail on their next connection until they restart.")
        for change in changes if change.type == RANDOM_PASSWORD and change.action in (REPLACE, DELETE)
    ]


def provider_target(changes: list[ResourceChange]) -> list[Finding]:
    findings = []
    for change in changes:
        if change.type != POSTGRES_PROVIDER or change.action not in (UPDATE, REPLACE):
            continue
        moved = sorted(change.changed_keys() & {"host", "port", "database", "username"})
        if moved:
            where = ", ".join(f"`{k}`" for k in moved)
            findings.append(_finding(change, HIGH, "provider-target",
                                     f"database provider `{change.name}` points elsewhere ({where})",
                                     "Every schema, role, grant and extension it manages is read and changed on "
                                     "the new target, where they may not exist: expect creates there and "
                                     "orphans on the old server."))
    return findings


# -- IAM --------------------------------------------------------------------------------

def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _documents(change_inputs: dict[str, Any] | None, type_token: str) -> list[Any]:
    """The policy documents a resource's inputs carry (JSON strings or objects)."""
    if not change_inputs:
        return []
    if type_token in (IAM_POLICY, IAM_ROLE_POLICY):
        return [change_inputs.get("policy")]
    if type_token == IAM_ROLE:
        docs = [change_inputs.get("assumeRolePolicy")]
        docs += [p.get("policy") for p in _as_list(change_inputs.get("inlinePolicies")) if isinstance(p, dict)]
        return docs
    return []


def permissions(documents: Iterable[Any]) -> set[tuple[str, str, str, str, str]]:
    """Allow statements flattened to (action, resource, principal, condition, effect-kind) tuples."""
    grants = set()
    for statement in _statements(documents):
        if statement.get("Effect") == "Allow":
            principal = json.dumps(statement.get("Principal"), sort_keys=True)
            condition = json.dumps(statement.get("Condition"), sort_keys=True)
            actions = [("Action", a) for a in _as_list(statement.get("Action"))]
            actions += [("NotAction", a) for a in _as_list(statement.get("NotAction"))]
            resources = [("Resource", r) for r in _as_list(statement.get("Resource"))]
            resources += [("NotResource", r) for r in _as_list(statement.get("NotResource"))]
            for kind_a, action in actions or [("Action", "")]:
                for kind_r, resource in resources or [("Resource", "")]:
                    grants.add((str(action).lower(), str(resource), principal, condition, f"{kind_a}/{kind_r}"))
    return grants


def action_spelling(documents: Iterable[Any]) -> dict[str, str]:
    """Lower-cased action -> the spelling the policy uses (IAM compares actions case-insensitively)."""
    spelled = {}
    for statement in _statements(documents):
        for action in _as_list(statement.get("Action")) + _as_list(statement.get("NotAction")):
            spelled[str(action).lower()] = str(action)
    return spelled


def _statements(documents: Iterable[Any]) -> Iterator[dict]:
    """Every statement of the policy documents (JSON strings or parsed); unreadable ones are skipped."""
    for document in documents:
        if isinstance(document, str):
            try:
                document = json.loads(document)
            except ValueError:
                continue
        if isinstance(document, dict):
            yield from (s for s in _as_list(document.get("Statement")) if isinstance(s, dict))


def iam_widened(changes: list[ResourceChange]) -> list[Finding]:
    findings = []
    for change in changes:
        if change.action not in (CREATE, UPDATE, REPLACE):
            continue
        if change.type == IAM_ATTACHMENT:
            old_arn = (change.old_inputs or {}).get("policyArn")
            new_arn = change.inputs.get("policyArn")
            if new_arn != old_arn:
                findings.append(_finding(change, HIGH, "iam-widened",
                                         f"managed policy attached to `{_shown(change.inputs.get('role'))}`",
                                         f"Attaches {_shown(new_arn)}: every action it allows, now or after AWS "
                                         "updates it."))
            continue
        if change.type == IAM_ATTACHMENTS_EXCLUSIVE:
            added_arns = sorted(set(map(str, _as_list(change.inputs.get("policyArns"))))
                                - set(map(str, _as_list((change.old_inputs or {}).get("policyArns")))))
            if added_arns:
                findings.append(_finding(change, HIGH, "iam-widened",
                                         f"managed policies attached to `{_shown(change.inputs.get('roleName'))}`",
                                         "Attaches " + ", ".join(f"`{a}`" for a in added_arns)
                                         + ": every action they allow, now or after AWS updates them."))
            continue
        if change.type not in (IAM_POLICY, IAM_ROLE_POLICY, IAM_ROLE):
            continue
        before = permissions(_documents(change.old_inputs, change.type))
        after = permissions(_documents(change.new_inputs, change.type))
        added = after - before
        if not added:
            continue
        spelled = action_spelling(_documents(change.new_inputs, change.type))
        old_actions = {g[0] for g in before}
        new_actions = sorted(spelled.get(a, a) for a in {g[0] for g in added} - old_actions - {""})
        star = sorted({spelled.get(g[0], g[0]) for g in added if g[1] == "*"})
        negated = any(not g[4].startswith("Action/Resource") for g in added)
        parts = []
        if new_actions:
            parts.append("new actions " + ", ".join(f"`{a}`" for a in new_actions))
        if star:
            parts.append("on all resources (`*`): " + ", ".join(f"`{a}`" for a in star))
        new_resources = sorted({g[1] for g in added} - {g[1] for g in before} - {"*", ""})
        if new_resources:
            parts.append("new resources " + ", ".join(f"`{r}`" for r in new_resources[:5])
                         + (f" and {len(new_resources) - 5} more" if len(new_resources) > 5 else ""))
        if negated:
            parts.append("NotAction/NotResource statements (allow everything except …)")
        if not parts:
            parts.append("new or broader statements (principal or condition)")
        severity = HIGH if (star or negated or change.action != CREATE or "*" in new_actions) else MEDIUM
        verb = "grants" if change.action == CREATE else "widened:"
        findings.append(_finding(change, severity, "iam-widened",
                                 f"IAM {short_type(change.type).split()[-1]} `{change.name}` {verb} "
                                 f"{'; '.join(parts)}",
                                 "Check that every added permission is needed and scoped to ARNs."))
    return findings


# -- security groups ---------------------------------------------------------------------

def _ports(protocol: Any, from_port: Any, to_port: Any) -> tuple[str, int, int]:
    proto = str(protocol).lower()
    if proto in ("-1", "all"):
        return "all", 0, 65535
    proto = {"6": "tcp", "17": "udp"}.get(proto, proto)
    try:
        return proto, int(from_port), int(to_port)
    except (TypeError, ValueError):
        return proto, 0, 65535


def ingress_rules(change: ResourceChange, inputs: dict[str, Any] | None) -> set[tuple[str, str, int, int, str]]:
    """World-reachable ingress a resource declares: (security group, protocol, from, to, cidr)."""
    if not inputs:
        return set()
    rules = set()
    if change.type == SECURITY_GROUP:
        group = change.new_id or change.old_id or change.urn
        for rule in _as_list(inputs.get("ingress")):
            if not isinstance(rule, dict):
                continue
            proto, low, high = _ports(rule.get("protocol"), rule.get("fromPort"), rule.get("toPort"))
            for cidr in _as_list(rule.get("cidrBlocks")) + _as_list(rule.get("ipv6CidrBlocks")):
                if cidr in WORLD:
                    rules.add((group, proto, low, high, cidr))
    elif change.type == SG_RULE and inputs.get("type") == "ingress":
        proto, low, high = _ports(inputs.get("protocol"), inputs.get("fromPort"), inputs.get("toPort"))
        for cidr in _as_list(inputs.get("cidrBlocks")) + _as_list(inputs.get("ipv6CidrBlocks")):
            if cidr in WORLD:
                rules.add((str(inputs.get("securityGroupId")), proto, low, high, cidr))
    elif change.type == SG_INGRESS_RULE:
        proto, low, high = _ports(inputs.get("ipProtocol"), inputs.get("fromPort"), inputs.get("toPort"))
        for cidr in (inputs.get("cidrIpv4"), inputs.get("cidrIpv6")):
            if cidr in WORLD:
                rules.add((str(inputs.get("securityGroupId")), proto, low, high, cidr))
    return rules


def load_balancer_groups(changes: list[ResourceChange]) -> set[str] | None:
    """Security group ids of internet-facing load balancers; None when they cannot be known."""
    groups: set[str] = set()
    balancers = [c for c in changes if c.type == LOAD_BALANCER and c.action != DELETE]
    if not balancers:
        return None
    for change in balancers:
        if change.inputs.get("internal") is True:
            continue
        ids = _as_list(change.inputs.get("securityGroups"))
        if any(not isinstance(i, str) or i == UNKNOWN for i in ids):
            return None
        groups.update(ids)
    return groups


def world_open(changes: list[ResourceChange]) -> list[Finding]:
    findings = []
    alb_groups = load_balancer_groups(changes)
    for change in changes:
        if change.action == DELETE or change.type not in (SECURITY_GROUP, SG_RULE, SG_INGRESS_RULE):
            continue
        added = ingress_rules(change, change.new_inputs) - ingress_rules(change, change.old_inputs)
        for group, proto, low, high, cidr in sorted(added):
            web_port = proto == "tcp" and low == high and low in ALB_PORTS
            # Without the load balancer's groups (e.g. an unchanged ALB missing from a preview), 80/443 pass.
            on_alb = alb_groups is None or group in alb_groups
            if web_port and on_alb:
                continue
            ports = "all ports" if proto == "all" else (f"{proto} {low}" if low == high else f"{proto} {low}-{high}")
            where = (" on a security group that is not the load balancer's" if web_port
                     else " beyond the load balancer's 80/443")
            findings.append(_finding(change, HIGH, "sg-world-open", f"`{change.name}` opens {ports} to {cidr}",
                                     f"Ingress from anywhere{where}. Tasks are reached only through the load "
                                     "balancer; use a security-group reference instead of a CIDR."))
    return findings


# -- options and sizes ----------------------------------------------------------------------

def protect_removed(changes: list[ResourceChange]) -> list[Finding]:
    findings = []
    for change in changes:
        if change.action in (SAME, UPDATE, REPLACE) and change.old_protect and not change.new_protect:
            findings.append(_finding(change, HIGH, "protect-removed",
                                     f"`protect` removed from {short_type(change.type)} `{change.name}`",
                                     "Once this is deployed, a later change can delete or replace it without "
                                     "any stop."))
    return findings


def _size(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def task_size(changes: list[ResourceChange]) -> list[Finding]:
    findings = []
    for change in changes:
        if change.type != TASK_DEFINITION or change.action not in (CREATE, UPDATE, REPLACE):
            continue
        if change.action != CREATE and not (change.changed_keys() & {"cpu", "memory"}):
            continue
        cpu, memory = _size(change.inputs.get("cpu")), _size(change.inputs.get("memory"))
        if (cpu, memory) in FARGATE_SIZES:
            continue
        allowed = ", ".join(f"{c}/{m}" for c, m in FARGATE_SIZES)
        findings.append(_finding(change, MEDIUM, "task-size",
                                 f"task size cpu={change.inputs.get('cpu')} memory={change.inputs.get('memory')} "
                                 "is outside the story's range",
                                 f"Allowed cpu/memory: {allowed}. Bigger tasks cost more; smaller ones run "
                                 "out of memory during migrations."))
    return findings


RULES: tuple[Callable[[list[ResourceChange]], list[Finding]], ...] = (
    stateful_changes, renames, regenerated_secrets, provider_target, iam_widened, world_open,
    protect_removed, task_size, forced_replacements,
)


def assess(changes: list[ResourceChange]) -> list[Finding]:
    """Every finding of every rule, most severe first, then in resource order."""
    findings = [finding for rule in RULES for finding in rule(changes)]
    return sorted(findings, key=lambda f: (severity_rank(f.severity), f.urn, f.rule, f.title))
