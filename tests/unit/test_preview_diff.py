"""`python -m ops.preview diff`: crafted stacks against the dev stack, each risk flagged, a no-op silent.

Variants come from the real program with `--set` overrides where the config can
express them; where the program (rightly) cannot produce the risky shape, the
head plan is edited the way a careless change would look.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import pytest

from ops.preview import plan
from ops.preview.diff import diff_plans
from ops.preview.model import CRITICAL, HIGH, MEDIUM, REPLACE, UPDATE, Review
from ops.preview.render import markdown
from ops.engine.program import PROJECT_ROOT

STACK = "dev"
KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/0a1b2c3d-1111-2222-3333-444455556666"


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return plan.build_plan(STACK)


@pytest.fixture(scope="module")
def renamed() -> dict[str, Any]:
    return plan.build_plan(STACK, {"umami:schemaName": "analytics"})


def resource(manifest: dict[str, Any], type_suffix: str, name: str) -> dict[str, Any]:
    return next(r for r in manifest["resources"] if r["type"].endswith(type_suffix) and r["name"] == name)


def rules(review: Review) -> dict[str, list]:
    found: dict[str, list] = {}
    for finding in review.findings:
        found.setdefault(finding.rule, []).append(finding)
    return found


def test_no_op_reports_nothing(base):
    again = plan.build_plan(STACK)
    review = diff_plans(base, again)
    assert review.findings == []
    assert review.counts()[UPDATE] == review.counts()[REPLACE] == 0
    assert review.config_changes == []
    text = markdown(review)
    assert "No risks found." in text and "#### Changes" not in text


def test_schema_rename_is_a_critical_risk_first(base, renamed):
    review = diff_plans(base, renamed)
    first = review.findings[0]
    assert (first.severity, first.rule, first.resource) == (CRITICAL, "stateful-rename", "umami-schema")
    assert "`umami` renamed to `analytics`" in first.title
    assert "ALTER SCHEMA umami RENAME TO analytics" in first.detail
    assert "Nothing in this change restarts them" in first.detail  # the service does not change
    assert [f for f in review.findings if f.severity == CRITICAL] == [first]
    # Grants on the schema are ForceNew: they are replaced, which is named too.
    replaced = {f.resource for f in rules(review)["forced-replace"]}
    assert {"umami-schema-usage", "umami-default-tables", "umami-default-sequences"} <= replaced
    text = markdown(review)
    assert text.index("**CRITICAL**") < text.index("#### Changes")
    assert "| `name` | `\"umami\"` | `\"analytics\"` |" in text
    # The stored DATABASE_URL changes with it, without being shown.
    assert "`secretString` _(secret value changes)_" in text
    assert "analytics" in text and "offline-" not in text


def test_schema_rename_fails_the_cli_with_fail_on_critical(base, renamed, tmp_path):
    (tmp_path / "base.json").write_text(plan.dumps(base))
    (tmp_path / "head.json").write_text(plan.dumps(renamed))
    command = [sys.executable, "-m", "ops.preview", "diff", str(tmp_path / "base.json"), str(tmp_path / "head.json")]
    gated = subprocess.run([*command, "--fail-on", "critical"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert gated.returncode == 1
    assert gated.stdout.startswith("### Offline plan diff")
    informative = subprocess.run([*command, "--format", "json"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert informative.returncode == 0
    assert json.loads(informative.stdout)["summary"]["risks"]["critical"] == 1


def test_widening_iam_through_config_is_flagged(base):
    head = plan.build_plan(STACK, {"umami:kmsKeyId": KMS_KEY})
    widened = rules(diff_plans(base, head))["iam-widened"]
    assert [(f.resource, f.severity) for f in widened] == [("umami-execution", HIGH)]
    assert "`kms:Decrypt`" in widened[0].title


def test_secret_read_on_star_is_flagged(base):
    head = copy.deepcopy(base)
    policy_entry = resource(head, "rolePolicy:RolePolicy", "umami-execution")
    document = json.loads(policy_entry["inputs"]["policy"])
    for statement in document["Statement"]:
        if "secretsmanager:GetSecretValue" in statement["Action"]:
            statement["Resource"] = "*"
    policy_entry["inputs"]["policy"] = json.dumps(document)
    widened = rules(diff_plans(base, head))["iam-widened"]
    assert len(widened) == 1 and widened[0].severity == HIGH
    assert "on all resources (`*`): `secretsmanager:GetSecretValue`" in widened[0].title


def test_new_statement_is_flagged_and_shown_as_added(base):
    head = copy.deepcopy(base)
    policy_entry = resource(head, "rolePolicy:RolePolicy", "umami-execution")
    document = json.loads(policy_entry["inputs"]["policy"])
    document["Statement"].append({"Sid": "Debug", "Effect": "Allow", "Action": "ssm:StartSession",
                                  "Resource": "arn:aws:ecs:eu-west-1:123456789012:task/umami-dev/*"})
    policy_entry["inputs"]["policy"] = json.dumps(document)
    review = diff_plans(base, head)
    assert "`ssm:StartSession`" in rules(review)["iam-widened"][0].title
    change = next(c for c in review.changes if c.name == "umami-execution" and c.type.endswith("RolePolicy"))
    added = [p for p in change.properties if p.kind == "add"]
    assert [p.path for p in added] == [f"policy.Statement[{len(document['Statement']) - 1}]"]


def _world_ingress(manifest: dict[str, Any], name: str, group_id: str, port: int, cidr: str = "0.0.0.0/0") -> None:
    key = "cidrIpv6" if ":" in cidr else "cidrIpv4"
    urn = f"urn:pulumi:{STACK}::umami::umami:service:UmamiService$aws:vpc/securityGroupIngressRule:" \
          f"SecurityGroupIngressRule::{name}"
    manifest["resources"].append({
        "urn": urn, "type": "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "name": name,
        "parent": "", "provider": "", "custom": True, "id": f"sgr-{name}", "protect": False,
        "retainOnDelete": False, "secretInputs": [], "secretDigests": {},
        "inputs": {key: cidr, "fromPort": port, "toPort": port, "ipProtocol": "tcp", "securityGroupId": group_id},
    })


def test_opening_the_task_security_group_to_the_world_is_flagged(base):
    head = copy.deepcopy(base)
    task_group = resource(head, "securityGroup:SecurityGroup", "umami-task")["id"]
    _world_ingress(head, "debug-3000", task_group, 3000)
    _world_ingress(head, "debug-443", task_group, 443, "::/0")
    opened = {f.resource: f for f in rules(diff_plans(base, head))["sg-world-open"]}
    assert set(opened) == {"debug-3000", "debug-443"}
    assert "beyond the load balancer's 80/443" in opened["debug-3000"].detail
    assert "not the load balancer's" in opened["debug-443"].detail  # 443, but not on the ALB


def test_the_load_balancer_open_on_80_is_not_a_risk():
    # The program's own rule: the ALB's security group open to the world on port 80.
    closed = plan.build_plan(STACK, {"umami:albIngressCidrs": json.dumps(["10.0.0.0/8"])})
    opened = plan.build_plan(STACK)
    review = diff_plans(closed, opened)
    created = [c.name for c in review.changes if c.action == "create"]
    assert any("0-0-0-0" in name for name in created)  # the world rule is new in the head
    assert "sg-world-open" not in rules(review)


def test_removing_protect_is_flagged_for_every_stateful_resource(base):
    head = plan.build_plan(STACK, {"umami:protectStatefulResources": "false"})
    review = diff_plans(base, head)
    removed = rules(review)["protect-removed"]
    assert {f.resource for f in removed} == {"umami-schema", "umami-role", "umami-pgcrypto",
                                             "umami-db-credentials", "umami-app-secret", "umami-admin-login"}
    assert all(f.severity == HIGH for f in removed)
    assert "| `protect` _(resource option)_ | `true` | `false` |" in markdown(review)


def test_task_size_outside_the_story_is_flagged_but_a_new_revision_is_not(base):
    head = copy.deepcopy(base)
    task = resource(head, "taskDefinition:TaskDefinition", "umami-task")
    containers = json.loads(task["inputs"]["containerDefinitions"])
    containers[0]["image"] = containers[0]["image"].rsplit(":", 1)[0] + ":3.1.1"
    task["inputs"]["containerDefinitions"] = json.dumps(containers)
    review = diff_plans(base, head)
    change = next(c for c in review.changes if c.name == "umami-task" and c.type.endswith("TaskDefinition"))
    assert change.action == REPLACE and review.findings == []

    task["inputs"].update(cpu="1024", memory="2048")
    sized = rules(diff_plans(base, head))["task-size"]
    assert len(sized) == 1 and sized[0].severity == MEDIUM and "cpu=1024 memory=2048" in sized[0].title


def test_deleting_the_schema_is_critical_once_it_is_no_longer_retained(base):
    # By default the schema is retainOnDelete (kept by a destroy): leaving the stack is medium.
    head = copy.deepcopy(base)
    head["resources"] = [r for r in head["resources"] if not r["type"].endswith("schema:Schema")]
    kept = rules(diff_plans(base, head))["stateful-delete"]
    assert [(f.resource, f.severity) for f in kept] == [("umami-schema", MEDIUM)]
    assert "retainOnDelete" in kept[0].detail
    # With umami:dropSchemaCascade the schema is not retained: deleting it loses Umami's data.
    cascading = copy.deepcopy(base)
    next(r for r in cascading["resources"] if r["type"].endswith("schema:Schema"))["retainOnDelete"] = False
    deleted = rules(diff_plans(cascading, head))["stateful-delete"]
    assert [(f.resource, f.severity) for f in deleted] == [("umami-schema", CRITICAL)]
    assert "protected" in deleted[0].detail


def test_target_group_port_change_is_a_replacement_with_outage(base):
    head = copy.deepcopy(base)
    resource(head, "targetGroup:TargetGroup", "umami-tg")["inputs"]["port"] = 8080
    replaced = rules(diff_plans(base, head))["stateful-replace"]
    assert [(f.resource, f.severity) for f in replaced] == [("umami-tg", HIGH)]
    assert "(`port`)" in replaced[0].title


def test_regenerated_password_and_moved_provider_are_flagged(base):
    head = copy.deepcopy(base)
    resource(head, "randomPassword:RandomPassword", "umami-db-password")["inputs"]["length"] = 48
    resource(head, "providers:postgresql", "umami-admin")["inputs"]["host"] = "other.cluster.example.com"
    found = rules(diff_plans(base, head))
    assert [f.resource for f in found["secret-regenerated"]] == ["umami-db-password"]
    assert [f.resource for f in found["provider-target"]] == ["umami-admin"]


def test_property_paths_follow_pulumi_notation_and_round_trip():
    from ops.preview.diff import property_changes
    from ops.preview.summarize import lookup

    old = {"tags": {"Owner": "a", "aws:cloudformation:stack": "s", "x.y": 1},
           "ingress": [{"cidrBlocks": ["10.0.0.0/8"]}],
           "policy": json.dumps({"Statement": [{"Action": ["logs:PutLogEvents"]}]})}
    new = {"tags": {"Owner": "b", "aws:cloudformation:stack": "t", "x.y": 2},
           "ingress": [{"cidrBlocks": ["0.0.0.0/0"]}],
           "policy": json.dumps({"Statement": [{"Action": ["logs:PutLogEvents", "s3:*"]}]})}
    changes = property_changes(old, new)
    assert [c.path for c in changes] == ['ingress[0].cidrBlocks[0]', "policy.Statement[0].Action[1]",
                                         "tags.Owner", 'tags["aws:cloudformation:stack"]', 'tags["x.y"]']
    documents = dict(new, policy=json.loads(new["policy"]))
    for change in changes:
        assert lookup(documents, change.path) == change.new
