"""`python -m ops.preview plan`: deterministic, secrets masked, bad input as one line."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components.config import SECRET_KEYS
from ops.core.errors import OpsError
from ops.engine.offline import OfflineHandler
from ops.preview import plan
from ops.engine.program import PROJECT_ROOT, parse_overrides
from tests.unit.test_config_keys import CONFIG_SOURCES

STACK = "dev"


def cli(*args: str, seed: str = "0") -> subprocess.Popen:
    env = dict(os.environ, PYTHONHASHSEED=seed)
    return subprocess.Popen([sys.executable, "-m", "ops.preview", *args], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def dev_plan_text() -> str:
    return plan.dumps(plan.build_plan(STACK))


def test_two_runs_are_byte_identical(dev_plan_text, tmp_path):
    # In separate processes with different hash seeds (set and dict ordering differ), and in-process.
    first = cli("plan", "--stack", STACK, "--out", str(tmp_path / "a.json"), seed="1")
    second = cli("plan", "--stack", STACK, "--out", str(tmp_path / "b.json"), seed="2")
    for process in (first, second):
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
    a, b = (tmp_path / "a.json").read_bytes(), (tmp_path / "b.json").read_bytes()
    assert a == b
    assert a.decode() == dev_plan_text
    manifest = json.loads(a)
    urns = [r["urn"] for r in manifest["resources"]]
    assert urns == sorted(urns) and len(urns) > 10
    assert manifest["format"] == plan.PLAN_FORMAT and manifest["stack"] == STACK


def test_plan_has_no_timestamps_and_records_options(dev_plan_text):
    manifest = json.loads(dev_plan_text)
    schema = next(r for r in manifest["resources"] if r["type"] == "postgresql:index/schema:Schema")
    assert schema["protect"] is True
    assert schema["inputs"]["name"] == "umami"
    assert schema["parent"].endswith("umami:database:UmamiDatabase::umami")
    assert schema["provider"].endswith("pulumi:providers:postgresql::umami-admin")  # the URN, no id
    extension = next(r for r in manifest["resources"] if r["type"] == "postgresql:index/extension:Extension")
    assert extension["retainOnDelete"] is True
    for word in ("created", "modified", "timestamp", "duration"):
        assert f'"{word}"' not in dev_plan_text


def test_generated_secrets_never_appear(dev_plan_text):
    config, secret_keys = plan.stack_config(STACK, {})
    handler = OfflineHandler()
    run = plan.run_offline(STACK, config, secret_keys, PROJECT_ROOT, handler)
    generated = {r.name: r.state["result"] for r in run.resources if r.type.startswith("random:")
                 and "result" in r.state}
    assert set(generated) == {"umami-db-password", "umami-app-secret", "umami-admin-password"}
    for name, value in generated.items():
        assert len(value) >= 40, name
        assert value not in dev_plan_text, f"{name} leaked into the plan"
    salts = [r for r in run.resources if r.type == "random:index/randomBytes:RandomBytes"]
    assert {s.name for s in salts} == {"umami-db-password-salt", "umami-admin-password-salt"}
    role_password = next(r for r in run.resources if r.type == "postgresql:index/role:Role").inputs["password"]
    for value in (*(s.state[k] for s in salts for k in ("base64", "hex")), role_password):
        assert value not in dev_plan_text  # the verifier's and the bcrypt hash's salts, the verifier itself
    assert handler.admin_secret["password"] not in dev_plan_text
    manifest = json.loads(dev_plan_text)
    by_name = {(r["type"], r["name"]): r for r in manifest["resources"]}
    role = by_name[("postgresql:index/role:Role", "umami-role")]
    assert role["inputs"]["password"] == plan.MASK and role["secretInputs"] == ["password"]
    for version in ("umami-db-credentials-value", "umami-app-secret-value", "umami-admin-login-value"):
        entry = by_name[("aws:secretsmanager/secretVersion:SecretVersion", version)]
        assert entry["inputs"]["secretString"] == plan.MASK
        assert entry["secretDigests"]["secretString"].startswith("sha256:")


def test_a_secret_leaking_into_a_plain_input_is_masked_wherever_it_appears():
    secret = "offline-Zx9%q!w"
    secrets = sorted({secret, "offline-Zx9%25q%21w"}, key=len, reverse=True)
    leaked = {
        "environment": [{"name": "DATABASE_URL", "value": "postgresql://u:offline-Zx9%25q%21w@db:5432/app"}],
        "note": f"the secret is {secret}",
        "count": 3,
    }
    masked = plan.mask_value(leaked, secrets)
    text = json.dumps(masked)
    assert "Zx9" not in text
    assert masked["environment"][0]["value"] == "postgresql://u:[secret]@db:5432/app"
    assert masked["note"] == "the secret is [secret]"
    assert masked["count"] == 3


def test_secret_digest_changes_with_the_value_but_hides_supplied_secrets():
    assert plan.secret_digest("a-b-c", []) != plan.secret_digest("a-b-d", [])
    # Only the supplied secret differs: masked before hashing, so the digest cannot reveal it.
    assert plan.secret_digest("user:hunter22@db", ["hunter22"]) == plan.secret_digest("user:qwerty99@db", ["qwerty99"])


@pytest.fixture
def secure_project(tmp_path) -> Path:
    """A project whose stack file holds a `secure:` admin password, as `pulumi config set --secret` writes."""
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(PROJECT_ROOT / name, tmp_path / name)
    (tmp_path / "components").symlink_to(PROJECT_ROOT / "components")
    dev = (PROJECT_ROOT / "Pulumi.dev.yaml").read_text()
    stack = dev.replace("  umami:adminSecretArn:", "  umami:adminUsername: postgres\n  # umami:adminSecretArn:")
    stack += "  umami:adminPassword:\n    secure: v1:c2VjcmV0LWNpcGhlcnRleHQ=\n"
    (tmp_path / "Pulumi.secure.yaml").write_text(stack)
    return tmp_path


def test_secure_config_becomes_a_masked_placeholder(secure_project):
    manifest = plan.build_plan("secure", {}, secure_project)
    text = plan.dumps(manifest)
    assert manifest["config"]["umami:adminPassword"] == plan.MASK
    assert plan.SECRET_PLACEHOLDER not in text
    provider = next(r for r in manifest["resources"] if r["type"] == "pulumi:providers:postgresql")
    assert provider["inputs"]["password"] == plan.MASK


def test_set_on_a_secret_key_stays_secret(secure_project):
    manifest = plan.build_plan("secure", {"umami:adminPassword": "Sup3r-Secret-Value!"}, secure_project)
    assert "Sup3r-Secret-Value" not in plan.dumps(manifest)
    assert manifest["config"]["umami:adminPassword"] == plan.MASK


def test_set_overrides_config():
    manifest = plan.build_plan(STACK, {"umami:schemaName": "analytics"})
    schema = next(r for r in manifest["resources"] if r["type"] == "postgresql:index/schema:Schema")
    assert schema["inputs"]["name"] == "analytics"
    assert manifest["config"]["umami:schemaName"] == "analytics"


@pytest.mark.parametrize("item", ["schemaName", "=analytics", ""])
def test_malformed_set_is_rejected(item):
    with pytest.raises(OpsError, match="is not KEY=VALUE"):
        parse_overrides([item], "umami")


def test_set_without_namespace_gets_the_project_namespace():
    assert parse_overrides(["schemaName=a=b"], "umami") == {"umami:schemaName": "a=b"}


def test_config_the_program_rejects_is_one_line_and_exit_2():
    process = cli("plan", "--stack", STACK, "--set", "umami:schemaName=public")
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 2
    assert stdout == ""
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "umami:schemaName=public" in errors[0]


def test_unknown_stack_is_exit_2():
    process = cli("plan", "--stack", "nosuchstack")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "Pulumi.nosuchstack.yaml" in stderr and "Traceback" not in stderr


def test_a_file_that_is_not_a_plan_is_rejected(tmp_path):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"dbHost": "x"}))
    with pytest.raises(OpsError, match="outputs.json is not a umami-offline-plan document"):
        plan.load_plan(path)
    path.write_text("{")
    with pytest.raises(OpsError, match="not valid JSON"):
        plan.load_plan(path)


def test_a_plan_is_checked_against_its_schema_and_read_in_its_legacy_spelling(dev_plan_text, tmp_path):
    manifest = json.loads(dev_plan_text)
    path = tmp_path / "plan.json"
    manifest["resources"][3]["protect"] = "yes"
    path.write_text(json.dumps(manifest))
    with pytest.raises(OpsError) as raised:
        plan.load_plan(path)
    assert str(raised.value) == f"{path}: /resources/3/protect: \"yes\" is not of type 'boolean'"

    legacy = json.loads(dev_plan_text)
    legacy["format"] = "umami-offline-plan/1"
    del legacy["version"]
    path.write_text(json.dumps(legacy))
    assert plan.load_plan(path)["resources"] == json.loads(dev_plan_text)["resources"]


def test_a_urn_listed_twice_or_plans_of_two_stacks_are_one_line(dev_plan_text, tmp_path):
    manifest = json.loads(dev_plan_text)
    manifest["resources"].append(manifest["resources"][0])
    path = tmp_path / "twice.json"
    path.write_text(json.dumps(manifest))
    with pytest.raises(OpsError, match=rf"twice.json: /resources/{len(manifest['resources']) - 1}/urn: "
                                        r"urn:pulumi:dev::umami::\S+ is listed twice"):
        plan.load_plan(path)

    base, head = tmp_path / "base.json", tmp_path / "head.json"
    base.write_text(dev_plan_text)
    head.write_text(dev_plan_text.replace('"stack": "dev"', '"stack": "prod"'))
    process = cli("diff", str(base), str(head))
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2 and stdout == ""
    assert stderr == f"error: {base} plans stack dev and {head} stack prod: compare two plans of the same stack\n"


# -- secrets by meaning: masked however they were given ------------------------------------------------

@pytest.fixture
def plain_project(tmp_path) -> Path:
    """A project whose admin login is config (no adminSecretArn), the password not `secure:`."""
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(PROJECT_ROOT / name, tmp_path / name)
    (tmp_path / "components").symlink_to(PROJECT_ROOT / "components")
    dev = (PROJECT_ROOT / "Pulumi.dev.yaml").read_text()
    (tmp_path / "Pulumi.plain.yaml").write_text(
        dev.replace("  umami:adminSecretArn:", "  umami:adminUsername: postgres\n  # umami:adminSecretArn:"))
    return tmp_path


def test_set_admin_password_is_in_no_plan_and_no_diff_and_the_plan_is_private(plain_project, tmp_path):
    plans = {}
    for name, password in (("base", "old-secret-123"), ("head", "hunter2-xyz")):
        out = tmp_path / f"{name}.json"
        process = cli("plan", "--stack", "plain", "--project-dir", str(plain_project),
                      "--set", f"umami:adminPassword={password}", "--out", str(out))
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
        assert password not in stderr and out.stat().st_mode & 0o777 == 0o600
        plans[name] = out.read_text()
        assert password not in plans[name]
        assert json.loads(plans[name])["config"]["umami:adminPassword"] == plan.MASK
    process = cli("diff", str(tmp_path / "base.json"), str(tmp_path / "head.json"), "--format", "markdown")
    markdown, _ = process.communicate(timeout=60)
    assert process.returncode == 0 and "hunter2" not in markdown and "old-secret" not in markdown


def test_a_plain_password_in_the_stack_file_is_masked(plain_project):
    stack = plain_project / "Pulumi.plain.yaml"
    stack.write_text(stack.read_text() + "  umami:adminPassword: hunter2-in-the-file\n")
    manifest = plan.build_plan("plain", {}, plain_project)
    assert "hunter2-in-the-file" not in plan.dumps(manifest)
    assert manifest["config"]["umami:adminPassword"] == plan.MASK


def test_a_password_from_the_environment_is_read_by_the_program_and_masked(plain_project, monkeypatch):
    environ = {"PULUMI_CONFIG_UMAMI_ADMINPASSWORD": "from-env-var-1",
               "PULUMI_CONFIG": json.dumps({"umami:adminPassword": "from-env-json-2"})}
    assert plan.supplied_secrets({}, ("umami:adminPassword",), environ) == ["from-env-var-1", "from-env-json-2"]
    assert plan.mask_value({"url": "u:from-env-var-1@h"}, ["from-env-var-1"]) == {"url": f"u:{plan.MASK}@h"}
    monkeypatch.setenv("PULUMI_CONFIG_UMAMI_ADMINPASSWORD", "from-env-var-1")
    # The program requires adminPassword here: the plan runs only because it read the environment.
    manifest = plan.build_plan("plain", {}, plain_project)
    assert "from-env-var-1" not in plan.dumps(manifest)


def test_an_error_line_never_shows_a_secret_key_even_set_in_plain():
    process = cli("plan", "--stack", STACK, "--set", "umami:adminPassword=hunter2-xyz")
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 2 and stdout == "" and "hunter2" not in stderr
    assert "umami:adminSecretArn and umami:adminPassword are both set" in stderr


def test_the_secret_keys_are_one_fact_read_without_importing_the_program():
    read_as_secret = set()
    for source in CONFIG_SOURCES:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "secret" and node.args:
                read_as_secret.add(node.args[0].value)
    assert read_as_secret == set(SECRET_KEYS) == {"adminPassword"}
    assert plan.declared_secret_keys(PROJECT_ROOT) == {"umami:adminPassword"}
    # A base checkout is planned in the same process: `components` must still be its own to import.
    probe = ("import sys; from pathlib import Path; from ops.preview import plan; "
             "print(sorted(plan.declared_secret_keys(Path('.'))), any(m.startswith('components') for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "['umami:adminPassword'] False", result.stderr
