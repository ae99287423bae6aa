"""`ops.rehearse --umami-env FILE`: the Umami container's environment, to run Umami locally."""

import json
import stat
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

from ops.engine.umami_env import container_environment, umami_container, write_umami_env
from tests.conftest import ROOT, rehearse_into
from tests.stack import run_dev


def read_dotenv(path):
    """The file as a dotenv reader (compose, Umami's dotenv) sees it."""
    values = {}
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, raw = line.partition("=")
        if raw.startswith("'"):
            values[name] = raw[1:-1]
        else:
            values[name] = json.loads(raw.replace("\\$", "$"))
    return values


def stored_credentials(run):
    return next(json.loads(v.inputs["secretString"]) for v in run.by_type("aws:secretsmanager/secretVersion:SecretVersion")
                if str(v.inputs["secretString"]).startswith("{"))


def test_every_variable_of_the_task_definition_is_written_privately_with_its_files(rehearsed, tmp_path):
    env_file = tmp_path / "local" / "umami.env"
    written = write_umami_env(rehearsed.result.run, env_file)
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    container = umami_container(rehearsed.result.run)
    expected = {item["name"] for item in container["environment"]} | {item["name"] for item in container["secrets"]}
    assert {"DATABASE_URL", "APP_SECRET", "NODE_EXTRA_CA_CERTS", "UMAMI_DB_CA_PEM", "SKIP_DB_MIGRATION"} <= expected
    # Locally no deploy step migrates first: the one container migrates at start, as the image does.
    assert set(read_dotenv(env_file)) == expected - {"SKIP_DB_MIGRATION"}
    assert read_dotenv(env_file) == written

    # The CA file the container reads lies beside the env file, readable by the image's non-root user
    # (certificates only), and every variable names that copy.
    local_ca = env_file.parent / "umami-db-ca.pem"
    assert written["NODE_EXTRA_CA_CERTS"] == str(local_ca)
    assert stat.S_IMODE(local_ca.stat().st_mode) == 0o644
    assert "PRIVATE KEY" not in local_ca.read_text()
    assert local_ca.read_text().strip() == written["UMAMI_DB_CA_PEM"].strip()
    assert local_ca.read_text() == rehearsed.aurora.cluster.ca_file.read_text()
    query = parse_qs(urlsplit(written["DATABASE_URL"]).query)
    assert query["sslrootcert"] == [str(local_ca)]
    assert "/tmp/umami-db-ca.pem" not in env_file.read_text()


def test_values_are_exactly_those_the_stack_stores(rehearsed, tmp_path):
    written = write_umami_env(rehearsed.result.run, tmp_path / "umami.env")
    stored = stored_credentials(rehearsed.result.run)
    as_stored = container_environment(rehearsed.result.run)
    assert as_stored["DATABASE_URL"] == stored["DATABASE_URL"]
    assert written["DATABASE_URL"] == stored["DATABASE_URL"].replace(
        "%2Ftmp%2Fumami-db-ca.pem", str(tmp_path / "umami-db-ca.pem").replace("/", "%2F")).replace(
        "/tmp/umami-db-ca.pem", str(tmp_path / "umami-db-ca.pem"))
    app_secret = next(v.inputs["secretString"] for v in rehearsed.result.run.by_type(
        "aws:secretsmanager/secretVersion:SecretVersion") if not str(v.inputs["secretString"]).startswith("{"))
    assert written["APP_SECRET"] == app_secret and len(app_secret) == 64


def test_a_reader_endpoint_adds_the_replica_url(aurora, tmp_path):
    rehearsed = rehearse_into(aurora, tmp_path / "state", {"umami:dbReaderHost": "localhost"})
    written = write_umami_env(rehearsed.result.run, tmp_path / "umami.env")
    replica = urlsplit(written["DATABASE_REPLICA_URL"])
    assert replica.hostname == "localhost"
    assert replica.password == urlsplit(written["DATABASE_URL"]).password


def test_a_database_only_stack_has_no_container_to_describe():
    run = run_dev({"deployService": "false"})
    try:
        container_environment(run)
    except Exception as exc:  # noqa: BLE001 the one-line OpsError is what the CLI prints
        assert "declares no ECS service" in str(exc)
    else:
        raise AssertionError("a database-only stack must refuse --umami-env")


def test_an_unwritable_env_file_is_refused_before_anything_is_applied(aurora, tmp_path):
    (tmp_path / "a-file").write_text("not a folder\n")
    target = tmp_path / "a-file" / "sub" / "umami.env"
    result = subprocess.run(
        [sys.executable, "-m", "ops.rehearse", "--stack", "dev", "--dsn", aurora.admin_dsn(),
         "--umami-env", str(target)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: --umami-env {target}: {tmp_path / 'a-file'} is not a writable folder"]
    with aurora.superuser_conn() as conn:
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'umami_user'").fetchone()[0] == 0
