"""The container's start wrapper, run for real with /bin/sh: it writes the CA, then becomes the image's
start command (exec, so the init forwards signals straight to it)."""

import json
import stat
import subprocess
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from components.service_parts.container import (CA_PEM_VARIABLE, SHELL_ENTRY_POINT, ca_wrapper, container_definitions,
                                  start_command)
from components.secrets import database_url
from components.shared.tls import CONTAINER_CA_PATH

REPO = Path(__file__).resolve().parents[2]
PEM = (REPO / "components" / "shared" / "rds_ca" / "eu-west-1.pem").read_text()
FAKE_START = """#!/bin/sh
# Stands in for the image's pnpm/yarn: reports what the started process would see.
echo "tool=$(basename "$0") args=$* pid=$$ extra=$NODE_EXTRA_CA_CERTS umask=$(umask)"
cat "$NODE_EXTRA_CA_CERTS" > "$WRAPPER_OUT/seen.pem"
"""


@pytest.fixture
def fake_tools(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("pnpm", "yarn"):
        (bin_dir / tool).write_text(FAKE_START)
        (bin_dir / tool).chmod(0o755)
    return tmp_path


def run_wrapper(script: str, tmp_path: Path, ca_path: Path, pem: str | None) -> tuple[subprocess.Popen, str, str]:
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "WRAPPER_OUT": str(tmp_path),
           "NODE_EXTRA_CA_CERTS": str(ca_path)}
    if pem is not None:
        env[CA_PEM_VARIABLE] = pem
    # umask 022 going in: the start command must see it unchanged (077 is for the CA file only).
    process = subprocess.Popen([*SHELL_ENTRY_POINT, script], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, umask=0o022)
    out, err = process.communicate(timeout=30)
    return process, out, err


def test_wrapper_writes_exactly_the_pem_privately_then_execs_the_start_command(fake_tools):
    ca_path = fake_tools / "umami-db-ca.pem"
    process, out, err = run_wrapper(ca_wrapper("pnpm start-docker", ca_path=str(ca_path)), fake_tools, ca_path, PEM)
    assert process.returncode == 0, err
    assert ca_path.read_text() == PEM  # byte for byte, no added or lost newline
    assert stat.S_IMODE(ca_path.stat().st_mode) == 0o600
    # exec: the start command runs as the shell's own process, so ECS's init signals it directly.
    assert out.strip() == f"tool=pnpm args=start-docker pid={process.pid} extra={ca_path} umask=0022"
    assert (fake_tools / "seen.pem").read_text() == PEM  # the file exists before the start command runs


def test_wrapper_replaces_a_stale_ca_file(fake_tools):
    ca_path = fake_tools / "umami-db-ca.pem"
    ca_path.write_text("old content that is longer than nothing\n" * 200)
    process, _, err = run_wrapper(ca_wrapper("yarn start-docker", ca_path=str(ca_path)), fake_tools, ca_path, PEM)
    assert process.returncode == 0, err
    assert ca_path.read_text() == PEM


@pytest.mark.parametrize("pem", [None, ""])
def test_wrapper_without_a_ca_stops_before_starting_umami(fake_tools, pem):
    ca_path = fake_tools / "umami-db-ca.pem"
    process, out, err = run_wrapper(ca_wrapper(ca_path=str(ca_path)), fake_tools, ca_path, pem)
    assert process.returncode == 1 and out == ""
    assert err.strip() == "UMAMI_DB_CA_PEM is empty"
    assert not ca_path.exists()


def test_wrapper_quotes_a_path_with_spaces(fake_tools):
    ca_path = fake_tools / "a dir" / "ca file.pem"
    ca_path.parent.mkdir()
    process, _, err = run_wrapper(ca_wrapper(ca_path=str(ca_path)), fake_tools, ca_path, PEM)
    assert process.returncode == 0, err
    assert ca_path.read_text() == PEM


@pytest.mark.parametrize("version, command", [("3.1.0", "pnpm start-docker"), (None, "pnpm start-docker"),
                                              ("2.19.0", "yarn start-docker"), ("4.0.0", "pnpm start-docker")])
def test_start_command_follows_the_images_major_version(version, command):
    assert start_command(version) == command


def definition(**overrides) -> dict:
    arguments = {"image": "ghcr.io/umami-software/umami:3.1.0", "db_secret_arn": "arn:db", "app_secret_arn": "arn:app",
                 "log_group": "/ecs/umami-dev", "region": "eu-west-1", "start_period_seconds": 300}
    return container_definitions(**{**arguments, **overrides})[0]


def test_container_gets_the_ca_as_a_value_and_the_wrapper_as_its_command():
    umami = definition(ca_pem=PEM, umami_version="2.19.0")
    environment = {e["name"]: e["value"] for e in umami["environment"]}
    assert environment[CA_PEM_VARIABLE] == PEM and environment["NODE_EXTRA_CA_CERTS"] == CONTAINER_CA_PATH
    assert umami["entryPoint"] == ["/bin/sh", "-c"]
    assert umami["command"] == [ca_wrapper("yarn start-docker")]
    assert f"> {CONTAINER_CA_PATH})" in umami["command"][0]
    json.dumps(umami)  # plain data, as ECS takes it


def test_the_url_and_node_read_the_file_the_wrapper_writes():
    url = database_url("u", "p", "h", 5432, "d", "s", "verify-full")
    parameters = dict(parse_qsl(urlsplit(url).query))
    assert parameters["sslrootcert"] == parameters["sslcert"] == CONTAINER_CA_PATH
    assert definition(ca_pem=PEM)["command"][0] == ca_wrapper(ca_path=CONTAINER_CA_PATH)


def test_replica_secret_only_with_a_reader():
    assert [s["name"] for s in definition()["secrets"]] == ["APP_SECRET", "DATABASE_URL"]
    secrets = {s["name"]: s["valueFrom"] for s in definition(replica=True)["secrets"]}
    assert secrets["DATABASE_REPLICA_URL"] == "arn:db:DATABASE_REPLICA_URL::"
    assert secrets["DATABASE_URL"] == "arn:db:DATABASE_URL::"


def test_without_a_ca_the_image_starts_unchanged():
    umami = definition(ca_pem=None)
    assert "entryPoint" not in umami and "command" not in umami
    assert CA_PEM_VARIABLE not in {e["name"] for e in umami["environment"]}


def test_the_registered_command_runs_as_is_under_sh(fake_tools):
    """The exact string in the task definition, pointed at a temp dir by rewriting only the path."""
    command = definition(ca_pem=PEM)["command"][0]
    ca_path = fake_tools / "umami-db-ca.pem"
    process, out, err = run_wrapper(command.replace(CONTAINER_CA_PATH, str(ca_path)), fake_tools, ca_path, PEM)
    assert process.returncode == 0, err
    assert ca_path.read_text() == PEM and out.startswith("tool=pnpm args=start-docker ")
