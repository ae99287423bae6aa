"""What a snapshot is about: stack outputs with overrides, or the admin DSN before the first deploy."""

from __future__ import annotations

import json

import pytest

from ops.core.errors import OpsError
from ops.metrics.metric_set import targets_from_outputs
from ops.metrics.sources import SourceOptions, resolve

OUTPUTS = {
    "contractVersion": 1, "dbHost": "app-aurora.cluster-x.eu-west-1.rds.amazonaws.com", "dbPort": 5432,
    "dbName": "appdb", "dbSchema": "analytics", "dbRole": "analytics_user", "dbAdminRole": "postgres",
    "dbSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:umami-db", "awsRegion": "eu-west-1",
    "auroraClusterIdentifier": None, "auroraInstanceIdentifiers": [],
}


def test_before_the_first_deploy_the_admin_dsn_names_the_database(monkeypatch):
    monkeypatch.setenv("UMAMI_ADMIN_DSN", "postgresql://postgres:s3cret@db.internal:6543/appdb?sslmode=require")
    outputs, predeploy = resolve(SourceOptions(aurora_cluster="app-aurora", region="eu-central-1"))
    assert predeploy
    assert (outputs.database.host, outputs.database.port, outputs.database.name, outputs.database.sslmode) == (
        "db.internal", 6543, "appdb", "require")
    assert (outputs.database.schema, outputs.database.role) == ("umami", "umami_user")
    targets = targets_from_outputs(outputs)
    assert (targets.cluster, targets.instances, targets.region) == ("app-aurora", (), "eu-central-1")
    assert "s3cret" not in repr(outputs)


def test_without_outputs_or_dsn_says_what_to_pass(monkeypatch):
    monkeypatch.delenv("UMAMI_ADMIN_DSN", raising=False)
    with pytest.raises(OpsError, match="pass --stack NAME or --outputs FILE, or, before the first deploy, set "
                                       "UMAMI_ADMIN_DSN"):
        resolve(SourceOptions(schema="umami"))


def test_outputs_keep_their_names_and_take_aurora_overrides(tmp_path):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(OUTPUTS))
    outputs, predeploy = resolve(SourceOptions(outputs_file=str(path), aurora_instances=("db-1", "db-2")))
    assert not predeploy
    assert (outputs.database.schema, outputs.database.role) == ("analytics", "analytics_user")
    targets = targets_from_outputs(outputs)
    assert (targets.cluster, targets.instances, targets.region) == (None, ("db-1", "db-2"), "eu-west-1")
    with pytest.raises(OpsError, match="--schema and --role are for a snapshot before the first deploy"):
        resolve(SourceOptions(outputs_file=str(path), role="other"))


def test_malformed_instance_list_is_one_line(tmp_path):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({**OUTPUTS, "auroraInstanceIdentifiers": "db-1"}))
    with pytest.raises(OpsError, match=r"auroraInstanceIdentifiers='db-1' must be a list of instance identifiers"):
        resolve(SourceOptions(outputs_file=str(path)))
