"""The GitHub workflows: valid against GitHub's workflow schema (check-jsonschema's vendored
copy, offline), and the steps the review and deploy process rely on are there: the database jobs on
the VPC runner, the deploy path in its order and gated step by step, the shell the steps run behaving
as the summary promises, and pull requests kept away from every role that can read the master secret."""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from ops.engine.program import PROJECT_ROOT
from ops.metrics.__main__ import build_parser as metrics_parser
from ops.verify.__main__ import parse_args as verify_parse_args

WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
PULL_REQUEST = WORKFLOWS / "pull-request.yml"
DEPLOY = WORKFLOWS / "deploy-dev.yml"
STACK_OPERATIONS = WORKFLOWS / "stack-dev.yml"
ALL_WORKFLOWS = [DEPLOY, PULL_REQUEST, STACK_OPERATIONS]

VPC_RUNNER = "${{ vars.VPC_RUNNER_LABEL }}"
# The deploy job's path, in order; every step of it runs only when all earlier steps succeeded.
DEPLOY_ORDER = ["baseline", "up", "verify", "settle", "metrics", "upload"]
# The only steps that also run after a failure: they publish what the failed run produced.
REPORTING_STEPS = {"publish-verify", "upload", "summary"}
STATUS_FUNCTIONS = re.compile(r"\b(always|failure|cancelled|success)\(\)")
# What a pull-request job may reference from the secret store: the Pulumi token, the read-only preview
# role, and GitHub's own per-run token (scoped by the job's `permissions`, no AWS access).
PULL_REQUEST_SECRETS = {"PULUMI_ACCESS_TOKEN", "AWS_PREVIEW_ROLE_ARN", "GITHUB_TOKEN"}
BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]  # GitHub's `shell: bash`


def schema_check(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           *map(str, paths)], capture_output=True, text=True, timeout=120)


