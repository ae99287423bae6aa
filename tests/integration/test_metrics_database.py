"""ops.metrics against a real PostgreSQL 15: snapshots, the diff's verdicts, the CLI and its files."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from psycopg import sql

from ops.metrics import snapshot, thresholds
from ops.metrics.__main__ import main
from ops.metrics.diff import compare
from ops.metrics.plot import figure_size_px, panel_rows
from tests.conftest import ROOT, rehearse_into
from tests.umami_like import run_umami_like_migrations

UMAMI_PASSWORD = "umami-test-password"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# -- helpers shared with test_metrics_cloudwatch ---------------------------------

def tls_outputs(aurora) -> dict:
    """dbSslMode and dbCaBundle as the stack exports them for a cluster that speaks TLS."""
    ca_file = getattr(getattr(aurora, "cluster", None), "ca_file", None)
    if ca_file is None:
        return {"dbSslMode": "disable"}
    return {"dbSslMode": "verify-full", "dbCaBundle": Path(ca_file).read_text()}


def write_outputs(path: Path, aurora, **overrides) -> Path:
    """A stack-outputs file pointing at the test database (contract keys only)."""
    outputs = {
        "contractVersion": 1, "dbHost": "127.0.0.1", "dbPort": aurora.port, "dbName": aurora.dbname,
        "dbSchema": "umami", "dbRole": "umami_user", "dbAdminRole": "postgres",
        "dbSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:umami-db",
        "adminSecretArn": None, "awsRegion": "eu-west-1", "auroraClusterIdentifier": None,
        "auroraInstanceIdentifiers": [], "dbMaxConnections": 100, **tls_outputs(aurora),
    }
    outputs.update(overrides)
    path.write_text(json.dumps(outputs))
    return path


def create_umami_by_sql(aurora, connection_limit: int = 10) -> None:
    """The schema, role and grants the stack declares, as plain SQL by the admin."""
    with aurora.connect_as(aurora.admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE umami_user LOGIN PASSWORD {} CONNECTION LIMIT {}")
                     .format(sql.Literal(UMAMI_PASSWORD), sql.Literal(connection_limit)))
        conn.execute("ALTER ROLE umami_user SET search_path TO umami")
        conn.execute("CREATE SCHEMA umami AUTHORIZATION postgres")
        conn.execute("GRANT USAGE, CREATE ON SCHEMA umami TO umami_user")
        conn.execute('CREATE EXTENSION IF NOT EXISTS "pgcrypto" SCHEMA umami')


def umami_connect(aurora, application_name: str = "umami") -> psycopg.Connection:
    return psycopg.connect(aurora.cluster.conninfo("umami_user", UMAMI_PASSWORD, aurora.dbname),
                           application_name=application_name, autocommit=True)


def load_events(conn: psycopg.Connection, count: int) -> None:
    """Umami-sized rows (paths of ~200 bytes) into website_event."""
    conn.execute("INSERT INTO website_event (website_id, url_path) "
                 "SELECT website_id, '/' || repeat('p', 200) || g FROM website, generate_series(1, %s) g",
                 (count,))


@pytest.fixture
def no_aws(monkeypatch, tmp_path):
    """No AWS credentials anywhere, and no instance metadata lookups: CloudWatch fails fast."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("UMAMI_DB_PASSWORD", raising=False)
    monkeypatch.delenv("UMAMI_ADMIN_DSN", raising=False)


@pytest.fixture
def as_admin(no_aws, monkeypatch, aurora):
    monkeypatch.setenv("UMAMI_ADMIN_DSN", aurora.admin_dsn())
    return aurora


# Tests sample the connections quickly; test_metrics_connections checks real spacing.
FAST_SAMPLING = ("--samples", "2", "--sample-interval", "0")


def snap(outputs: Path, out: Path, *extra: str) -> int:
    sampling = () if "--samples" in extra else FAST_SAMPLING
    return main(["snapshot", "--outputs", str(outputs), "--out", str(out), *sampling, *extra])


