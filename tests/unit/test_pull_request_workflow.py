"""The pull-request workflow: one `pulumi preview`, one comment edited in place by its marker, forks
served through the job summary, and a merge gate that covers the real preview's risks too."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from typing import Any

import pytest
import yaml

from ops.engine.program import PROJECT_ROOT
from ops.preview.__main__ import parser as preview_parser
from ops.preview.comment import MARKER

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "pull-request.yml"
SAME_REPOSITORY = "github.event.pull_request.head.repo.full_name == github.repository"


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    document = yaml.safe_load(WORKFLOW.read_text())
    document["on"] = document.pop(True, document.get("on"))  # YAML 1.1 reads the key `on` as true
    return document


def all_steps(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(job, step) for job, spec in workflow["jobs"].items() for step in spec.get("steps", [])]


def run_text(step: dict[str, Any]) -> str:
    return " ".join(step.get("run", "").replace("\\\n", " ").split())


def commands(workflow: dict[str, Any], job: str) -> list[str]:
    """The job's shell commands, one per line, continuation lines joined."""
    lines = []
    for step in workflow["jobs"][job]["steps"]:
        lines += step.get("run", "").replace("\\\n", " ").splitlines()
    return [" ".join(line.split()) for line in lines if line.strip()]


def test_the_workflow_validates_against_githubs_schema():
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                             str(WORKFLOW)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pulumi_preview_runs_once_streamed_with_the_policy_pack_and_is_saved(workflow):
    previews = [(job, step) for job, step in all_steps(workflow)
                for line in step.get("run", "").splitlines() if re.match(r"\s*pulumi preview\b", line)]
    assert len(previews) == 1
    job, step = previews[0]
    command = run_text(step)
    assert job == "preview" and "--policy-pack policy" in command and "--json" in command
    assert '> "$RUNNER_TEMP/review/preview-events.jsonl"' in command
    # The only JSON that carries policy violations: the streamed engine events.
    assert step["env"]["PULUMI_ENABLE_STREAMING_JSON_PREVIEW"] == "true"
    # The Pulumi action only installs the CLI: it runs no second preview and posts no comment of its own.
    for _, action in all_steps(workflow):
        if str(action.get("uses", "")).startswith("pulumi/actions@"):
            assert "command" not in action.get("with", {}) and "comment-on-pr" not in action.get("with", {})
    summarize = [c for c in commands(workflow, "preview") if "ops.preview summarize" in c]
    assert summarize == ['python -m ops.preview summarize "$RUNNER_TEMP/review/preview-events.jsonl" --format json '
                         '> "$RUNNER_TEMP/review/preview-review.json"']


def test_the_comment_is_made_of_the_plan_diff_the_preview_and_its_policy_violations(workflow):
    plan_diff = commands(workflow, "plan-diff")
    assert any("ops.preview plan" in c and "--project-dir ../base" in c for c in plan_diff)
    assert any("ops.preview diff" in c and "--format json" in c and "plan-diff.json" in c for c in plan_diff)
    (comment,) = [c for c in commands(workflow, "review") if "ops.preview comment" in c]
    assert "--fail-on critical" in comment and '"${inputs[@]}"' in comment
    script = next(s["run"] for s in workflow["jobs"]["review"]["steps"] if s.get("id") == "comment")
    assert 'inputs=(--plan-diff "$dir/plan-diff.json")' in script
    assert 'inputs+=(--preview "$dir/preview-review.json")' in script
    assert 'inputs+=(--policy "$dir/preview-events.jsonl")' in script


def test_exactly_one_step_posts_to_the_pull_request(workflow):
    posting = [(job, step) for job, step in all_steps(workflow)
               if str(step.get("uses", "")).startswith(("actions/github-script@", "marocchino/"))
               or re.search(r"\bgh (pr comment|api)\b", run_text(step))]
    assert len(posting) == 1
    job, step = posting[0]
    assert job == "comment" and step["uses"].startswith("actions/github-script@")
    spec = workflow["jobs"]["comment"]
    assert spec["permissions"] == {"pull-requests": "write"}
    # It runs none of the branch's code: no checkout, no shell; it only reads the rendered comment.
    assert [s.get("uses", "").split("@")[0] for s in spec["steps"]] == ["actions/download-artifact",
                                                                       "actions/github-script"]
    assert all("pull-requests" not in workflow["jobs"][other].get("permissions", {})
               for other in workflow["jobs"] if other != "comment")


def test_forks_get_the_same_review_in_the_job_summary(workflow):
    jobs = workflow["jobs"]
    assert jobs["preview"]["if"] == SAME_REPOSITORY and SAME_REPOSITORY in jobs["comment"]["if"]
    assert "head.repo" not in jobs["plan-diff"].get("if", "") and "head.repo" not in jobs["review"]["if"]
    assert "needs.plan-diff.result == 'success'" in jobs["review"]["if"]  # runs also when the preview is skipped
    script = next(s["run"] for s in jobs["review"]["steps"] if s.get("id") == "comment")
    assert 'cat "$dir/comment.md" >> "$GITHUB_STEP_SUMMARY"' in script


def test_the_gate_uses_the_risks_of_the_real_preview_too(workflow):
    steps = workflow["jobs"]["review"]["steps"]
    (gate,) = [s for s in steps if "risk-accepted" in s.get("if", "")]
    assert gate["if"] == ("steps.comment.outputs.status == '1' && "
                          "!contains(github.event.pull_request.labels.*.name, 'risk-accepted')")
    assert "exit 1" in gate["run"]
    assert workflow["jobs"]["review"]["needs"] == ["plan-diff", "preview"]
    assert set(workflow["on"]["pull_request"]["types"]) >= {"labeled", "unlabeled"}  # the label re-runs the gate
    # A failed preview (a mandatory policy violation) fails its job after its events were kept.
    preview_steps = workflow["jobs"]["preview"]["steps"]
    assert preview_steps[-1]["if"] == "steps.preview.outputs.status != '0'" and "exit 1" in preview_steps[-1]["run"]
    upload = next(s for s in preview_steps if str(s.get("uses", "")).startswith("actions/upload-artifact@"))
    assert upload["if"] == "${{ !cancelled() }}"


