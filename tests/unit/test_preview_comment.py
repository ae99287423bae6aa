"""`python -m ops.preview comment`: one comment, risks first, policy violations inline, within GitHub's
limit, silent when nothing changes, inert whatever the names; rendered for real from two offline plans."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ops.preview import comment
from ops.preview.model import (CREATE, CRITICAL, DELETE, HIGH, MEDIUM, REPLACE, UPDATE, Finding, PolicyViolation,
                               PropertyChange, ResourceChange, Review)
from ops.preview.render import render as render_review
from ops.preview.reviews import review_from_document
from ops.engine.program import PROJECT_ROOT

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "preview"
EVENTS = FIXTURES / "policy-events.jsonl"
URN = "urn:pulumi:dev::umami::umami:database:UmamiDatabase${type}::{name}"
SCHEMA, ROLE, GRANT = "postgresql:index/schema:Schema", "postgresql:index/role:Role", "postgresql:index/grant:Grant"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ops.preview", *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=180, env=dict(os.environ, PYTHONHASHSEED="0"))


def change(name: str, type_token: str, action: str, **extra) -> ResourceChange:
    return ResourceChange(urn=URN.format(type=type_token, name=name), type=type_token, name=name, action=action, **extra)


def finding(severity: str, rule: str, target: ResourceChange, title: str, detail: str = "why") -> Finding:
    return Finding(severity=severity, rule=rule, urn=target.urn, resource=target.name, type=target.type, title=title,
                   detail=detail)


def review(title: str, changes: list[ResourceChange], findings: list[Finding], **extra) -> Review:
    return Review(title=title, source=f"{title} source", changes=changes, findings=findings, **extra)


def risk_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| **")]


# -- order ---------------------------------------------------------------------------------------

def test_risks_come_first_most_severe_first_destructive_first_and_once():
    schema = change("umami-schema", SCHEMA, UPDATE, properties=[PropertyChange("name", "update", "umami", "analytics")])
    role = change("umami-role", ROLE, DELETE)
    grant = change("umami-grant", GRANT, REPLACE)
    offline = review("Offline plan diff · stack `dev`", [schema, grant], [
        finding(MEDIUM, "forced-replace", grant, "grant `umami-grant` will be replaced"),
        finding(CRITICAL, "stateful-rename", schema, "schema `umami` renamed to `analytics`"),
    ])
    preview = review("Pulumi preview · stack `dev`", [schema, role], [
        finding(CRITICAL, "stateful-rename", schema, "schema `umami` renamed to `analytics`"),  # found by both
        finding(HIGH, "protect-removed", schema, "`protect` removed from `umami-schema`"),
        finding(CRITICAL, "stateful-delete", role, "role `umami-role` will be deleted"),
    ])
    violation = PolicyViolation(policy="stateful-database-resources-protected", pack="umami-invariants",
                                level="mandatory", message="Protected.\nnot protected", urn=role.urn)
    text = comment.render(comment.Inputs(plan_diff=offline, preview=preview, violations=[violation]))
    rows = risk_rows(text)
    assert [row.split(" | ")[0] for row in rows] == ["| **CRITICAL**"] * 3 + ["| **HIGH**", "| **MEDIUM**"]
    # Within critical, the destructive ones first (the role is deleted), and a risk found twice is one row.
    assert "role `umami-role` will be deleted" in rows[0] and "policy `stateful-database" in rows[1]
    assert "renamed to" in rows[2] and rows[2].endswith("| offline plan, pulumi preview |")
    assert text.index("#### Risks") < text.index("#### Offline plan diff") < text.index("#### Pulumi preview")
    assert text.splitlines()[0] == comment.MARKER
    # The changes of each source: destructive first, inside a fold.
    preview_part = text.split("#### Pulumi preview", 1)[1]
    assert preview_part.index("`umami-role`") < preview_part.index("`umami-schema`")
    assert "<details><summary>2 changed resources, 1 replaced or deleted (listed first)</summary>" in preview_part


# -- nothing to say --------------------------------------------------------------------------------

def test_nothing_changes_anywhere_means_no_comment():
    quiet = review("Offline plan diff · stack `dev`", [change("umami-schema", SCHEMA, "same")], [])
    inputs = comment.Inputs(plan_diff=quiet, preview=review("Pulumi preview · stack `dev`", [], []))
    assert comment.render(inputs) == "" and comment.exit_code(inputs, "medium") == 0
    # One note (a preview error), one violation or one config change is enough to speak.
    for louder in (comment.Inputs(preview=review("p", [], [], notes=["preview error: boom"])),
                   comment.Inputs(violations=[PolicyViolation("p", "pack", "advisory", "m")]),
                   comment.Inputs(plan_diff=review("o", [], [], config_changes=[PropertyChange("umami:x", "update", 1, 2)]))):
        assert comment.render(louder).startswith(comment.MARKER)


# -- policy violations from the streamed preview ---------------------------------------------------

def test_policy_violations_from_the_streamed_preview_are_inline(tmp_path):
    summary = cli("summarize", str(EVENTS), "--format", "json")
    assert summary.returncode == 0, summary.stderr
    (tmp_path / "preview-review.json").write_text(summary.stdout)
    result = cli("comment", "--preview", str(tmp_path / "preview-review.json"), "--policy", str(EVENTS),
                 "--fail-on", "critical")
    assert result.returncode == 1 and result.stderr == ""
    rows = risk_rows(result.stdout)
    assert rows[0].startswith("| **CRITICAL** | postgresql Schema `umami-schema` will be replaced")
    assert rows[1] == ("| **CRITICAL** | policy `stateful-database-resources-protected` (mandatory) | "
                       "`umami-schema` (postgresql Schema) | The schema, role and extension are protected from "
                       "deletion. umami-schema is not protected: set protect=True | policy pack |")
    assert "| **MEDIUM** | policy `required-tags` (advisory) | the stack |" in result.stdout
    assert "2 from the policy pack" in result.stdout and "policy pack: 2 violations" in result.stdout
    # Only critical counts for the gate: without the mandatory violation and the replacement, exit 0.
    assert cli("comment", "--policy", str(EVENTS), "--fail-on", "high").returncode == 1


def test_a_preview_digest_has_no_violations_and_says_so():
    result = cli("comment", "--policy", str(FIXTURES / "update.json"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"error: {FIXTURES / 'update.json'} is not a stream of engine events")
    assert "PULUMI_ENABLE_STREAMING_JSON_PREVIEW=true" in result.stderr and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    ((), "comment needs --plan-diff, --preview or --policy"),
    (("--policy", str(EVENTS), "--artifact", "javascript:alert(1)"), "is not an https URL"),
    (("--policy", str(EVENTS), "--artifact", "https://x/a)[b"), "is not an https URL"),
    (("--policy", str(EVENTS), "--limit", "10"), "--limit=10 is too small"),
])
def test_bad_arguments_are_one_line_and_exit_2(args, message):
    result = cli("comment", *args)
    assert result.returncode == 2 and result.stdout == "" and message in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_a_review_file_that_breaks_its_schema_is_one_line(tmp_path):
    document = json.loads(render_review(review("o", [change("umami-schema", SCHEMA, UPDATE)], []), "json"))
    document["changes"][0]["action"] = "explode"
    (tmp_path / "review.json").write_text(json.dumps(document))
    result = cli("comment", "--plan-diff", str(tmp_path / "review.json"))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {tmp_path / 'review.json'}: /changes/0/action: \"explode\" is not one of")


# -- size -----------------------------------------------------------------------------------------

def huge_inputs() -> comment.Inputs:
    changes, findings = [], []
    for index in range(3000):
        target = change(f"resource-{index:04d}", GRANT, REPLACE if index % 3 else UPDATE, properties=[
            PropertyChange(f"tags.k{p}", "update", "x" * 150, "y" * 150, True) for p in range(45)])
        changes.append(target)
        findings.append(finding(HIGH if index % 2 else MEDIUM, "forced-replace", target,
                                f"grant `{target.name}` will be replaced", "d" * 300))
    violations = [PolicyViolation("p", "pack", "mandatory", "m" * 900, changes[0].urn) for _ in range(50)]
    config = [PropertyChange(f"umami:key{i}", "update", i, i + 1) for i in range(100)]
    return comment.Inputs(plan_diff=review("Offline plan diff", changes, findings, config_changes=config),
                          preview=review("Pulumi preview", changes, findings[:100]), violations=violations)


def test_a_huge_review_stays_within_the_limit_and_says_what_was_cut():
    inputs = huge_inputs()
    text = comment.render(inputs, artifact="<https://github.com/o/r/actions/runs/1>")
    assert len(text) <= 65_536 == comment.LIMIT
    assert text.splitlines()[0] == comment.MARKER
    notice = re.search(r"_… cut to fit a pull-request comment \(65,536 characters\): (\d+) risks, (\d+) config changes, "
                       r"(\d+) changed resources\. The whole review is in <https://github\.com/o/r/actions/runs/1>\._",
                       text)
    assert notice, text[-600:]
    rows = risk_rows(text)
    assert len(rows) + int(notice.group(1)) == 3000 + 50  # every risk either shown or counted (the 100 twice-found once)
    assert int(notice.group(3)) == 6000  # nothing of the two change lists fits after the risks
    assert rows[0].startswith("| **CRITICAL** | policy `p`")  # the most severe survive the cut
    assert text.count("<details>") == text.count("</details>")
    assert text.endswith("`python -m ops.preview comment`</sub>\n")


def test_a_smaller_limit_cuts_changes_after_the_risks():
    target = change("umami-schema", SCHEMA, UPDATE, properties=[PropertyChange("name", "update", "a", "b")])
    many = [change(f"r{i}", GRANT, REPLACE, properties=[PropertyChange("x", "update", "a" * 100, "b" * 100, True)])
            for i in range(60)]
    inputs = comment.Inputs(plan_diff=review("o", [target, *many], [finding(CRITICAL, "stateful-rename", target,
                                                                             "schema renamed")]))
    text = comment.render(inputs, limit=4000)
    assert len(text) <= 4000 and len(risk_rows(text)) == 1
    assert re.search(r"cut to fit a pull-request comment \(4,000 characters\): \d+ changed resources\.", text)
    assert text.count("<details>") == text.count("</details>") == 1


# -- hostile names --------------------------------------------------------------------------------

# A code span: a run of backticks not escaped, up to the same run.
CODE_SPAN = re.compile(r"(?<![\\`])(`+)(?!`).+?(?<!`)\1(?!`)")
HOSTILE = "evil|`x`</details><script>alert(1)</script>\n| **CRITICAL** | forged [link](https://evil.example)"


def test_hostile_names_values_and_messages_stay_inert():
    target = change(HOSTILE, SCHEMA, DELETE, properties=[PropertyChange(HOSTILE, "update", HOSTILE, comment.MARKER)])
    inputs = comment.Inputs(
        plan_diff=review(f"Offline {HOSTILE}", [target], [finding(HIGH, "stateful-delete", target, f"t `{HOSTILE}`",
                                                                  HOSTILE)],
                         notes=[HOSTILE], config_changes=[PropertyChange(HOSTILE, "add", None, HOSTILE)]),
        violations=[PolicyViolation(HOSTILE, HOSTILE, "mandatory", f"{comment.MARKER}\n{HOSTILE}", target.urn)])
    text = comment.render(inputs)
    assert text.startswith(comment.MARKER + "\n")
    # Outside code spans (which GitHub shows literally) no tag, link, comment or fold is left.
    prose = CODE_SPAN.sub("", text.split("\n", 1)[1])
    assert "<!--" not in prose and "<script" not in prose and "](http" not in prose
    assert prose.count("<details>") == prose.count("</details>") == 1
    assert [line for line in text.splitlines() if line.startswith("<")] == [
        comment.MARKER, "<details><summary>1 changed resource, 1 replaced or deleted (listed first)</summary>",
        "</details>", next(line for line in text.splitlines() if line.startswith("<sub>"))]
    assert len(risk_rows(text)) == 2  # the forged row stayed inside a cell
    for row in risk_rows(text):
        assert len(re.findall(r"(?<!\\)\|", row)) == 6  # five cells: no name added one


# -- rendered for real: two offline plans, a diff, the comment -------------------------------------

@pytest.fixture(scope="module")
def plans(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("plans")
    for name, extra in (("base", ()), ("head", ("--set", "umami:schemaName=analytics")), ("again", ())):
        result = cli("plan", "--stack", "dev", *extra, "--out", str(directory / f"{name}.json"))
        assert result.returncode == 0, result.stderr
    return directory


def diff_review(plans: Path, head: str) -> Path:
    result = cli("diff", str(plans / "base.json"), str(plans / f"{head}.json"), "--format", "json")
    assert result.returncode == 0, result.stderr
    path = plans / f"review-{head}.json"
    path.write_text(result.stdout)
    return path


def test_rendered_example_a_schema_rename(plans):
    review_path = diff_review(plans, "head")
    result = cli("comment", "--plan-diff", str(review_path), "--fail-on", "critical")
    assert result.returncode == 1 and result.stderr == ""
    text = result.stdout
    assert text.startswith(f"{comment.MARKER}\n### Infrastructure review\n\n**Risks: 1 critical · 0 high · 3 medium · "
                           "0 low · 0 info — offline plan: 5 to update · 3 to replace**\n")
    rows = risk_rows(text)
    assert rows[0].startswith("| **CRITICAL** | schema `umami` renamed to `analytics` | `umami-schema` (postgresql "
                              "Schema) | Pulumi shows an in-place update")
    assert {row.split(" | ")[2] for row in rows[1:]} == {"`umami-schema-usage` (postgresql Grant)",
                                                         "`umami-default-tables` (postgresql DefaultPrivileges)",
                                                         "`umami-default-sequences` (postgresql DefaultPrivileges)"}
    assert all("will be replaced (`schema`)" in row for row in rows[1:])
    assert "- `umami:schemaName`: `\"umami\"` → `\"analytics\"`" in text
    changes = text.split("<details>", 1)[1]
    assert changes.index("**+- replace**") < changes.index("**~ update** `umami-schema`")
    assert "| `name` | `\"umami\"` | `\"analytics\"` |" in changes
    assert "`secretString` _(secret value changes)_" in changes and "offline-" not in text
    assert review_from_document(json.loads(review_path.read_text())).findings[0].rule == "stateful-rename"


def test_rendered_example_a_no_op(plans):
    result = cli("comment", "--plan-diff", str(diff_review(plans, "again")), "--fail-on", "medium")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_actions_render_in_a_readers_order():
    order = [change("c", GRANT, CREATE), change("u", GRANT, UPDATE), change("d", GRANT, DELETE),
             change("r", GRANT, REPLACE)]
    text = comment.render(comment.Inputs(plan_diff=review("o", order, [])))
    assert [text.index(f"`{name}` ·") for name in "rduc"] == sorted(text.index(f"`{name}` ·") for name in "rduc")