def load(path: Path) -> dict[str, Any]:
    workflow = yaml.safe_load(path.read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads the key `on` as true
    return workflow


def steps(workflow: dict[str, Any], job: str) -> list[dict[str, Any]]:
    return workflow["jobs"][job]["steps"]


def step(workflow: dict[str, Any], job: str, step_id: str) -> dict[str, Any]:
    (found,) = [s for s in steps(workflow, job) if s.get("id") == step_id]
    return found


def step_named(workflow: dict[str, Any], job: str, name: str) -> dict[str, Any]:
    (found,) = [s for s in steps(workflow, job) if s.get("name") == name]
    return found


def step_using(workflow: dict[str, Any], job: str, action: str) -> list[dict[str, Any]]:
    return [s for s in steps(workflow, job) if str(s.get("uses", "")).startswith(action + "@")]


def commands(workflow: dict[str, Any], job: str) -> list[str]:
    """Shell commands of a job, continuation lines joined."""
    lines = []
    for s in steps(workflow, job):
        lines += s.get("run", "").replace("\\\n", " ").splitlines()
    return [" ".join(line.split()) for line in lines if line.strip()]


def secrets_named(text: str) -> set[str]:
    return set(re.findall(r"secrets\.([A-Za-z_][A-Za-z0-9_]*)", text))


# -- what touches the database --

# A pulumi command at the start of a shell line (not a message that names one), or an ops command anywhere.
DATABASE_COMMAND = re.compile(r"^\s*pulumi (up|refresh|destroy)\b|python -m ops\.(verify|metrics)\b", re.MULTILINE)


def touches_the_database(job: dict[str, Any]) -> bool:
    """Runs pulumi up/refresh/destroy (the postgresql provider) or an ops command that connects."""
    for s in job.get("steps", []):
        if str(s.get("uses", "")).startswith("pulumi/actions@") and s.get("with", {}).get("command") in (
                "up", "update", "refresh", "destroy"):
            return True
        if DATABASE_COMMAND.search(s.get("run", "")):
            return True
    return False


def database_jobs() -> Iterator[tuple[Path, str, dict[str, Any]]]:
    for path in ALL_WORKFLOWS:
        for name, job in load(path)["jobs"].items():
            if touches_the_database(job):
                yield path, name, job


# -- running a step's shell as GitHub does --

def run_step(script: str, env: dict[str, str], tmp_path: Path,
             python: str | None = None) -> subprocess.CompletedProcess:
    """The step's script under GitHub's `shell: bash`; `python` (a bash body) replaces the ops commands."""
    path = os.environ["PATH"]
    if python is not None:
        stub = tmp_path / "bin"
        stub.mkdir(exist_ok=True)
        (stub / "python").write_text("#!/bin/bash\n" + python)
        (stub / "python").chmod(stat.S_IRWXU)
        path = f"{stub}:{path}"
    summary = tmp_path / "summary.md"
    summary.touch()
    return subprocess.run([*BASH, "-c", script], capture_output=True, text=True, timeout=60,
                          env={"PATH": path, "GITHUB_STEP_SUMMARY": str(summary), **env})


def job_summary(tmp_path: Path) -> str:
    return (tmp_path / "summary.md").read_text()


# -- the schema --

def test_workflows_validate_against_githubs_schema():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert [f.name for f in files] == ["deploy-dev.yml", "pull-request.yml", "stack-dev.yml"]
    result = schema_check(*files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(PULL_REQUEST.read_text().replace("    runs-on: ubuntu-24.04\n", "    runs_on: ubuntu-24.04\n", 1))
    result = schema_check(broken)
    assert result.returncode == 1 and "runs_on" in result.stdout + result.stderr


def test_make_lint_validates_the_workflows_as_the_pull_request_does():
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml" in lint
    assert "check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml" in commands(
        load(PULL_REQUEST), "tests")


# -- the pull request --

def test_pull_request_validates_workflows_and_runs_the_tests():
    run = commands(load(PULL_REQUEST), "tests")
    assert "check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml" in run
    assert "python -m pytest -q" in run


def test_pull_request_jobs_get_only_the_preview_role_and_the_pulumi_token():
    workflow = load(PULL_REQUEST)
    text = PULL_REQUEST.read_text()
    assert secrets_named(text) <= PULL_REQUEST_SECRETS, secrets_named(text) - PULL_REQUEST_SECRETS
    assert "AWS_DEPLOY_ROLE_ARN" not in text and "AWS_VERIFY_ROLE_ARN" not in text
    assert "secrets: inherit" not in text  # a called workflow would get every secret
    roles = [s["with"]["role-to-assume"] for job in workflow["jobs"]
             for s in step_using(workflow, job, "aws-actions/configure-aws-credentials")]
    assert roles and set(roles) == {"${{ secrets.AWS_PREVIEW_ROLE_ARN }}"}


def test_the_pull_request_check_catches_a_deploy_role():
    leaked = PULL_REQUEST.read_text().replace("secrets.AWS_PREVIEW_ROLE_ARN", "secrets.AWS_DEPLOY_ROLE_ARN")
    assert secrets_named(leaked) - PULL_REQUEST_SECRETS == {"AWS_DEPLOY_ROLE_ARN"}


# -- the database jobs run inside the VPC --

def test_every_job_that_touches_the_database_runs_on_the_vpc_runner():
    found = {(path.name, name): job for path, name, job in database_jobs()}
    assert set(found) == {("deploy-dev.yml", "deploy"), ("stack-dev.yml", "refresh"), ("stack-dev.yml", "destroy")}
    for (workflow_name, name), job in found.items():
        assert job["runs-on"] == VPC_RUNNER, (workflow_name, name)
        preflight = job["needs"]
        workflow = load(WORKFLOWS / workflow_name)
        assert "VPC_RUNNER_LABEL" in step_named(workflow, preflight, "Require VPC_RUNNER_LABEL")["env"]
        assert workflow["jobs"][preflight]["runs-on"] == "ubuntu-24.04"  # never waits for the VPC runner


def test_the_database_job_check_sees_pulumi_and_ops_commands():
    assert touches_the_database({"steps": [{"run": "pulumi destroy --stack dev --yes"}]})
    assert touches_the_database({"steps": [{"run": "x=1\npython -m ops.metrics check --baseline b.json"}]})
    assert touches_the_database({"steps": [{"uses": "pulumi/actions@v6", "with": {"command": "refresh"}}]})
    assert not touches_the_database({"steps": [{"uses": "pulumi/actions@v6", "with": {"command": "preview"}}]})
    assert not touches_the_database({"steps": [{"run": "python -m ops.preview plan --stack dev --out p.json"}]})
    assert not touches_the_database({"steps": [{"run": 'reason="pulumi up needs a runner in the VPC"'}]})


@pytest.mark.parametrize("path", [DEPLOY, STACK_OPERATIONS])
def test_a_missing_runner_label_fails_in_one_clear_line(path, tmp_path):
    workflow = load(path)
    preflight = next(iter(workflow["jobs"]))
    script = step_named(workflow, preflight, "Require VPC_RUNNER_LABEL")["run"]
    missing = run_step(script, {"VPC_RUNNER_LABEL": ""}, tmp_path)
    assert missing.returncode == 1
    (line,) = missing.stdout.splitlines()
    assert line.startswith("::error::The repository variable VPC_RUNNER_LABEL is not set")
    assert "VPC_RUNNER_LABEL is not set" in job_summary(tmp_path)
    configured = run_step(script, {"VPC_RUNNER_LABEL": "umami-vpc"}, tmp_path)
    assert configured.returncode == 0 and configured.stdout == ""


# -- the deploy path --

def deploy_steps() -> list[dict[str, Any]]:
    return steps(load(DEPLOY), "deploy")


def test_deploy_runs_on_merge_to_main_and_by_hand_one_update_at_a_time():
    workflow = load(DEPLOY)
    assert workflow["on"]["push"]["branches"] == ["main"]
    assert workflow["on"]["workflow_dispatch"]["inputs"]["no-baseline"]["type"] == "boolean"
    assert workflow["concurrency"] == {"group": "pulumi-stack-dev", "cancel-in-progress": False}
    # Refresh and destroy queue behind a deploy of the same stack, and the other way round.
    assert load(STACK_OPERATIONS)["concurrency"] == workflow["concurrency"]
    assert workflow["env"]["STACK"] == "dev"


def test_the_deploy_steps_are_in_order():
    ids = [s.get("id") for s in deploy_steps()]
    positions = [ids.index(step_id) for step_id in DEPLOY_ORDER]
    assert positions == sorted(positions), [ids[p] for p in sorted(positions)]
    assert ids[-1] == "summary"  # last, so it sees every outcome


def test_each_deploy_step_is_gated_on_every_earlier_one():
    for s in deploy_steps():
        condition = str(s.get("if", ""))
        assert "continue-on-error" not in s and "continue-on-error" not in s.get("with", {}), s
        if s.get("id") in REPORTING_STEPS:
            assert condition.startswith("${{ always()"), s
        else:
            # Without a status function GitHub adds success(): the step runs only if all before it passed.
            assert not STATUS_FUNCTIONS.search(condition), s
            assert condition in ("", "${{ !inputs.no-baseline }}"), s
    for path in ALL_WORKFLOWS:
        workflow = load(path)
        assert all("continue-on-error" not in job for job in workflow["jobs"].values()), path
    gating = [s.get("run", "") for s in deploy_steps() if s.get("id") not in REPORTING_STEPS]
    assert not any("|| true" in script or "|| :" in script for script in gating)


def test_pulumi_up_runs_with_the_policy_pack_and_a_summary():
    up = step(load(DEPLOY), "deploy", "up")
    assert up["uses"] == "pulumi/actions@v6"
    assert up["with"] == {"command": "up", "stack-name": "${{ env.STACK }}", "policyPacks": "policy",
                          "comment-on-summary": True}
    assert (PROJECT_ROOT / "policy" / "PulumiPolicy.yaml").exists()


def test_only_pulumi_up_runs_with_the_deploy_role():
    workflow = load(DEPLOY)
    ids = [s.get("id") for s in deploy_steps()]
    roles = {s["id"]: s["with"]["role-to-assume"] for s in step_using(workflow, "deploy", "aws-actions/configure-aws-credentials")}
    assert roles == {"read-credentials": "${{ secrets.AWS_VERIFY_ROLE_ARN }}",
                     "deploy-credentials": "${{ secrets.AWS_DEPLOY_ROLE_ARN }}",
                     "verify-credentials": "${{ secrets.AWS_VERIFY_ROLE_ARN }}"}
    # read role -> baseline -> deploy role -> up -> read role -> verify ...
    assert ids.index("read-credentials") < ids.index("baseline") < ids.index("deploy-credentials") < ids.index("up")
    assert ids.index("up") < ids.index("verify-credentials") < ids.index("verify")
    for later in ("deploy-credentials", "verify-credentials"):
        assert step(workflow, "deploy", later)["with"]["unset-current-credentials"] is True


def test_the_baseline_is_what_the_metrics_check_compares_against():
    workflow = load(DEPLOY)
    baseline = ops_invocations(step(workflow, "deploy", "baseline")["run"])
    check = ops_invocations(step(workflow, "deploy", "metrics")["run"])
    ((_, snapshot),) = baseline
    ((_, compare), (_, diff)) = check
    assert snapshot.command == "snapshot" and compare.command == "check" and diff.command == "diff"
    assert compare.baseline == snapshot.out == diff.before
    assert diff.after == compare.out
    assert compare.plot.endswith(".png") and compare.format == "markdown" and diff.format == "json"
    for args in (snapshot, compare):
        assert args.stack == "dev"


def test_verify_writes_junit_and_json_and_the_junit_is_published_with_times():
    workflow = load(DEPLOY)
    runs = ops_invocations(step(workflow, "deploy", "verify")["run"])
    assert [(args.stack, args.format) for _, args in runs] == [("dev", "junit"), ("dev", "json")]
    publish = step(workflow, "deploy", "publish-verify")
    assert publish["uses"].startswith("mikepenz/action-junit-report@")
    assert publish["with"]["report_paths"] == "${{ runner.temp }}/deploy/verify.xml"
    assert publish["with"]["include_time_in_summary"] is True and publish["with"]["require_tests"] is True
    assert publish["if"] == "${{ always() && steps.verify.outcome != 'skipped' }}"
    assert workflow["jobs"]["deploy"]["permissions"]["checks"] == "write"


def test_the_artefacts_hold_every_report_of_the_run():
    upload = step(load(DEPLOY), "deploy", "upload")
    assert upload["uses"].startswith("actions/upload-artifact@") and upload["if"] == "${{ always() }}"
    kept = {Path(line.strip()).name for line in upload["with"]["path"].splitlines() if line.strip()}
    assert kept == {"verify.xml", "verify.json", "metrics-before.json", "metrics-after.json", "metrics-diff.json",
                    "metrics-diff.md", "metrics-diff.png"}


def test_the_settle_period_is_a_sleep_of_the_configured_length():
    workflow = load(DEPLOY)
    assert step(workflow, "deploy", "settle")["run"] == 'sleep "$SETTLE_SECONDS"'
    assert int(workflow["env"]["SETTLE_SECONDS"]) >= 60


# -- the deploy steps' shell --

# A stand-in for `python -m ops.verify|ops.metrics`: exits with $EXIT_<FORMAT|COMMAND>, writes `report` to
# stdout and, for --out FILE, the file.
OPS_STUB = r"""
fmt=""; out=""; cmd=""; prev=""
for arg in "$@"; do
  case "$prev" in --format) fmt=$arg ;; --out) out=$arg ;; esac
  case "$arg" in snapshot|check|diff) [ -z "$cmd" ] && cmd=$arg ;; esac
  prev=$arg
done
[ -n "$out" ] && echo '{}' > "$out"
echo report
echo "progress of $cmd $fmt" >&2
key=$(echo "EXIT_${fmt:-$cmd}_${cmd:-verify}" | tr '[:lower:]' '[:upper:]')
exit "${!key:-0}"
"""


def deploy_script(step_id: str) -> str:
    return step(load(DEPLOY), "deploy", step_id)["run"]


def step_env(tmp_path: Path, **exits: int) -> dict[str, str]:
    (tmp_path / "runner" / "deploy").mkdir(parents=True, exist_ok=True)
    return {"RUNNER_TEMP": str(tmp_path / "runner"), "STACK": "dev", **{k: str(v) for k, v in exits.items()}}


@pytest.mark.parametrize(("junit", "json", "step_exit"), [(0, 0, 0), (1, 1, 1), (2, 2, 2), (0, 2, 2), (1, 0, 1)])
def test_the_verify_step_fails_when_either_rendering_fails(tmp_path, junit, json, step_exit):
    env = step_env(tmp_path, EXIT_JUNIT_VERIFY=junit, EXIT_JSON_VERIFY=json)
    result = run_step(deploy_script("verify"), env, tmp_path, python=OPS_STUB)
    assert result.returncode == step_exit, result.stderr
    deploy = tmp_path / "runner" / "deploy"
    assert (deploy / "verify.xml").read_text() == "report\n" and (deploy / "verify.json").read_text() == "report\n"
    assert "progress of  junit" in (deploy / "verify.log").read_text()  # stderr is kept for the summary


@pytest.mark.parametrize(("check", "diff", "step_exit"), [(0, 0, 0), (1, 1, 1), (2, 0, 2), (0, 2, 2)])
def test_the_metrics_step_fails_on_a_broken_threshold_or_a_diff_that_cannot_run(tmp_path, check, diff, step_exit):
    env = step_env(tmp_path, EXIT_MARKDOWN_CHECK=check, EXIT_JSON_DIFF=diff)
    result = run_step(deploy_script("metrics"), env, tmp_path, python=OPS_STUB)
    assert result.returncode == step_exit, result.stderr
    deploy = tmp_path / "runner" / "deploy"
    assert (deploy / "metrics-diff.md").read_text() == "report\n"
    assert (deploy / "metrics-diff.json").read_text() == "report\n"


def outcomes(**given: str) -> str:
    """The summary's OUTCOMES as GitHub renders it: each `${{ steps.ID.outcome }}` replaced."""
    template = step(load(DEPLOY), "deploy", "summary")["env"]["OUTCOMES"]
    return re.sub(r"\$\{\{ steps\.([\w-]+)\.outcome \}\}", lambda m: given.get(m.group(1), "success"), template)


def summarize(tmp_path: Path, job_status: str, logs: dict[str, str] | None = None, **given: str) -> str:
    env = step_env(tmp_path)
    for name, text in (logs or {}).items():
        (tmp_path / "runner" / "deploy" / name).write_text(text)
    env.update(DIR=str(tmp_path / "runner" / "deploy"), JOB_STATUS=job_status, OUTCOMES=outcomes(**given))
    result = run_step(deploy_script("summary"), env, tmp_path)
    assert result.returncode == 0, result.stderr
    return job_summary(tmp_path)


def test_the_summary_lists_every_step_and_says_when_all_passed(tmp_path):
    text = summarize(tmp_path, "success", {"metrics-diff.md": "| metric | before | after |\n"})
    for step_id in ("baseline", "up", "verify", "settle", "metrics"):
        assert f"| {step_id} | success |" in text
    assert "Every step passed." in text and "Stopped at" not in text
    assert text.rstrip().endswith("| metric | before | after |")  # the metrics diff follows


def test_the_summary_names_the_failed_step_and_the_ops_error_line(tmp_path):
    log = "verifying umami_user/umami in appdb\nerror: pulumi stack output --stack dev failed: no stack named dev\n"
    text = summarize(tmp_path, "failure", {"baseline.log": log}, baseline="failure", up="skipped",
                     verify="skipped", settle="skipped", metrics="skipped")
    assert ("**Stopped at `baseline`**: error: pulumi stack output --stack dev failed: no stack named dev. "
            "The steps after it did not run.") in text
    assert "| up | skipped |" in text and "| metrics | skipped |" in text


@pytest.mark.parametrize(("failed", "says"), [
    ("up", "pulumi up failed; Pulumi's update summary above names the resource"),
    ("verify", "ops.verify found problems at or above high"),
    ("metrics", "a metrics threshold was broken"),
    ("install", "see the step's log"),
])
def test_the_summary_explains_a_failure_without_an_error_line(tmp_path, failed, says):
    text = summarize(tmp_path, "failure", {f"{failed}.log": "progress only\n"}, **{failed: "failure"})
    assert f"**Stopped at `{failed}`**: {says}" in text


def test_the_summary_of_a_deploy_without_a_baseline_shows_the_skipped_metrics(tmp_path):
    text = summarize(tmp_path, "success", baseline="skipped", settle="skipped", metrics="skipped")
    assert "| baseline | skipped |" in text and "Every step passed." in text


# -- refresh and destroy --

def test_refresh_and_destroy_are_run_by_hand_with_the_program():
    workflow = load(STACK_OPERATIONS)
    assert set(workflow["on"]) == {"workflow_dispatch"}
    inputs = workflow["on"]["workflow_dispatch"]["inputs"]
    assert inputs["operation"]["options"] == ["refresh", "destroy"] and inputs["confirm"]["type"] == "string"
    assert workflow["jobs"]["refresh"]["if"] == "${{ inputs.operation == 'refresh' }}"
    assert workflow["jobs"]["destroy"]["if"] == "${{ inputs.operation == 'destroy' }}"
    # --run-program: the provider reads the current master secret, not the one stored in state.
    assert 'pulumi refresh --stack "$STACK" --run-program --yes --non-interactive --diff' in commands(workflow, "refresh")
    assert 'pulumi destroy --stack "$STACK" --run-program --yes --non-interactive' in commands(workflow, "destroy")


def test_destroy_checks_what_it_would_drop_first_then_uses_the_deploy_role():
    workflow = load(STACK_OPERATIONS)
    run = commands(workflow, "destroy")
    check = next(i for i, c in enumerate(run) if "python -m ops.verify" in c)
    destroy = next(i for i, c in enumerate(run) if c.startswith("pulumi destroy"))
    assert check < destroy
    ((_, args),) = ops_invocations(run[check])
    assert args.only == ["destroy"] and args.stack == "dev"
    roles = [s["with"]["role-to-assume"] for s in step_using(workflow, "destroy", "aws-actions/configure-aws-credentials")]
    assert roles == ["${{ secrets.AWS_VERIFY_ROLE_ARN }}", "${{ secrets.AWS_DEPLOY_ROLE_ARN }}"]
    gated = [s for s in steps(workflow, "destroy") if "if" in s]
    assert [s["name"] for s in gated] == ["Destroy check in the job summary"]


@pytest.mark.parametrize(("typed", "allowed"), [
    ("destroy dev", True), ("", False), ("destroy", False), ("Destroy dev", False), ("destroy  dev", False),
    ("destroy prod", False), ("destroy dev ", False),
])
def test_destroy_needs_the_confirmation_typed_exactly(tmp_path, typed, allowed):
    workflow = load(STACK_OPERATIONS)
    confirm = step_named(workflow, "preflight", "Require the typed confirmation for destroy")
    assert confirm["if"] == "${{ inputs.operation == 'destroy' }}" and confirm["env"]["CONFIRM"] == "${{ inputs.confirm }}"
    result = run_step(confirm["run"], {"CONFIRM": typed, "STACK": "dev"}, tmp_path)
    assert result.returncode == (0 if allowed else 1)
    if not allowed:
        (line,) = result.stdout.splitlines()
        assert line == "::error::Destroy not confirmed: type exactly 'destroy dev' in the confirm input; nothing was changed."
    assert workflow["jobs"]["destroy"]["needs"] == "preflight"


# -- AWS access --

@pytest.mark.parametrize(("path", "jobs"), [(DEPLOY, ["deploy"]), (STACK_OPERATIONS, ["refresh", "destroy"])])
def test_aws_access_is_oidc_and_secrets_come_from_the_secret_store(path, jobs):
    workflow = load(path)
    for job in jobs:
        assert workflow["jobs"][job]["permissions"]["id-token"] == "write"
        credentials = step_using(workflow, job, "aws-actions/configure-aws-credentials")
        assert credentials
        for aws in credentials:
            assert re.fullmatch(r"\$\{\{ secrets\.[A-Z_]+ \}\}", aws["with"]["role-to-assume"])
        assert workflow["jobs"][job]["env"]["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"
    text = path.read_text()
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    assert not re.search(r"(AKIA|ASIA)[0-9A-Z]{16}", text)


# -- every ops command the workflows run parses with its own parser --

PARSERS: dict[str, Callable[[list[str]], Any]] = {
    "verify": verify_parse_args,
    "metrics": lambda argv: metrics_parser().parse_args(argv),
}
SHELL_VALUES = {"$STACK": "dev", "$RUNNER_TEMP": "/tmp/runner", "$dir": "/tmp/runner/deploy"}
SHELL_STOP = {";", ">", ">>", "|", "||", "&&", "}", "&"}


def ops_invocations(script: str) -> list[tuple[str, Any]]:
    """Each `python -m ops.X ...` in a script, parsed by X's own parser (SystemExit on an unknown flag)."""
    found = []
    lines = script.replace("\\\n", " ").splitlines()
    for line, match in ((line, m) for line in lines for m in re.finditer(r"python -m ops\.(\w+)", line)):
        lexer = shlex.shlex(line[match.end():], posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        argv = []
        for token in lexer:
            if token in SHELL_STOP:
                break
            for name, value in SHELL_VALUES.items():
                token = token.replace(name, value)
            argv.append(token)
        found.append((match.group(1), PARSERS[match.group(1)](argv)))
    return found


# The pull request's ops.preview commands are its owners' to check (one takes its flags from a bash array).
@pytest.mark.parametrize("path", [DEPLOY, STACK_OPERATIONS], ids=lambda p: p.name)
def test_every_ops_command_in_the_workflows_parses(path):
    workflow = load(path)
    found = [command for job in workflow["jobs"] for s in steps(workflow, job)
             for command, _ in ops_invocations(s.get("run", ""))]
    expected = {DEPLOY: ["metrics", "verify", "verify", "metrics", "metrics"], STACK_OPERATIONS: ["verify"]}[path]
    assert found == expected


def test_a_flag_the_command_does_not_have_is_caught():
    with pytest.raises(SystemExit):
        ops_invocations('python -m ops.metrics check --baseline b.json --stack "$STACK" --plots d.png')
