"""The retention job on a real PostgreSQL 15: driver/retention.mjs (node, the driver's pinned pg) run as
the ECS task definition runs it, and `python -m ops.retention`, both from the one plan driver/retention.json.

Umami 3.1's event tables are created here with their real columns and indexes (prisma/schema.prisma of
Umami 3.1.0: types, nullability, every @@index), as the umami role, so the deletes meet the same
indexes as in production and the storage measurement behind README's arithmetic is Umami's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import psycopg
import pytest
from moto import mock_aws
from psycopg import sql

from components.service_parts import retention as job_part
from components.shared.tls import CONTAINER_CA_PATH
from facts import SECRET_VERSION, TASK_DEFINITION
from ops.engine.umami_env import resolve_secret
from ops.retention.__main__ import main as retention_main
from ops.retention.plan import load_plan
from tests.conftest import ROOT
from tests.verify_support import APP, UMAMI, connect_as, error_line

DRIVER = ROOT / "driver"
DAYS = 365
OLD, NEW = "now() - interval '400 days'", "now() - interval '300 days'"  # either side of the cut-off
BATCH = 3

# Umami 3.1.0's tables the plan touches (and two it must not), from prisma/schema.prisma: columns, then
# the @@index lists. Primary keys are the @id columns.
UMAMI_TABLES: dict[str, tuple[str, list[tuple[str, ...]]]] = {
    "user": ("user_id uuid PRIMARY KEY, username varchar(255) NOT NULL UNIQUE, password varchar(60) NOT NULL, "
             "role varchar(50) NOT NULL, created_at timestamptz(6) DEFAULT now()", []),
    "website": ("website_id uuid PRIMARY KEY, name varchar(100) NOT NULL, domain varchar(500), "
                "created_at timestamptz(6) DEFAULT now()", [("created_at",)]),
    "session": (
        "session_id uuid PRIMARY KEY, website_id uuid NOT NULL, browser varchar(20), os varchar(20), "
        "device varchar(20), screen varchar(11), language varchar(35), country char(2), region varchar(20), "
        "city varchar(50), distinct_id varchar(50), created_at timestamptz(6) DEFAULT now()",
        [("created_at",), ("website_id",), ("website_id", "created_at")]
        + [("website_id", "created_at", c) for c in ("browser", "os", "device", "screen", "language", "country",
                                                     "region", "city")]),
    "website_event": (
        "event_id uuid PRIMARY KEY, website_id uuid NOT NULL, session_id uuid NOT NULL, visit_id uuid NOT NULL, "
        "created_at timestamptz(6) DEFAULT now(), url_path varchar(500) NOT NULL, url_query varchar(500), "
        "utm_source varchar(255), utm_medium varchar(255), utm_campaign varchar(255), utm_content varchar(255), "
        "utm_term varchar(255), referrer_path varchar(500), referrer_query varchar(500), "
        "referrer_domain varchar(500), page_title varchar(500), gclid varchar(255), fbclid varchar(255), "
        "msclkid varchar(255), ttclid varchar(255), li_fat_id varchar(255), twclid varchar(255), "
        "event_type integer NOT NULL DEFAULT 1, event_name varchar(50), tag varchar(50), hostname varchar(100), "
        "lcp decimal(10,1), inp decimal(10,1), cls decimal(10,4), fcp decimal(10,1), ttfb decimal(10,1)",
        [("created_at",), ("session_id",), ("visit_id",), ("website_id",), ("website_id", "created_at")]
        + [("website_id", "created_at", c) for c in ("url_path", "url_query", "referrer_domain", "page_title",
                                                     "event_name", "tag")]
        + [("website_id", "session_id", "created_at"), ("website_id", "visit_id", "created_at"),
           ("website_id", "created_at", "hostname")]),
    "event_data": (
        "event_data_id uuid PRIMARY KEY, website_id uuid NOT NULL, website_event_id uuid NOT NULL, "
        "data_key varchar(500) NOT NULL, string_value varchar(500), number_value decimal(19,4), "
        "date_value timestamptz(6), data_type integer NOT NULL, created_at timestamptz(6) DEFAULT now()",
        [("created_at",), ("website_id",), ("website_event_id",), ("website_id", "created_at"),
         ("website_id", "created_at", "data_key")]),
    "session_data": (
        "session_data_id uuid PRIMARY KEY, website_id uuid NOT NULL, session_id uuid NOT NULL, "
        "data_key varchar(500) NOT NULL, string_value varchar(500), number_value decimal(19,4), "
        "date_value timestamptz(6), data_type integer NOT NULL, distinct_id varchar(50), "
        "created_at timestamptz(6) DEFAULT now()",
        [("created_at",), ("website_id",), ("session_id",), ("session_id", "created_at"),
         ("website_id", "created_at", "data_key")]),
    "revenue": (
        "revenue_id uuid PRIMARY KEY, website_id uuid NOT NULL, session_id uuid NOT NULL, event_id uuid NOT NULL, "
        "event_name varchar(50) NOT NULL, currency varchar(10) NOT NULL, revenue decimal(19,4), "
        "created_at timestamptz(6) DEFAULT now()",
        [("website_id",), ("session_id",), ("website_id", "created_at"), ("website_id", "session_id", "created_at")]),
    "session_replay": (
        "replay_id uuid PRIMARY KEY, website_id uuid NOT NULL, session_id uuid NOT NULL, visit_id uuid NOT NULL, "
        "chunk_index integer NOT NULL, events bytea NOT NULL, event_count integer NOT NULL, "
        "started_at timestamptz(6) NOT NULL, ended_at timestamptz(6) NOT NULL, created_at timestamptz(6) DEFAULT now()",
        [("website_id",), ("session_id",), ("visit_id",), ("website_id", "session_id"), ("website_id", "visit_id"),
         ("website_id", "created_at"), ("session_id", "chunk_index")]),
}
PLAN_TABLES = [step.table for step in load_plan().steps]


@pytest.fixture(scope="module", autouse=True)
def driver_installed():
    if not shutil.which("node"):
        pytest.fail("node is not installed: the retention job needs node 20+ (install nodejs)")
    if not (DRIVER / "node_modules" / "@prisma" / "adapter-pg" / "package.json").exists():
        pytest.fail("driver/node_modules lacks @prisma/adapter-pg: run `make install` (npm ci --prefix driver)")


def create_umami_tables(conn: psycopg.Connection) -> None:
    """Umami 3.1's tables with unqualified names (the role's search_path puts them in its schema)."""
    for table, (columns, indexes) in UMAMI_TABLES.items():
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(table), sql.SQL(columns)))
        for n, index in enumerate(indexes):
            conn.execute(sql.SQL("CREATE INDEX {} ON {} ({})").format(
                sql.Identifier(f"{table}_{n}_idx"), sql.Identifier(table),
                sql.SQL(", ").join(map(sql.Identifier, index))))


# -- a small data set on both sides of the cut-off ---------------------------------------------------

# label -> (created_at of the session, its children: table -> list of created_at)
SESSIONS = {
    # every row old: the children go, then the session (orphaned)
    "orphan": (OLD, {"website_event": [OLD] * 3, "session_data": [OLD], "revenue": [OLD, OLD],
                     "session_replay": [OLD] * 4}),
    # an old session still visiting: old events go, the session stays
    "active": (OLD, {"website_event": [OLD] * 4 + [NEW], "session_data": [OLD], "revenue": [NEW],
                     "session_replay": [NEW]}),
    "recent": (NEW, {"website_event": [NEW, NEW]}),
    # old events only, but session data after the cut-off: the session stays
    "identified": (OLD, {"website_event": [OLD], "session_data": [NEW]}),
    "empty": (OLD, {}),
    # rows without a date are never deleted, nor the session they belong to
    "undated-event": (OLD, {"website_event": ["NULL"]}),
    "undated": ("NULL", {}),
}
EXPECTED = {"event_data": 5, "revenue": 2, "website_event": 8, "session_data": 2, "session_replay": 4, "session": 2}
KEPT_SESSIONS = {"active", "recent", "identified", "undated-event", "undated"}


def seed(conn: psycopg.Connection) -> None:
    """The data set, as the umami role: sessions and their children, event data on website events (old
    on old events, new on new ones), plus an old website and user the job must leave alone."""
    conn.execute(f"INSERT INTO \"user\" VALUES (gen_random_uuid(), 'admin', 'x', 'admin', {OLD})")
    (website,) = conn.execute(f"INSERT INTO website VALUES (gen_random_uuid(), 'site', 'example.com', {OLD}) "
                              "RETURNING website_id").fetchone()
    for label, (created, children) in SESSIONS.items():
        (session,) = conn.execute(f"INSERT INTO session (session_id, website_id, city, created_at) "
                                  f"VALUES (gen_random_uuid(), %s, %s, {created}) RETURNING session_id",
                                  (website, label)).fetchone()
        for when in children.get("website_event", []):
            conn.execute(f"INSERT INTO website_event (event_id, website_id, session_id, visit_id, url_path, created_at)"
                         f" VALUES (gen_random_uuid(), %s, %s, gen_random_uuid(), '/', {when})", (website, session))
        for when in children.get("session_data", []):
            conn.execute(f"INSERT INTO session_data (session_data_id, website_id, session_id, data_key, data_type, "
                         f"created_at) VALUES (gen_random_uuid(), %s, %s, 'plan', 1, {when})", (website, session))
        for when in children.get("revenue", []):
            conn.execute(f"INSERT INTO revenue VALUES (gen_random_uuid(), %s, %s, gen_random_uuid(), 'buy', 'EUR', 1, "
                         f"{when})", (website, session))
        for n, when in enumerate(children.get("session_replay", [])):
            conn.execute(f"INSERT INTO session_replay VALUES (gen_random_uuid(), %s, %s, gen_random_uuid(), %s, "
                         f"'\\x00'::bytea, 1, now(), now(), {when})", (website, session, n))
    # Five old and two new event_data rows, each on an event of its own age.
    for side, count in (("<", 5), (">=", 2)):
        conn.execute(f"INSERT INTO event_data (event_data_id, website_id, website_event_id, data_key, data_type, "
                     f"created_at) SELECT gen_random_uuid(), website_id, event_id, 'k', 1, created_at "
                     f"FROM website_event WHERE created_at {side} now() - interval '{DAYS} days' LIMIT {count}")


def counts(conn: psycopg.Connection, schema: str = "umami") -> dict[str, int]:
    return {table: conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
        sql.Identifier(schema), sql.Identifier(table))).fetchone()[0] for table in UMAMI_TABLES}


def sessions_left(conn: psycopg.Connection) -> set[str]:
    return {city for (city,) in conn.execute("SELECT city FROM umami.session")}


@pytest.fixture
def umami_db(rehearsed):
    """The rehearsed database with Umami 3.1's tables and the data set, and an application table of the same
    name as an Umami one, with old rows, that nothing may touch."""
    with connect_as(rehearsed, UMAMI) as conn:
        create_umami_tables(conn)
        seed(conn)
        before = counts(conn)
    with connect_as(rehearsed, APP) as conn:
        conn.execute(f"CREATE TABLE app.website_event (id int, created_at timestamptz); "
                     f"INSERT INTO app.website_event SELECT g, {OLD} FROM generate_series(1, 3) g")
    assert sum(before[t] for t in PLAN_TABLES) > sum(EXPECTED.values())  # rows on both sides
    return rehearsed, before


def app_rows(rehearsed) -> int:
    with connect_as(rehearsed, APP) as conn:
        return conn.execute("SELECT count(*) FROM app.website_event").fetchone()[0]


# -- the job as ECS runs it ---------------------------------------------------------------------------

def retention_container(run) -> dict:
    task = next(t for t in run.by_type(TASK_DEFINITION) if t.inputs["family"].endswith("-retention"))
    return json.loads(task.inputs["containerDefinitions"])[0]


def job_environment(run, folder: Path, **overrides: str) -> tuple[list[str], dict[str, str]]:
    """The retention task's command and environment as ECS gives them: plain variables, secrets resolved
    against what the program stores. The container's CA path becomes a file in `folder`."""
    container = retention_container(run)
    stored = {str(v.inputs["secretId"]): str(v.inputs["secretString"]) for v in run.by_type(SECRET_VERSION)}
    env = {item["name"]: item["value"] for item in container["environment"]}
    env.update({item["name"]: resolve_secret(item["valueFrom"], stored) for item in container["secrets"]})
    local_ca = str(folder / "umami-db-ca.pem")
    env = {key: value.replace(CONTAINER_CA_PATH, local_ca) for key, value in env.items()}
    command = [part.replace(CONTAINER_CA_PATH, local_ca) for part in container["entryPoint"] + container["command"]]
    return command, {"PATH": os.environ["PATH"], **env, **overrides}


