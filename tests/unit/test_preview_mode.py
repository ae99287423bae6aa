"""A preview reads no secret: under Pulumi's mocks in preview mode the program never asks Secrets Manager
for a value and still declares every database resource with its inputs; an update reads the admin
secret. The preview role's IAM policy (docs/) grants no secret read."""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pytest

from components import config as stack_config
from components.database_parts.admin import PREVIEW_PASSWORD, admin_credentials
from ops.engine.offline import OfflineHandler
from ops.engine.program import encode_config, run_program
from tests.stack import dev_config, run_dev

GET_SECRET_VALUE = "aws:secretsmanager/getSecretVersion:getSecretVersion"
PROVIDER = "pulumi:providers:postgresql"
DATABASE_TYPES = ("postgresql:index/role:Role", "postgresql:index/schema:Schema", "postgresql:index/grant:Grant",
                  "postgresql:index/defaultPrivileges:DefaultPrivileges", "postgresql:index/extension:Extension")
ADMIN = {"username": "postgres", "password": "the-master-password-9x"}
DOCS = Path(__file__).resolve().parents[2] / "docs"


class RecordingHandler(OfflineHandler):
    """The offline engine's answers, with every data source the program asks for recorded."""

    def __init__(self) -> None:
        super().__init__(admin_secret=dict(ADMIN))
        self.calls: list[str] = []

    def call(self, token, args):
        self.calls.append(token)
        return super().call(token, args)


def run(preview: bool, overrides=None):
    handler = RecordingHandler()
    result = run_program(handler, stack="dev", config=dev_config(overrides), preview=preview)
    return result, handler.calls


@pytest.fixture(scope="module")
def previewed():
    return run(preview=True)


@pytest.fixture(scope="module")
def updated():
    return run(preview=False)


def test_a_preview_asks_for_no_secret_value(previewed):
    _, calls = previewed
    assert GET_SECRET_VALUE not in calls
    assert calls  # the other data sources (region, account, partition) are still read


def test_an_update_reads_the_admin_secret(updated):
    result, calls = updated
    assert calls.count(GET_SECRET_VALUE) == 1
    provider = result.one(PROVIDER)
    assert provider.inputs["password"] == ADMIN["password"] and "password" in provider.secret_inputs
    assert provider.ignore_changes == []  # an update passes a rotated master password on


def test_a_preview_still_declares_every_database_resource_with_its_inputs(previewed, updated):
    preview, update = previewed[0], updated[0]
    for type_token in DATABASE_TYPES:
        assert [r.inputs for r in preview.by_type(type_token)] == [r.inputs for r in update.by_type(type_token)], \
            type_token
    schema = preview.one("postgresql:index/schema:Schema").inputs
    assert (schema["name"], schema["owner"]) == ("umami", "postgres")
    role = preview.one("postgresql:index/role:Role").inputs
    assert role["name"] == "umami_user" and role["login"] is True and role["connectionLimit"] == 44
    assert {d.inputs["owner"] for d in preview.by_type("postgresql:index/defaultPrivileges:DefaultPrivileges")} \
        == {"postgres"}
    assert preview.outputs["dbAdminRole"] == update.outputs["dbAdminRole"] == "postgres"


def test_in_a_preview_the_provider_gets_a_placeholder_and_keeps_the_deployed_password(previewed):
    result, _ = previewed
    provider = result.one(PROVIDER)
    assert provider.inputs["username"] == "postgres"
    assert provider.inputs["password"] == PREVIEW_PASSWORD and "password" in provider.secret_inputs
    # The engine sets an ignored input back to its value in state: the preview shows no provider change.
    assert provider.ignore_changes == ["password"]
    assert all(r.ignore_changes != ["password"] for r in result.resources if r.type != PROVIDER)


def test_config_credentials_are_not_used_in_a_preview_either():
    overrides = {"adminUsername": "master", "adminPassword": "config-password-7y"}
    result = run_dev(overrides, remove=("umami:adminSecretArn",), secret_keys=("umami:adminPassword",))
    assert result.one(PROVIDER).inputs["password"] == "config-password-7y"  # an update uses it
    handler = RecordingHandler()
    config = dev_config(overrides, remove=("umami:adminSecretArn",))
    preview = run_program(handler, stack="dev", config=config, secret_keys=("umami:adminPassword",), preview=True)
    assert preview.one(PROVIDER).inputs["password"] == PREVIEW_PASSWORD
    assert preview.one("postgresql:index/schema:Schema").inputs["owner"] == "master"


def test_an_update_refuses_a_secret_of_another_user_than_the_preview_showed():
    handler = OfflineHandler(admin_secret={"username": "master", "password": "x"})
    with pytest.raises(pulumi.RunError) as error:
        run_dev(handler=handler)
    assert str(error.value) == (
        "umami:adminSecretArn arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!cluster-0a1b2c3d-AbCdEf is the "
        "login of master, not of umami:adminUsername=postgres (postgres unless set); set umami:adminUsername=master")


# -- the same, with the SDK's own set_mocks -------------------------------------------------------

class Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def new_resource(self, args):
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args):
        self.calls.append(args.token)
        return {"secretString": json.dumps(ADMIN)}


def credentials_under_set_mocks(preview: bool) -> tuple[Mocks, pulumi.Output]:
    mocks = Mocks()
    pulumi.runtime.set_mocks(mocks, project="umami", stack="dev", preview=preview)
    pulumi.runtime.set_all_config(encode_config(dev_config()), [])
    credentials = admin_credentials(stack_config.load().database)
    return mocks, pulumi.Output.from_input(credentials.password)


@pulumi.runtime.test
def test_set_mocks_preview_true_makes_no_secret_call():
    mocks, password = credentials_under_set_mocks(preview=True)

    def check(value):
        assert value == PREVIEW_PASSWORD
        assert GET_SECRET_VALUE not in mocks.calls

    return password.apply(check)


@pulumi.runtime.test
def test_set_mocks_update_reads_the_secret():
    mocks, password = credentials_under_set_mocks(preview=False)

    def check(value):
        assert value == ADMIN["password"]
        assert mocks.calls == [GET_SECRET_VALUE]

    return password.apply(check)


# -- the preview role -------------------------------------------------------------------------------

def statements(name: str) -> list[dict]:
    return json.loads((DOCS / name).read_text())["Statement"]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def test_the_preview_role_can_read_no_secret_and_may_assume_only_from_pull_requests():
    policy = statements("preview-role-policy.json")
    allowed = [a.lower() for s in policy if s["Effect"] == "Allow" for a in as_list(s["Action"])]
    assert allowed and not any(a in ("*", "secretsmanager:*") or a.startswith("secretsmanager:get")
                               or a.startswith("secretsmanager:batchget") for a in allowed)
    assert all(s["Effect"] != "Allow" or "NotAction" not in s for s in policy)
    denied = next(s for s in policy if s["Effect"] == "Deny")
    assert {"secretsmanager:GetSecretValue", "secretsmanager:BatchGetSecretValue"} <= set(as_list(denied["Action"]))
    assert denied["Resource"] == "*"  # the master secret and the stack's own secrets alike
    (trust,) = statements("preview-role-trust.json")
    condition = trust["Condition"]["StringEquals"]
    assert condition["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    assert condition["token.actions.githubusercontent.com:sub"].endswith(":pull_request")
