"""`python -m ops.preview summarize`: Pulumi's `preview --json` digest to the risk-first review.

Fixtures follow the digest Pulumi writes (pkg/backend/display/json.go): steps
with op, urn, oldState/newState (checkpoint format, secrets as "[secret]",
unknowns as Pulumi's sentinel), diffReasons, replaceReasons and detailedDiff.
The one larger than a comment is generated here.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ops.core.errors import OpsError
from ops.preview.model import CREATE, CRITICAL, DELETE, HIGH, MEDIUM, REPLACE, UNKNOWN, UPDATE
from ops.preview.render import COMMENT_LIMIT, markdown, plain_text
from ops.preview.events import digest_of, read_events, violations_of
from ops.preview.summarize import load_preview, lookup, summarize
from ops.engine.program import PROJECT_ROOT

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "preview"


def review_of(name: str):
    return summarize(load_preview(FIXTURES / f"{name}.json"))


def by_rule(review) -> dict[str, list]:
    found: dict[str, list] = {}
    for finding in review.findings:
        found.setdefault(finding.rule, []).append(finding)
    return found


def test_create_is_listed_without_risks():
    review = review_of("create")
    assert review.title == "Pulumi preview · stack `dev`"
    assert {c.name for c in review.changes} == {"umami-schema", "umami-role", "umami-schema-usage",
                                                "umami-db-credentials", "umami-db-credentials-value"}
    assert {c.action for c in review.changes} == {CREATE}  # the root stack step is left out
    assert review.findings == []
    text = markdown(review)
    assert "No risks found." in text and "**+ create** `umami-schema`" in text


def test_update_shows_property_diffs_and_flags_iam_and_world_ingress():
    review = review_of("update")
    secret = next(c for c in review.changes if c.name == "umami-db-credentials")
    assert secret.action == UPDATE
    assert [(p.path, p.old, p.new) for p in secret.properties] == [("recoveryWindowInDays", 7, 30)]
    assert secret.old_protect and secret.new_protect
    found = by_rule(review)
    iam = found["iam-widened"][0]
    assert iam.severity == HIGH and "`secretsmanager:ListSecrets`" in iam.title and "(`*`)" in iam.title
    world = found["sg-world-open"][0]
    assert (world.resource, world.severity) == ("umami-task-in-world", HIGH)
    assert "tcp 3000 to 0.0.0.0/0" in world.title
    # The policy JSON is compared as a document, not as two opaque strings.
    policy = next(c for c in review.changes if c.name == "umami-execution")
    assert {p.path for p in policy.properties} == {"policy.Statement[1].Action[1]", "policy.Statement[1].Resource"}
    assert "__defaults" not in json.dumps([p.path for c in review.changes for p in c.properties])


def test_replace_uses_replace_reasons_and_folds_replacement_steps():
    review = review_of("replace")
    changes = {c.name: c for c in review.changes}
    assert {c.action for c in changes.values()} == {REPLACE}
    assert len(review.changes) == 3  # create-replacement + replace + delete-replaced of the task: one change
    assert changes["umami-schema"].replace_keys == ["database"]
    assert changes["umami-tg"].properties[0].forces_replacement
    found = by_rule(review)
    schema = found["stateful-replace"][0]
    assert (schema.resource, schema.severity) == ("umami-schema", CRITICAL)
    assert "(`database`)" in schema.title and "refuses until protect is lifted" in schema.detail
    assert [(f.resource, f.severity) for f in found["stateful-replace"][1:]] == [("umami-tg", HIGH)]
    assert "umami-task" not in {f.resource for f in review.findings}  # a task definition revision is fine
    image = changes["umami-task"].properties[0]
    assert (image.path, image.new) == ("containerDefinitions[0].image", "ghcr.io/umami-software/umami:3.1.1")


def test_delete_flags_data_loss_and_respects_retain_on_delete():
    review = review_of("delete")
    assert {c.action for c in review.changes} == {DELETE}
    severities = {f.resource: (f.rule, f.severity) for f in review.findings}
    assert severities == {
        "umami-schema": ("stateful-delete", CRITICAL),
        "umami-logs": ("stateful-delete", HIGH),
        "umami-pgcrypto": ("stateful-delete", MEDIUM),  # retainOnDelete: PostgreSQL keeps the extension
    }
    assert review.findings[0].resource == "umami-schema"


def test_unknown_values_render_as_known_after_apply():
    digest = json.loads((FIXTURES / "create.json").read_text())
    grant = next(s for s in digest["steps"] if s["urn"].endswith("::umami-schema-usage"))
    assert grant["newState"]["inputs"]["schema"] == UNKNOWN
    grant["op"] = "update"
    grant["oldState"] = dict(grant["newState"], inputs=dict(grant["newState"]["inputs"], schema="umami"))
    review = summarize(digest)
    change = next(c for c in review.changes if c.name == "umami-schema-usage")
    assert [(p.path, p.old, p.new) for p in change.properties] == [("schema", "umami", UNKNOWN)]
    assert '"umami" -> (known after apply)' in plain_text(review)


def _large_preview(resources: int) -> dict[str, Any]:
    """A preview of many tag updates plus one schema deletion, far over a comment's size."""
    template = json.loads((FIXTURES / "update.json").read_text())
    secret_step = template["steps"][1]
    steps = [template["steps"][0]]
    for index in range(resources):
        step = copy.deepcopy(secret_step)
        name = f"umami-extra-secret-{index:04d}"
        step["urn"] = step["urn"].rsplit("::", 1)[0] + f"::{name}"
        for key in ("oldState", "newState"):
            step[key]["urn"] = step["urn"]
        step["newState"]["inputs"]["description"] = "x" * 150 + f" {index}"
        step["diffReasons"] = ["description", "recoveryWindowInDays"]
        step["detailedDiff"]["description"] = {"kind": "update", "inputDiff": True}
        steps.append(step)
    steps.append(json.loads((FIXTURES / "delete.json").read_text())["steps"][1])  # the schema, sorted late
    return {"steps": steps, "changeSummary": {"update": resources, "delete": 1}}


