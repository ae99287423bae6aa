"""Stack config validation: every bad value is one line naming the key, the value and what is allowed."""

import pytest

from components.config import ConfigError
import pulumi

from tests.stack import run_dev

ADMIN_KEYS = ("umami:adminSecretArn",)

INVALID = [
    ({"dbPort": "70000"}, "umami:dbPort=70000 is out of range; use 1-65535"),
    ({"dbPort": "abc"}, "umami:dbPort=abc is not a whole number; use 1-65535"),
    ({"dbHost": "not a host!"}, "umami:dbHost=not a host! is not a hostname"),
    ({"dbName": "App-DB"}, "umami:dbName=App-DB is not a plain PostgreSQL identifier"),
    ({"dbSslMode": "required"}, "umami:dbSslMode=required is not allowed; use one of disable, require, verify-ca, verify-full"),
    ({"schemaName": "public"}, "umami:schemaName=public is a shared schema"),
    ({"schemaName": "information_schema"}, "umami:schemaName=information_schema is a shared schema"),
    ({"schemaName": "pg_umami"}, "umami:schemaName=pg_umami starts with pg_"),
    ({"schemaName": "Umami"}, "umami:schemaName=Umami is not a plain PostgreSQL identifier"),
    ({"schemaName": "u" * 64}, "is longer than 63 bytes"),
    ({"roleName": "postgres"}, "umami:roleName=postgres is a reserved role"),
    ({"roleName": "rdsadmin"}, "umami:roleName=rdsadmin is a reserved role"),
    ({"roleName": "rds_superuser"}, "umami:roleName=rds_superuser is a reserved role"),
    ({"roleName": "pg_monitor"}, "umami:roleName=pg_monitor starts with pg_"),
    ({"roleName": "umami user"}, "umami:roleName=umami user is not a plain PostgreSQL identifier"),
    ({"connectionLimit": "0"}, "umami:connectionLimit=0 is out of range; use 1-500"),
    ({"connectionLimit": "ten"}, "umami:connectionLimit=ten is not a whole number"),
    ({"statementTimeoutMs": "-1"}, "umami:statementTimeoutMs=-1 is out of range; use 0-3600000 ms"),
    ({"idleInTransactionTimeoutMs": "99999999"}, "umami:idleInTransactionTimeoutMs=99999999 is out of range"),
    ({"adminSecretArn": "arn:aws:s3:::bucket"}, "umami:adminSecretArn=arn:aws:s3:::bucket is not a Secrets Manager secret ARN"),
    ({"kmsKeyId": "my-key"}, "umami:kmsKeyId=my-key is not a KMS key id, key ARN or alias"),
    ({"secretName": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x"}, "umami:secretName=arn:aws:secretsmanager:eu-west-1:123456789012:secret:x is an ARN"),
    ({"secretName": "bad name with spaces"}, "umami:secretName=bad name with spaces is not a valid secret name"),
    ({"appSecretName": "observability/umami-db-credentials"}, "umami:appSecretName=observability/umami-db-credentials equals umami:secretName"),
    ({"secretRecoveryWindowDays": "3"}, "umami:secretRecoveryWindowDays=3 is not allowed; use 0 (delete at once) or 7-30 days"),
    ({"protectStatefulResources": "yes"}, "umami:protectStatefulResources=yes is not a boolean; use true or false"),
    ({"dropSchemaCascade": "1"}, "umami:dropSchemaCascade=1 is not a boolean"),
    ({"environment": "Prod Env"}, "umami:environment=Prod Env is not an environment name"),
    ({"tags": {"Project": "Other"}}, "umami:tags=Project overrides a managed tag"),
    ({"tags": {"aws:createdBy": "me"}}, "umami:tags=aws:createdBy is not a valid tag key"),
    ({"tags": "[1, 2]"}, "umami:tags=[1, 2] is not a dict"),
    ({"applicationRoles": ["umami_user"]}, "umami:applicationRoles=umami_user is the umami role itself"),
    ({"auroraClusterIdentifier": "-bad"}, "umami:auroraClusterIdentifier=-bad is not an RDS identifier"),
    ({"maxConnections": "5"}, "umami:maxConnections=5 is out of range; use 20-262143"),
]


@pytest.mark.parametrize("overrides, expected", INVALID, ids=[next(iter(o)) + "=" + str(next(iter(o.values())))[:20] for o, _ in INVALID])
def test_invalid_value_is_rejected_with_one_line(overrides, expected):
    with pytest.raises(ConfigError) as error:
        run_dev(overrides)
    lines = str(error.value).splitlines()
    assert len(lines) == 1, lines
    assert expected in lines[0]
    assert isinstance(error.value, pulumi.RunError)  # Pulumi prints RunError without a traceback


def test_missing_required_keys_are_each_named():
    with pytest.raises(ConfigError) as error:
        run_dev(remove=("umami:dbHost", "umami:dbName"))
    assert error.value.problems == ["umami:dbHost is required", "umami:dbName is required"]


def test_admin_credentials_need_exactly_one_source():
    with pytest.raises(ConfigError, match="adminSecretArn or both umami:adminUsername and umami:adminPassword"):
        run_dev(remove=ADMIN_KEYS)
    # With the secret, adminUsername names its user (a preview reads no secret); a second password is refused.
    with pytest.raises(ConfigError, match="adminSecretArn and umami:adminPassword are both set; use one source of the "
                                          "admin password"):
        run_dev({"adminUsername": "postgres", "adminPassword": "x"}, secret_keys=("umami:adminPassword",))
    run_dev({"adminUsername": "postgres"})


def test_role_may_not_be_the_admin():
    with pytest.raises(ConfigError, match="umami:roleName=master is the admin role"):
        run_dev({"adminUsername": "master", "adminPassword": "x", "roleName": "master"},
                remove=ADMIN_KEYS, secret_keys=("umami:adminPassword",))


def test_no_resource_is_declared_when_config_is_invalid():
    from ops.engine.offline import OfflineHandler

    class Counting(OfflineHandler):
        count = 0

        def new_resource(self, resource):
            Counting.count += 1
            return super().new_resource(resource)

    with pytest.raises(ConfigError):
        run_dev({"dbPort": "0"}, handler=Counting())
    assert Counting.count == 0


def test_defaults_apply_when_keys_are_absent():
    run = run_dev(remove=("umami:schemaName", "umami:roleName", "umami:connectionLimit",
                          "umami:secretName", "umami:protectStatefulResources"))
    role = run.one("postgresql:index/role:Role")
    assert role.inputs["name"] == "umami_user" and role.inputs["connectionLimit"] == 44  # the budget
    assert run.one("postgresql:index/schema:Schema").inputs["name"] == "umami"
    assert role.protect is True
    assert run.outputs["dbSecretName"] == "observability/umami-db-credentials"