def diff_json(capsys, *args: str) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["diff", *args, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def rows_by_key(report: dict) -> dict[str, dict]:
    return {row["key"]: row for row in report["rows"]}


# -- snapshots and the diff ------------------------------------------------------

def test_diff_shows_umami_growth_and_its_connections_apart_from_the_application(as_admin, tmp_path, capsys):
    aurora = as_admin
    outputs = write_outputs(tmp_path / "outputs.json", aurora)
    app = aurora.connect_as(aurora.app, application_name="shop", autocommit=True)  # the application, idle
    assert snap(outputs, tmp_path / "before.json") == 0

    create_umami_by_sql(aurora)
    with umami_connect(aurora) as loader:
        run_umami_like_migrations(loader)
        load_events(loader, 20_000)
    pool = [umami_connect(aurora), umami_connect(aurora)]
    for conn in pool:
        conn.execute("SELECT 1")
    assert snap(outputs, tmp_path / "after.json") == 0

    code, report = diff_json(capsys, str(tmp_path / "before.json"), str(tmp_path / "after.json"))
    rows = rows_by_key(report)
    schema = rows["storage.schema.umami"]
    assert schema["before"] == 0 and schema["after"] > 4 * 1024 * 1024
    assert schema["verdict"] == "pass" and "created between the snapshots" in schema["note"]
    assert "0 -> 4 tables" in schema["note"]
    assert rows["storage.database"]["delta"] >= schema["after"] - 64 * 1024
    assert rows["storage.schema.app"]["delta"] == 0
    umami = rows["connections.umami"]
    assert (umami["before"], umami["after"], umami["verdict"]) == (0, 2, "pass")
    # No budget in these outputs: the role's own limit stands in, and the report says so.
    assert umami["threshold"] == "max <= 10 (budget)"
    assert umami["note"].startswith("2/10 max (budget 10 (the role's rolconnlimit; the outputs carry no budget))")
    assert (rows["connections.application"]["before"], rows["connections.application"]["after"]) == (1, 1)
    assert rows["connections.application"]["verdict"] == "pass"
    assert rows["connections.role.umami_user"]["after"] == 2
    assert rows["connections.application_name.umami"]["after"] == 2
    assert rows["connections.total"]["delta"] == 2 and rows["connections.total"]["verdict"] == "info"
    assert rows["activity.xactCommit"]["delta"] > 0 and rows["activity.xactCommit"]["note"].endswith("/s")
    assert code == 0 and report["summary"]["fail"] == 0
    for conn in pool + [app]:
        conn.close()


def test_snapshot_as_the_umami_role_sees_sizes_and_sessions_it_has_no_privilege_on(no_aws, aurora, tmp_path,
                                                                                     monkeypatch, capsys):
    create_umami_by_sql(aurora)
    outputs = write_outputs(tmp_path / "outputs.json", aurora)
    with umami_connect(aurora) as conn:
        assert conn.execute("SELECT has_schema_privilege('app', 'USAGE')").fetchone() == (False,)
    monkeypatch.setenv("UMAMI_ADMIN_DSN", aurora.admin_dsn())
    assert snap(outputs, tmp_path / "admin.json") == 0
    monkeypatch.delenv("UMAMI_ADMIN_DSN")
    monkeypatch.setenv("UMAMI_DB_PASSWORD", UMAMI_PASSWORD)
    app = aurora.connect_as(aurora.app, application_name="shop", autocommit=True)

    assert snap(outputs, tmp_path / "umami.json") == 0
    assert "connected as the umami role" in capsys.readouterr().err
    doc = snapshot.load(tmp_path / "umami.json")
    assert doc["observer"]["kind"] == "umami" and doc["observer"]["role"] == "umami_user"
    assert doc["observer"]["hiddenSessions"] == 1          # the application's session
    sizes = {s["name"]: s["totalBytes"] for s in doc["database"]["schemas"]}
    admin_sizes = {s["name"]: s["totalBytes"] for s in snapshot.load(tmp_path / "admin.json")["database"]["schemas"]}
    assert sizes["app"] == admin_sizes["app"] > 0
    shop = [s for s in doc["database"]["connections"]["sessions"] if s["applicationName"] == "shop"]
    assert shop == [{"database": "appdb", "role": "app_user", "applicationName": "shop", "state": None, "count": 1}]

    code, report = diff_json(capsys, str(tmp_path / "admin.json"), str(tmp_path / "umami.json"))
    assert code == 0
    assert any("taken by different roles (postgres before, umami_user after)" in n for n in report["notes"])
    assert rows_by_key(report)["connections.state.(not visible)"]["after"] == 1
    assert "umami_user could not see the state of 1 session(s) of other roles in the after snapshot" in \
        " ".join(report["notes"])
    app.close()


def rehearsed_budget(rehearsed) -> int:
    """Umami's budget as the rehearsed stack states it: its outputs, else the role's CONNECTION LIMIT."""
    outputs = rehearsed.outputs
    if outputs.get("dbConnectionBudget"):
        return outputs["dbConnectionBudget"]["total"]
    if outputs.get("dbConnectionLimit") is not None:
        return outputs["dbConnectionLimit"]
    return rehearsed.result.run.one("postgresql:index/role:Role").inputs["connectionLimit"]


def test_baseline_before_the_first_deploy_compares_with_the_rehearsed_stack(as_admin, tmp_path, monkeypatch,
                                                                             capsys):
    aurora = as_admin
    # No stack outputs yet: the admin DSN names the database.
    assert main(["snapshot", "--out", str(tmp_path / "before.json"), *FAST_SAMPLING]) == 0
    before = snapshot.load(tmp_path / "before.json")
    assert (before["stack"]["schema"], before["stack"]["role"]) == ("umami", "umami_user")
    assert before["observer"]["kind"] == "admin"

    rehearsed = rehearse_into(aurora, tmp_path / "rehearsal")
    with psycopg.connect(aurora.cluster.conninfo(rehearsed.umami.user, rehearsed.umami.password, aurora.dbname),
                         autocommit=True) as conn:
        run_umami_like_migrations(conn)
    monkeypatch.delenv("UMAMI_ADMIN_DSN")
    monkeypatch.setenv("PGPASSFILE", str(rehearsed.pgpass))   # the rehearsal's passfile holds umami's password

    assert snap(rehearsed.outputs_file, tmp_path / "after.json", "--db-user", "umami") == 0
    code, report = diff_json(capsys, str(tmp_path / "before.json"), str(tmp_path / "after.json"))
    rows = rows_by_key(report)
    assert code == 0
    assert rows["storage.schema.umami"]["before"] == 0 and rows["storage.schema.umami"]["after"] > 0
    assert "0 -> 4 tables" in rows["storage.schema.umami"]["note"]
    umami = rows["connections.umami"]
    assert umami["verdict"] == "pass" and umami["threshold"].startswith("max <= ")
    budget = rehearsed_budget(rehearsed)
    assert umami["note"].startswith(f"0/{budget} max (budget {budget}")
    assert any("taken by different roles (postgres before, umami_user after)" in n for n in report["notes"])
    assert any("CloudWatch part skipped in the after snapshot: no Aurora cluster identifier" in n
               for n in report["notes"])


@pytest.mark.parametrize("args, message", [
    ([], "pass --stack NAME or --outputs FILE, or, before the first deploy, set UMAMI_ADMIN_DSN"),
    (["--outputs", "{outputs}", "--schema", "analytics"], "--schema and --role are for a snapshot before the first"),
    (["--outputs", "{outputs}", "--window", "2w"], "--window='2w' is not a duration"),
    (["--stack", "dev", "--outputs", "{outputs}"], "pass exactly one of --stack NAME or --outputs FILE"),
    (["--outputs", "{outputs}", "--samples", "0"], "--samples='0' must be a whole number from 1 to 60"),
    (["--outputs", "{outputs}", "--samples", "many"], "--samples='many' must be a whole number from 1 to 60"),
    (["--outputs", "{outputs}", "--sample-interval", "-1"], "--sample-interval='-1' must be seconds from 0 to 60"),
    (["--outputs", "{outputs}", "--sample-interval", "soon"], "--sample-interval='soon' must be seconds"),
    (["--outputs", "{outputs}", "--sample-interval", "nan"], "--sample-interval='nan' must be seconds"),
])
def test_bad_snapshot_arguments_are_one_line_exit_2(no_aws, tmp_path, capsys, args, message):
    outputs = write_outputs(tmp_path / "outputs.json", SimpleNamespace(port=5432, dbname="appdb"))
    argv = ["snapshot", "--out", str(tmp_path / "s.json")] + [a.format(outputs=outputs) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_statistics_reset_between_snapshots_is_reported_instead_of_rates(as_admin, tmp_path, capsys):
    outputs = write_outputs(tmp_path / "outputs.json", as_admin)
    assert snap(outputs, tmp_path / "before.json") == 0
    with as_admin.superuser_conn() as conn:
        conn.execute("SELECT pg_stat_reset()")
    assert snap(outputs, tmp_path / "after.json") == 0
    code, report = diff_json(capsys, str(tmp_path / "before.json"), str(tmp_path / "after.json"))
    assert code == 0
    assert any("statistics were reset between the snapshots" in note for note in report["notes"])
    assert rows_by_key(report)["activity.xactCommit"]["note"] is None


def test_thresholds_file_changes_the_verdict(as_admin, tmp_path, capsys):
    aurora = as_admin
    outputs = write_outputs(tmp_path / "outputs.json", aurora)
    assert snap(outputs, tmp_path / "before.json") == 0
    create_umami_by_sql(aurora)
    with umami_connect(aurora) as conn:
        run_umami_like_migrations(conn)
        load_events(conn, 2_000)
    assert snap(outputs, tmp_path / "after.json") == 0
    before, after = str(tmp_path / "before.json"), str(tmp_path / "after.json")
    growth = rows_by_key(diff_json(capsys, before, after)[1])["storage.schema.umami"]["after"]

    at_limit = tmp_path / "at-limit.json"
    at_limit.write_text(json.dumps({"umamiSchemaGrowthBytes": growth}))
    code, report = diff_json(capsys, before, after, "--thresholds", str(at_limit))
    assert code == 0 and rows_by_key(report)["storage.schema.umami"]["verdict"] == "pass"

    just_under = tmp_path / "just-under.json"
    just_under.write_text(json.dumps({"umamiSchemaGrowthBytes": growth - 1}))
    code, report = diff_json(capsys, before, after, "--thresholds", str(just_under))
    assert code == 1 and report["summary"]["broken"] == ["storage.schema.umami"]


def test_require_cloudwatch_without_a_cluster_identifier_exits_2(as_admin, tmp_path, capsys):
    outputs = write_outputs(tmp_path / "outputs.json", as_admin)
    assert snap(outputs, tmp_path / "s.json", "--require-cloudwatch") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: CloudWatch part skipped in the new snapshot")
    assert "no Aurora cluster identifier" in err[-1]
    assert not (tmp_path / "s.json").exists()


def test_unreachable_cloudwatch_is_skipped_and_the_database_part_still_runs(as_admin, tmp_path, capsys):
    outputs = write_outputs(tmp_path / "outputs.json", as_admin, auroraClusterIdentifier="app-aurora")
    assert snap(outputs, tmp_path / "s.json") == 0
    doc = snapshot.load(tmp_path / "s.json")
    assert doc["cloudwatch"]["status"] == "skipped"
    assert "no AWS credentials" in doc["cloudwatch"]["reason"]
    assert doc["database"]["sizeBytes"] > 0


def test_admin_login_asked_for_but_missing_is_exit_2(no_aws, aurora, tmp_path, capsys):
    outputs = write_outputs(tmp_path / "outputs.json", aurora)
    assert snap(outputs, tmp_path / "s.json", "--db-user", "admin") == 2
    assert capsys.readouterr().err.strip() == (
        "error: no admin credentials: set UMAMI_ADMIN_DSN or the stack's adminSecretArn")


# -- files: corrupt, mismatched, plotted -------------------------------------------

def grow_application(aurora) -> None:
    """The application writes some rows, so the diff has a change to show."""
    with aurora.connect_as(aurora.app, autocommit=True) as conn:
        conn.execute("INSERT INTO app.customers (email) SELECT 'more' || g FROM generate_series(1, 3000) g")


@pytest.fixture
def two_snapshots(as_admin, tmp_path) -> tuple[Path, Path]:
    outputs = write_outputs(tmp_path / "outputs.json", as_admin)
    assert snap(outputs, tmp_path / "before.json") == 0
    grow_application(as_admin)
    assert snap(outputs, tmp_path / "after.json") == 0
    return tmp_path / "before.json", tmp_path / "after.json"


def corrupt(path: Path, change) -> Path:
    doc = json.loads(path.read_text())
    change(doc)
    out = path.with_name("corrupt-" + path.name)
    out.write_text(json.dumps(doc))
    return out


@pytest.mark.parametrize("damage, message", [
    (lambda d: d.update(version=3), "is umami-ops-metrics-snapshot version 3; this ops package reads versions 1, 2"),
    (lambda d: d.update(version="2"), 'is umami-ops-metrics-snapshot version "2"; this ops package reads versions 1, 2'),
    (lambda d: d["database"]["connections"].pop("groups"), ": /database/connections/groups: required but missing"),
    (lambda d: d["database"]["connections"]["groups"]["umami"].update(values=[1]),
     ": /database/connections/groups/umami/values: 1 value(s) where sampling.samples is 2 (one per sample)"),
    (lambda d: d["stack"].update(connectionBudget={"total": 44}),
     ": /stack/connectionBudget/poolSize: required but missing"),
    (lambda d: d.pop("format"), "is not a umami-ops-metrics-snapshot document (format=None)"),
    (lambda d: d["database"].update(sizeBytes="big"), ": /database/sizeBytes: \"big\" is not of type 'integer'"),
    (lambda d: d["database"]["schemas"][0].pop("totalBytes"), ": /database/schemas/0/totalBytes: required but missing"),
    (lambda d: d["database"]["connections"].update(sessions=[{"database": "appdb", "role": 5, "applicationName": "",
                                                              "state": "idle", "count": 1}]),
     ": /database/connections/sessions/0/role: 5 is not of type 'string', 'null'"),
    (lambda d: d["database"]["connections"].update(maxConnections=0),
     ": /database/connections/maxConnections: 0 is less than the minimum of 1"),
    (lambda d: d["cloudwatch"].update(status="maybe"), ': /cloudwatch/status: "maybe" is not one of "collected", "skipped"'),
    (lambda d: d.update(takenAt="yesterday"), ': /takenAt: "yesterday" is not an RFC 3339 date-time with a UTC offset'),
    (lambda d: d.update(takenAt="2030-01-01T00:00:00"),
     ': /takenAt: "2030-01-01T00:00:00" is not an RFC 3339 date-time with a UTC offset'),
    (lambda d: d["source"].update(databaseOid=1), "are snapshots of different databases"),
    (lambda d: d["source"].update(systemIdentifier="1234"), "are snapshots of different databases"),
])
def test_corrupt_or_mismatched_snapshot_is_one_line_exit_2(two_snapshots, capsys, damage, message):
    before, after = two_snapshots
    bad = corrupt(after, damage)
    capsys.readouterr()
    assert main(["diff", str(before), str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_not_json_and_swapped_files_are_one_line_exit_2(two_snapshots, tmp_path, capsys):
    before, after = two_snapshots
    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"format": "umami-ops-metrics-snapshot", "version": 2,')
    assert main(["diff", str(before), str(garbage)]) == 2
    assert f"snapshot {garbage} is not valid JSON (line 1" in capsys.readouterr().err
    assert main(["diff", str(after), str(before)]) == 2
    assert "is older than" in capsys.readouterr().err


def test_snapshots_of_two_real_databases_do_not_compare(as_admin, tmp_path, monkeypatch, capsys):
    aurora = as_admin
    with aurora.connect_as(aurora.admin, autocommit=True) as conn:
        conn.execute("CREATE DATABASE otherdb")
    assert snap(write_outputs(tmp_path / "a.json", aurora), tmp_path / "appdb.json") == 0
    monkeypatch.setenv("UMAMI_ADMIN_DSN", aurora.admin_dsn().replace("dbname=appdb", "dbname=otherdb"))
    assert snap(write_outputs(tmp_path / "b.json", aurora, dbName="otherdb"), tmp_path / "otherdb.json") == 0
    capsys.readouterr()
    assert main(["diff", str(tmp_path / "appdb.json"), str(tmp_path / "otherdb.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "are snapshots of different databases: database appdb" in err and "vs database otherdb" in err


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plot_is_a_valid_png_of_the_expected_size(two_snapshots, tmp_path, capsys):
    before, after = two_snapshots
    plot = tmp_path / "diff.png"
    assert main(["diff", str(before), str(after), "--plot", str(plot)]) == 0
    diff = compare(snapshot.load(before), snapshot.load(after), thresholds.defaults())
    expected = figure_size_px(len(panel_rows(diff)))
    assert png_size(plot) == expected
    import matplotlib.image
    pixels = matplotlib.image.imread(plot)
    assert pixels.shape[:2] == (expected[1], expected[0])
    assert pixels.std() > 0.05   # not a blank canvas
    assert f"plot written to {plot} ({expected[0]}x{expected[1]} px)" in capsys.readouterr().err


def test_text_and_markdown_reports_name_sections_and_result(two_snapshots, capsys):
    before, after = two_snapshots
    capsys.readouterr()
    assert main(["diff", str(before), str(after)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Metrics diff of database appdb")
    for heading in ("Storage", "Connections", "Database activity between the snapshots", "Notes"):
        assert f"\n{heading}\n" in text
    assert text.rstrip().splitlines()[-1].startswith("Result: within thresholds: 3 of 3 checks pass")
    assert main(["diff", str(before), str(after), "--format", "markdown"]) == 0
    markdown = capsys.readouterr().out
    assert "#### Storage" in markdown and "| schema app |" in markdown and "**PASS**" in markdown


def test_module_runs_as_a_program_and_errors_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ops.metrics", "diff", str(tmp_path / "missing.json"),
                             str(tmp_path / "other.json")], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: cannot read snapshot {tmp_path / 'missing.json'}: " \
                                    "No such file or directory"
    assert "Traceback" not in result.stderr
