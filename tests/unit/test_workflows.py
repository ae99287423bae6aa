"""The GitHub workflows: valid against GitHub's workflow schema (check-jsonschema's vendored
copy, offline), and the steps the review and deploy process rely on are there."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ops.preview.__main__ import parser as preview_parser
from ops.engine.program import PROJECT_ROOT
from ops.verify.__main__ import parse_args as verify_parse_args

WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
PULL_REQUEST = WORKFLOWS / "pull-request.yml"
DEPLOY = WORKFLOWS / "deploy-dev.yml"


def schema_check(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           *map(str, paths)], capture_output=True, text=True, timeout=120)


def load(path: Path) -> dict[str, Any]:
    workflow = yaml.safe_load(path.read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads the key `on` as true
    return workflow


def steps(workflow: dict[str, Any], job: str) -> list[dict[str, Any]]:
    return workflow["jobs"][job]["steps"]


def step_using(workflow: dict[str, Any], job: str, action: str) -> list[dict[str, Any]]:
    return [s for s in steps(workflow, job) if str(s.get("uses", "")).startswith(action + "@")]


def commands(workflow: dict[str, Any], job: str) -> list[str]:
    """Shell commands of a job, continuation lines joined."""
    lines = []
    for step in steps(workflow, job):
        lines += step.get("run", "").replace("\\\n", " ").splitlines()
    return [" ".join(line.split()) for line in lines if line.strip()]


def test_workflows_validate_against_githubs_schema():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert [f.name for f in files] == ["deploy-dev.yml", "pull-request.yml"]
    result = schema_check(*files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(PULL_REQUEST.read_text().replace("    runs-on: ubuntu-24.04\n", "    runs_on: ubuntu-24.04\n", 1))
    result = schema_check(broken)
    assert result.returncode == 1 and "runs_on" in result.stdout + result.stderr


def test_pull_request_runs_the_pulumi_action_with_diff_comment_and_policy_pack():
    workflow = load(PULL_REQUEST)
    assert workflow["on"]["pull_request"]["branches"] == ["main"]
    (preview,) = step_using(workflow, "preview", "pulumi/actions")
    inputs = preview["with"]
    assert inputs["command"] == "preview" and inputs["stack-name"] == "${{ env.STACK }}"
    assert inputs["diff"] is True and inputs["comment-on-pr"] is True
    assert inputs["policyPacks"] == "policy" and (PROJECT_ROOT / "policy" / "PulumiPolicy.yaml").exists()
    assert workflow["env"]["STACK"] == "dev"
    # Forks get no secrets: the preview only runs for branches of this repository.
    assert workflow["jobs"]["preview"]["if"] == "github.event.pull_request.head.repo.full_name == github.repository"


def test_pull_request_posts_the_offline_plan_diff_against_the_base_branch():
    workflow = load(PULL_REQUEST)
    checkouts = step_using(workflow, "plan-diff", "actions/checkout")
    assert {c["with"]["path"] for c in checkouts} == {"head", "base"}
    assert any(c["with"].get("ref") == "${{ github.event.pull_request.base.sha }}" for c in checkouts)
    run = commands(workflow, "plan-diff")
    assert any("ops.preview plan" in c and "--project-dir ../base" in c for c in run)
    assert any("ops.preview diff" in c and "--format markdown" in c for c in run)
    (comment,) = step_using(workflow, "plan-diff", "marocchino/sticky-pull-request-comment")
    assert comment["with"]["path"] == "${{ runner.temp }}/plan-diff.md"
    assert workflow["jobs"]["plan-diff"]["permissions"]["pull-requests"] == "write"
    summaries = step_using(workflow, "preview", "marocchino/sticky-pull-request-comment")
    assert [s["with"]["header"] for s in summaries] == ["preview-risks"]
    assert any("ops.preview summarize" in c for c in commands(workflow, "preview"))


def test_pull_request_validates_workflows_and_runs_the_tests():
    run = commands(load(PULL_REQUEST), "tests")
    assert "check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml" in run
    assert "python -m pytest -q" in run


def test_deploy_runs_pulumi_up_then_verify_with_a_published_junit_report():
    workflow = load(DEPLOY)
    assert workflow["on"]["push"]["branches"] == ["main"]
    assert workflow["concurrency"]["cancel-in-progress"] is False
    (up,) = step_using(workflow, "deploy", "pulumi/actions")
    assert up["with"]["command"] == "up" and up["with"]["policyPacks"] == "policy"
    assert workflow["env"]["STACK"] == "dev"
    verify = workflow["jobs"]["verify"]
    assert verify["needs"] == "deploy"
    assert 'python -m ops.verify --stack "$STACK" --format junit > report.xml' in commands(workflow, "verify")
    args = verify_parse_args(["--stack", "dev", "--format", "junit"])  # the flags the step uses exist
    assert (args.stack, args.format) == ("dev", "junit")
    (report,) = step_using(workflow, "verify", "mikepenz/action-junit-report")
    assert report["with"]["report_paths"] == "report.xml" and report["if"] == "${{ !cancelled() }}"
    assert verify["permissions"]["checks"] == "write"


@pytest.mark.parametrize(("path", "jobs"), [(PULL_REQUEST, ["preview"]), (DEPLOY, ["deploy", "verify"])])
def test_aws_access_is_oidc_and_secrets_come_from_the_secret_store(path, jobs):
    workflow = load(path)
    for job in jobs:
        assert workflow["jobs"][job]["permissions"]["id-token"] == "write"
        (aws,) = step_using(workflow, job, "aws-actions/configure-aws-credentials")
        assert re.fullmatch(r"\$\{\{ secrets\.[A-Z_]+ \}\}", aws["with"]["role-to-assume"])
        assert workflow["jobs"][job]["env"]["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"
    text = path.read_text()
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    assert not re.search(r"(AKIA|ASIA)[0-9A-Z]{16}", text)


@pytest.mark.parametrize("path", [PULL_REQUEST, DEPLOY])
def test_every_ops_preview_command_in_the_workflows_parses(path):
    workflow = load(path)
    found = 0
    for job in workflow["jobs"]:
        for command in commands(workflow, job):
            if "python -m ops.preview" not in command:
                continue
            segment = command.split("python -m ops.preview", 1)[1]
            segment = re.split(r"\s(?:>|\|\||&&)\s", segment)[0]
            argv = [a.replace("$STACK", "dev").replace("$RUNNER_TEMP", "/tmp") for a in shlex.split(segment)]
            preview_parser().parse_args(argv)  # raises SystemExit on an unknown flag
            found += 1
    assert found == (4 if path == PULL_REQUEST else 0)