def test_a_preview_larger_than_a_comment_is_cut_after_the_summary(tmp_path):
    digest = _large_preview(400)
    path = tmp_path / "large.json"
    path.write_text(json.dumps(digest))
    assert path.stat().st_size > 10 * COMMENT_LIMIT
    review = summarize(load_preview(path))
    full = markdown(review, limit=10**9)
    assert len(full) > COMMENT_LIMIT
    cut = markdown(review)
    assert len(cut) <= COMMENT_LIMIT
    assert cut.startswith("### Pulumi preview · stack `dev`\n\n**Risks: 1 critical")
    assert cut.index("**CRITICAL**") < cut.index("#### Changes")
    shown = cut.count("**~ update**")
    assert 0 < shown < 400
    assert f"_… {400 - shown} more changed resources not shown" in cut
    assert cut.rstrip().endswith("</sub>")


def test_even_a_huge_risk_table_stays_under_the_limit():
    digest = _large_preview(0)
    delete_step = digest["steps"][-1]
    digest["steps"] = [copy.deepcopy(delete_step) for _ in range(600)]
    for index, step in enumerate(digest["steps"]):
        step["urn"] = step["urn"] + f"-{index:03d}"
    review = summarize(digest)
    assert len(review.findings) == 600
    cut = markdown(review, limit=20_000)
    assert len(cut) <= 20_000
    shown = cut.count("| **CRITICAL** |")
    assert 0 < shown < 600
    assert f"\n\n_… {600 - shown} more risks cut to fit the comment limit" in cut