def umami_image_workdir(folder: Path) -> Path:
    """Like Umami's /app: @prisma/adapter-pg installed, pg not importable by name (pnpm keeps it beside
    the adapter), so the job must take the adapter's route."""
    app = folder / "app"
    (app / "node_modules").mkdir(parents=True)
    (app / "node_modules" / "@prisma").symlink_to(DRIVER / "node_modules" / "@prisma")
    return app


def run_container(rehearsed, folder: Path, **overrides: str) -> subprocess.CompletedProcess:
    command, env = job_environment(rehearsed.result.run, folder, **overrides)
    return subprocess.run(command, env=env, cwd=umami_image_workdir(folder), capture_output=True, text=True,
                          timeout=120)


def run_script(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """driver/retention.mjs run directly (its plan from the file beside it)."""
    return subprocess.run(["node", str(DRIVER / "retention.mjs"), *args], env={"PATH": os.environ["PATH"], **env},
                          cwd=DRIVER, capture_output=True, text=True, timeout=120)


LINE = re.compile(r"^retention (?:(?P<summary>summary) )?(?P<fields>\w+=.*)$")
FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def job_lines(stdout: str) -> list[dict[str, str]]:
    """The job's logfmt lines: kind plus fields (quoted values unquoted)."""
    found = []
    for line in stdout.splitlines():
        match = LINE.match(line)
        assert match, f"not a retention line: {line!r}"
        fields = {k: json.loads(v) if v.startswith('"') else v for k, v in FIELD.findall(match["fields"])}
        found.append({"kind": "summary" if match["summary"] else "table", **fields})
    return found


def per_table(lines: list[dict[str, str]], key: str) -> dict[str, int]:
    return {line["table"].split(".", 1)[1]: int(line[key]) for line in lines if line["kind"] == "table"}


def ops_retention(rehearsed, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ops.retention", "--outputs", str(rehearsed.outputs_file), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if not k.startswith(("PG", "UMAMI_"))})


# -- tests ---------------------------------------------------------------------------------------------

def test_the_container_deletes_exactly_the_old_rows_in_batches_and_nothing_else(umami_db, tmp_path):
    rehearsed, before = umami_db

    dry = run_container(rehearsed, tmp_path / "dry", UMAMI_RETENTION_DRY_RUN="1")
    assert dry.returncode == 0, dry.stderr
    forecast = per_table(job_lines(dry.stdout), "would_delete")
    with connect_as(rehearsed, UMAMI) as conn:
        assert counts(conn) == before  # a dry run deletes nothing

    ops = ops_retention(rehearsed, "--dry-run", "--format", "json")
    assert ops.returncode == 0, ops.stderr
    report = json.loads(ops.stdout)
    assert {t["table"]: t["rows"] for t in report["tables"]} == forecast == EXPECTED
    assert report["days"] == DAYS and report["mode"] == "dry-run"

    done = run_container(rehearsed, tmp_path / "real", UMAMI_RETENTION_BATCH=str(BATCH))

    assert done.returncode == 0, done.stderr
    lines = job_lines(done.stdout)
    assert [line["table"] for line in lines[:-1]] == [f"umami.{t}" for t in PLAN_TABLES]  # children first
    assert per_table(lines, "deleted") == EXPECTED
    # Several short transactions: ceil(rows / batch) batches per table.
    assert per_table(lines, "batches") == {t: -(-n // BATCH) for t, n in EXPECTED.items()}
    summary = lines[-1]
    assert summary["kind"] == "summary" and int(summary["deleted"]) == sum(EXPECTED.values())
    assert summary["days"] == str(DAYS) and summary["cutoff"] == lines[0]["cutoff"]
    with connect_as(rehearsed, UMAMI) as conn:
        after = counts(conn)
        assert {t: before[t] - after[t] for t in PLAN_TABLES} == EXPECTED
        assert after["website"] == before["website"] and after["user"] == before["user"]
        assert sessions_left(conn) == KEPT_SESSIONS
        # No event row older than the cut-off is left (old sessions stay while they have newer rows).
        for table in set(PLAN_TABLES) - {"session"}:
            old = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE created_at < now() - interval '365 days'")
                               .format(sql.Identifier(table))).fetchone()[0]
            assert old == 0, table
    assert app_rows(rehearsed) == 3
    assert rehearsed.umami.password not in dry.stdout + dry.stderr + done.stdout + done.stderr


def test_the_job_runs_as_the_umami_role_and_stops_in_one_line_when_tables_are_missing(rehearsed, tmp_path):
    _, env = job_environment(rehearsed.result.run, tmp_path)
    url = env["DATABASE_URL"]
    assert url.startswith(f"postgresql://{rehearsed.umami.user}:")
    assert "schema=umami" in url
    # The role owns nothing yet: the plan's tables are missing, and the job says so in one line.
    failed = run_container(rehearsed, tmp_path)
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert failed.stderr.count("\n") == 1 and "umami.event_data" in failed.stderr and "missing" in failed.stderr
    assert rehearsed.umami.password not in failed.stderr


def test_ops_apply_deletes_what_its_dry_run_counted_and_zero_days_deletes_nothing(umami_db, tmp_path):
    rehearsed, before = umami_db

    off = run_container(rehearsed, tmp_path, UMAMI_RETENTION_DAYS="0")
    assert off.returncode == 0, off.stderr
    assert job_lines(off.stdout) == [{"kind": "summary", "days": "0", "off": "true", "deleted": "0"}]
    zero = ops_retention(rehearsed, "--apply", "--days", "0", "--format", "json")
    assert zero.returncode == 0, zero.stderr
    assert json.loads(zero.stdout)["off"] is True
    with connect_as(rehearsed, UMAMI) as conn:
        assert counts(conn) == before

    dry = json.loads(ops_retention(rehearsed, "--dry-run", "--format", "json").stdout)
    applied = ops_retention(rehearsed, "--apply", "--batch", str(BATCH), "--format", "json")

    assert applied.returncode == 0, applied.stderr
    report = json.loads(applied.stdout)
    assert {t["table"]: t["deleted"] for t in report["tables"]} == {t["table"]: t["rows"] for t in dry["tables"]}
    assert {t["table"]: t["batches"] for t in report["tables"]} == {t: -(-n // BATCH) for t, n in EXPECTED.items()}
    with connect_as(rehearsed, UMAMI) as conn:
        assert sessions_left(conn) == KEPT_SESSIONS
    assert app_rows(rehearsed) == 3
    # A second run finds nothing more.
    again = json.loads(ops_retention(rehearsed, "--dry-run", "--format", "json").stdout)
    assert again["rows"] == 0


def test_the_dry_run_text_report_shows_counts_ages_and_storage(umami_db):
    rehearsed, _ = umami_db

    shown = ops_retention(rehearsed, "--dry-run")

    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[1].startswith("cut-off ") and f"({DAYS} days)" in lines[1]
    rows = {line.split()[0]: line.split() for line in lines[3:-1]}
    assert {t: int(rows[t][1]) for t in PLAN_TABLES} == EXPECTED
    assert int(rows["total"][1]) == sum(EXPECTED.values())
    assert "nothing was deleted" in lines[-1]
    # --days overrides the outputs: keeping 1000 days, nothing is old enough.
    longer = json.loads(ops_retention(rehearsed, "--dry-run", "--days", "1000", "--format", "json").stdout)
    assert longer["days"] == 1000 and longer["rows"] == 0


@pytest.mark.parametrize("variables, message", [
    ({"UMAMI_RETENTION_DAYS": "a year"}, 'UMAMI_RETENTION_DAYS="a year" is not a whole number of at least 0'),
    ({"UMAMI_RETENTION_DAYS": "30", "UMAMI_RETENTION_BATCH": "0"},
     'UMAMI_RETENTION_BATCH="0" is not a whole number of at least 1'),
    ({}, "UMAMI_RETENTION_DAYS is not set"),
    ({"UMAMI_RETENTION_DAYS": "30"}, "DATABASE_URL is not set"),
    ({"UMAMI_RETENTION_DAYS": "30", "DATABASE_URL": "postgresql://u:secretpw@127.0.0.1:1/db"},
     "DATABASE_URL has no schema= parameter"),
    ({"UMAMI_RETENTION_DAYS": "30", "UMAMI_RETENTION_DRY_RUN": "yes"}, 'UMAMI_RETENTION_DRY_RUN="yes" is not 1 or 0'),
])
def test_bad_settings_stop_the_job_with_one_line_and_exit_2(variables, message):
    failed = run_script(variables)

    assert failed.returncode == 2
    assert failed.stderr == f"retention error={json.dumps(message)}\n"
    assert "secretpw" not in failed.stderr


def test_deployed_outputs_take_the_umami_password_from_secrets_manager(umami_db, tmp_path, monkeypatch, capsys):
    rehearsed, before = umami_db
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(key, value)
    for key in ("UMAMI_DB_PASSWORD", "PGPASSFILE"):
        monkeypatch.delenv(key, raising=False)
    with mock_aws():
        arn = boto3.client("secretsmanager", "eu-west-1").create_secret(
            Name="observability/umami-db-credentials",
            SecretString=json.dumps({"username": rehearsed.umami.user, "password": rehearsed.umami.password}))["ARN"]
        outputs = {**rehearsed.outputs, "rehearsal": False, "rehearsalPassfile": None, "dbSecretArn": arn}
        path = tmp_path / "outputs.json"
        path.write_text(json.dumps(outputs))

        assert retention_main(["--outputs", str(path), "--dry-run", "--format", "json", "--quiet"]) == 0

    out = capsys.readouterr().out
    assert {t["table"]: t["rows"] for t in json.loads(out)["tables"]} == EXPECTED
    assert rehearsed.umami.password not in out
    with connect_as(rehearsed, UMAMI) as conn:
        assert counts(conn) == before


def test_ops_retention_refuses_to_delete_without_dry_run_or_apply(tmp_path):
    refused = subprocess.run([sys.executable, "-m", "ops.retention", "--outputs", str(tmp_path / "none.json")],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)

    assert refused.returncode == 2
    assert error_line(refused.stderr).startswith("error: deleting runs as the scheduled job; use --dry-run here")


# -- README's storage arithmetic -------------------------------------------------------------------

def test_readme_bytes_per_row_are_measured_here(rehearsed):
    """README's bytes per row (heap, TOAST and every index of Umami 3.1's tables, with random UUID keys as
    Umami writes them) are what this measures, within 15 %."""
    readme = (ROOT / "README.md").read_text()
    rows = {m["table"]: (int(m["daily"].replace(",", "")), int(m["bytes"]), int(m["year"])) for m in re.finditer(
        r"^\| `(?P<table>\w+)` \| (?P<daily>[\d,]+) \| (?P<bytes>\d+) \| (?P<year>\d+) MB \|$", readme, re.MULTILINE)}
    assert set(rows) == set(MEASURED_ROWS), "README's storage table"
    for daily, size, year in rows.values():  # the arithmetic: rows/day x bytes/row x 365 days
        assert round(daily * size * 365 / 1e6) == year
    total = re.search(r"^\| \*\*total\*\* \| \| \| \*\*(\d+) MB\*\* \|$", readme, re.MULTILINE)
    assert total and int(total[1]) == round(sum(d * b * 365 for d, b, _ in rows.values()) / 1e6)
    stated = {table: size for table, (_, size, _) in rows.items()}
    with connect_as(rehearsed, UMAMI) as conn:
        create_umami_tables(conn)
        measured = measure_bytes_per_row(conn)
    for table in MEASURED_ROWS:
        assert abs(measured[table] - stated[table]) <= 0.15 * stated[table], (table, measured[table], stated[table])


MEASURED_ROWS = {"website_event": 50_000, "session": 5_000, "event_data": 10_000, "session_data": 2_500}
WEBSITE = "9f1c7a5e-3f7d-4c55-8a5b-0f6d3f1b2c11"


def measure_bytes_per_row(conn: psycopg.Connection) -> dict[str, int]:
    """Insert typical rows (visits of ten page views, values as long as Umami stores them), one statement
    per 200 visits, then VACUUM ANALYZE and divide pg_total_relation_size by the row count."""
    conn.execute("""
        INSERT INTO session (session_id, website_id, browser, os, device, screen, language, country, region, city,
                             created_at)
        SELECT gen_random_uuid(), %s, 'chrome', 'Mac OS', 'desktop', '1920x1080', 'en-US', 'DE', 'DE-BE', 'Berlin',
               now() - make_interval(secs => g * 37)
        FROM generate_series(1, %s) g""", (WEBSITE, MEASURED_ROWS["session"]))
    pages = MEASURED_ROWS["website_event"] // MEASURED_ROWS["session"]
    for first in range(0, MEASURED_ROWS["session"], 200):
        conn.execute("""
            INSERT INTO website_event (event_id, website_id, session_id, visit_id, created_at, url_path, url_query,
                                       referrer_domain, referrer_path, page_title, hostname, event_type)
            SELECT gen_random_uuid(), s.website_id, s.session_id, md5(s.session_id::text)::uuid,
                   s.created_at + make_interval(secs => p * 20),
                   '/app/projects/' || (s.n * 7 + p) %% 500 || '/overview', CASE WHEN p %% 4 = 0 THEN 'tab=activity' END,
                   CASE WHEN p = 1 THEN 'www.google.com' END, CASE WHEN p = 1 THEN '/' END,
                   'Project ' || (s.n * 7 + p) %% 500 || ' - Overview | Example App', 'app.example.com', 1
            FROM (SELECT *, row_number() OVER (ORDER BY created_at) AS n FROM session) s, generate_series(1, %s) p
            WHERE s.n > %s AND s.n <= %s""", (pages, first, first + 200))
    conn.execute("""
        INSERT INTO event_data (event_data_id, website_id, website_event_id, data_key, string_value, data_type,
                                created_at)
        SELECT gen_random_uuid(), e.website_id, e.event_id, k, 'value-' || left(md5(e.event_id::text), 8), 1,
               e.created_at
        FROM (SELECT * FROM website_event LIMIT %s) e, unnest(ARRAY['plan', 'feature']) k""",
                 (MEASURED_ROWS["event_data"] // 2,))
    conn.execute("""
        INSERT INTO session_data (session_data_id, website_id, session_id, data_key, string_value, data_type,
                                  created_at)
        SELECT gen_random_uuid(), website_id, session_id, 'plan', 'team', 1, created_at FROM session LIMIT %s""",
                 (MEASURED_ROWS["session_data"],))
    measured = {}
    for table, rows in MEASURED_ROWS.items():
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))
        size = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (table,)).fetchone()[0]
        assert conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0] == rows
        measured[table] = round(size / rows)
    return measured


def test_the_task_definition_ships_the_files_the_tests_run():
    script, plan = job_part.shipped_files()
    assert script == (DRIVER / "retention.mjs").read_text()
    assert json.loads(plan) == json.loads((DRIVER / "retention.json").read_text())


