"""No generated secret (password, APP_SECRET, DATABASE_URL) in any resource's plain inputs or in the outputs."""

import json
from urllib.parse import quote

import pytest

from components.secrets import database_url
from ops.engine.offline import OfflineHandler
from tests.stack import named, run_dev

PASSWORD = "Pw:/?#[]@!%+ =generated-7Qz"
APP_SECRET = "appsecret" + "Z" * 55


class KnownValues(OfflineHandler):
    """Generated values the test knows, with characters that change when URL-encoded."""

    def __init__(self):
        super().__init__(random_value=lambda r: PASSWORD if "db-password" in r.name else APP_SECRET)


@pytest.fixture(scope="module", params=["http", "https-admin-exec"])
def run(request):
    overrides = {} if request.param == "http" else {
        "certificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-1111-2222-3333-444455556666",
        "domainName": "analytics.example.com", "adminCidrs": ["203.0.113.0/24"], "enableExecuteCommand": "true",
        "auroraClusterIdentifier": "app-aurora", "alarmEmail": "ops@example.com",
        "kmsKeyId": "alias/umami-secrets", "serviceDiscoveryNamespace": "umami.internal",
    }
    return run_dev(overrides, handler=KnownValues())


def forbidden_values():
    url = database_url("umami_user", PASSWORD, "app-aurora.cluster-abcdefghijkl.eu-west-1.rds.amazonaws.com",
                       5432, "appdb", "umami", "verify-full")
    return {"password": PASSWORD, "encoded password": quote(PASSWORD, safe=""), "APP_SECRET": APP_SECRET,
            "DATABASE_URL": url, "DATABASE_URL credentials": url.split("@")[0]}


def test_the_generated_values_are_really_used(run):
    version = next(r for r in run.by_type("aws:secretsmanager/secretVersion:SecretVersion")
                   if r.name == "umami-db-credentials-value")
    assert json.loads(version.inputs["secretString"])["DATABASE_URL"] == forbidden_values()["DATABASE_URL"]


def test_no_secret_value_in_any_plain_input(run):
    for resource in run.resources:
        plain = json.dumps(resource.masked_inputs(), default=str)
        for label, value in forbidden_values().items():
            assert value not in plain, f"{label} in {resource.type} {resource.name}"


def test_no_secret_value_in_the_outputs(run):
    exported = json.dumps(run.outputs, default=str)
    for label, value in forbidden_values().items():
        assert value not in exported, label


def test_service_and_monitoring_inputs_are_plain_so_the_scan_sees_them(run):
    """A secret-marked input would be masked above and prove nothing; these must all be plain."""
    components = {r.urn for r in run.resources if r.type in ("umami:service:UmamiService",
                                                              "umami:monitoring:UmamiMonitoring")}
    owned = [r for r in run.resources if r.parent in components]
    assert len(owned) > 30
    assert [(r.name, r.secret_inputs) for r in owned if r.secret_inputs] == []


def test_the_container_gets_secrets_by_reference_only(run):
    task = named(run, "aws:ecs/taskDefinition:TaskDefinition", "umami-task")
    umami = json.loads(task.inputs["containerDefinitions"])[0]
    assert all(s["valueFrom"].startswith("arn:aws:secretsmanager:") for s in umami["secrets"])
    assert {s["name"] for s in umami["secrets"]} == {"DATABASE_URL", "APP_SECRET"}