def test_cli_summarize_and_fail_on(tmp_path):
    command = [sys.executable, "-m", "ops.preview", "summarize", str(FIXTURES / "delete.json")]
    result = subprocess.run([*command, "--fail-on", "high"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert result.returncode == 1 and result.stdout.startswith("### Pulumi preview")
    result = subprocess.run([*command, "--fail-on", "critical", "--format", "json"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert json.loads(result.stdout)["summary"]["risks"] == {"critical": 1, "high": 1, "medium": 1}
    clean = subprocess.run([sys.executable, "-m", "ops.preview", "summarize", str(FIXTURES / "create.json"),
                            "--fail-on", "medium"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert clean.returncode == 0


def test_not_a_preview_is_exit_2(tmp_path):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"dbHost": "x"}))
    with pytest.raises(OpsError, match="is not a `pulumi preview --json` document"):
        load_preview(path)
    result = subprocess.run([sys.executable, "-m", "ops.preview", "summarize", str(path)], cwd=PROJECT_ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(("path", "expected"), [
    ("tags.Owner", "team"),
    ("ingress[1].cidrBlocks[0]", "0.0.0.0/0"),
    ('tags["aws:cloudformation:stack"]', "s"),
    ("ingress[5]", None),
    ("missing.key", None),
])
def test_lookup_follows_pulumi_property_paths(path, expected):
    value = {"tags": {"Owner": "team", "aws:cloudformation:stack": "s"},
             "ingress": [{}, {"cidrBlocks": ["0.0.0.0/0"]}]}
    assert lookup(value, path) == expected


# -- the same preview streamed as engine events (PULUMI_ENABLE_STREAMING_JSON_PREVIEW=true) ------------

EVENTS = FIXTURES / "policy-events.jsonl"  # replace.json's steps as events, a secret version, violations


def test_a_streamed_preview_reviews_like_its_digest():
    streamed, digest = summarize(load_preview(EVENTS)), review_of("replace")
    assert streamed.findings == digest.findings
    by_urn = {change.urn: change for change in streamed.changes}
    for change in digest.changes:
        assert by_urn[change.urn] == change, change.name
    secret = next(c for c in streamed.changes if c.name == "umami-db-credentials-value")
    # Pulumi blinds secrets in events ({sig: secret, ciphertext: "[secret]"}); the review shows [secret].
    assert [(p.path, p.old, p.new) for p in secret.properties] == [("secretString", "[secret]", "[secret]")]
    assert "1b47061264138c4ac30d75fd1eb44270" not in json.dumps(load_preview(EVENTS))


def test_streamed_diagnostics_keep_errors_drop_ephemeral_lines_and_colours(tmp_path):
    events = read_events(EVENTS)
    digest = digest_of(events)
    assert [d["message"] for d in digest["diagnostics"]] == ["warning: the schema is replaced\n"]
    assert digest["changeSummary"] == {"replace": 3, "update": 1, "same": 30}
    assert [(v.policy, v.level, v.severity, bool(v.urn)) for v in violations_of(events)] == [
        ("stateful-database-resources-protected", "mandatory", CRITICAL, True),
        ("required-tags", "advisory", MEDIUM, False)]
    failed = tmp_path / "failed.jsonl"
    failed.write_text(EVENTS.read_text() + json.dumps(
        {"sequence": 99, "diagnosticEvent": {"message": "<{%fg 1%}>error: boom<{%reset%}>", "severity": "error"}}) + "\n")
    assert summarize(load_preview(failed)).notes == ["preview error: error: boom"]


@pytest.mark.parametrize(("line", "problem"), [
    ("{not json", "line 3 is not a JSON event"),
    ('{"sequence": 2, "resourcePreEvent": {"metadata": {"op": "update"}}}', "line 3: /resourcePreEvent/metadata/urn: required but missing"),
    ('{"sequence": 2, "policyEvent": {"message": "m", "policyName": "", "policyPackName": "p", "enforcementLevel": "mandatory"}}',
     "line 3: /policyEvent/policyName"),
    ('{"sequence": NaN}', "line 3 is not a JSON event"),
])
def test_a_damaged_event_line_is_one_line_naming_it(tmp_path, line, problem):
    lines = EVENTS.read_text().splitlines()
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines[:2] + [line] + lines[3:]) + "\n")
    result = subprocess.run([sys.executable, "-m", "ops.preview", "summarize", str(path)], cwd=PROJECT_ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {path}: line 3") and problem in result.stderr
    assert len(result.stderr.splitlines()) == 1