def test_pull_request_jobs_get_only_the_pulumi_token_and_the_preview_role(workflow):
    text = WORKFLOW.read_text()
    assert set(re.findall(r"secrets\.([A-Za-z_]+)", text)) == {"PULUMI_ACCESS_TOKEN", "AWS_PREVIEW_ROLE_ARN"}
    for job, spec in workflow["jobs"].items():
        uses_secrets = "secrets." in yaml.safe_dump(spec)
        assert uses_secrets == (job == "preview"), job
    preview = workflow["jobs"]["preview"]
    assert preview["permissions"] == {"contents": "read", "id-token": "write"}
    (aws,) = [s for s in preview["steps"] if str(s.get("uses", "")).startswith("aws-actions/configure-aws-credentials@")]
    assert aws["with"]["role-to-assume"] == "${{ secrets.AWS_PREVIEW_ROLE_ARN }}"


def test_every_ops_preview_command_parses(workflow):
    found = 0
    for job in workflow["jobs"]:
        for command in commands(workflow, job):
            if "python -m ops.preview" not in command:
                continue
            segment = re.split(r"\s(?:>|\|\||&&)\s", command.split("python -m ops.preview", 1)[1])[0]
            argv = [a.replace("$STACK", "dev").replace("$RUNNER_TEMP", "/tmp").replace('"${inputs[@]}"', "")
                    for a in shlex.split(segment.replace('"${inputs[@]}"', "--plan-diff x.json"))]
            preview_parser().parse_args(argv)  # raises SystemExit on an unknown flag
            found += 1
    assert found == 5  # plan base, plan head, diff, summarize, comment


# -- the comment step itself, run by node against a stand-in for GitHub's API ------------------------

def comment_step(workflow: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in workflow["jobs"]["comment"]["steps"] if "github-script" in s.get("uses", ""))


HARNESS = """
const fs = require('fs');
const state = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const calls = [];
const api = (name) => async (args) => { calls.push({name, ...args}); return {data: {}}; };
const github = {
  paginate: async () => state.comments,
  rest: {issues: {listComments: api('list'), createComment: api('create'),
                  updateComment: api('update'), deleteComment: api('delete')}},
};
const context = {repo: {owner: 'o', repo: 'r'}, payload: {pull_request: {number: 7}}};
const core = {setFailed: (message) => calls.push({name: 'failed', message})};
const script = fs.readFileSync(process.argv[3], 'utf8');
new Function('require', 'github', 'context', 'core', 'process', `return (async () => {${script}})();`)(
  require, github, context, core, process).then(() => console.log(JSON.stringify(calls)));
"""


@pytest.fixture
def comment_run(workflow, tmp_path):
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    step = comment_step(workflow)
    assert step["env"]["MARKER"] == MARKER
    (tmp_path / "script.js").write_text(step["with"]["script"])
    (tmp_path / "harness.js").write_text(HARNESS)

    def run(body: str, comments: list[dict[str, Any]]) -> list[dict[str, Any]]:
        (tmp_path / "comment.md").write_text(body)
        (tmp_path / "state.json").write_text(json.dumps({"comments": comments}))
        env = {"PATH": "/usr/bin:/bin", "COMMENT_FILE": str(tmp_path / "comment.md"), "MARKER": MARKER}
        result = subprocess.run(["node", str(tmp_path / "harness.js"), str(tmp_path / "state.json"),
                                 str(tmp_path / "script.js")], capture_output=True, text=True, env=env, timeout=60)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    return run


BOT = {"login": "github-actions[bot]"}


def test_the_comment_is_created_once_then_edited_in_place(comment_run):
    body = f"{MARKER}\n### Infrastructure review\n"
    assert comment_run(body, []) == [{"name": "create", "owner": "o", "repo": "r", "issue_number": 7, "body": body}]
    others = [{"id": 1, "user": {"login": "alice"}, "body": f"{MARKER}\nquoted by a person"},
              {"id": 2, "user": BOT, "body": "another bot comment"},
              {"id": 3, "user": BOT, "body": f"{MARKER}\nold review"},
              {"id": 4, "user": BOT, "body": f"{MARKER}\nan older duplicate"}]
    calls = comment_run(body, others)
    assert calls == [{"name": "update", "owner": "o", "repo": "r", "comment_id": 3, "body": body},
                     {"name": "delete", "owner": "o", "repo": "r", "comment_id": 4}]


def test_an_empty_comment_deletes_the_old_one_and_posts_nothing(comment_run):
    assert comment_run("", []) == []
    calls = comment_run("", [{"id": 3, "user": BOT, "body": f"{MARKER}\nold review"}])
    assert calls == [{"name": "delete", "owner": "o", "repo": "r", "comment_id": 3}]


def test_a_body_without_the_marker_is_refused(comment_run):
    calls = comment_run("### no marker\n", [])
    assert [c["name"] for c in calls] == ["failed"]


def test_only_a_job_in_the_reviewed_preview_environment_gets_the_pulumi_token(workflow):
    """The state holds generated secrets any preview can decrypt: the token is released per approved run."""
    holders = {job for job, spec in workflow["jobs"].items() if "PULUMI_ACCESS_TOKEN" in json.dumps(spec)}
    assert holders == {"preview"}
    assert workflow["jobs"]["preview"]["environment"] == "preview"

