"""`python -m ops.migrate status|resolve` against a database migrated by Prisma's real migration engine
(driver/migrate.mjs: @prisma/schema-engine-wasm over Umami's driver, as umami_user): the engine itself
records a failed migration with its logs and refuses with P3009; status shows it; resolve clears it
the way `prisma migrate resolve` does, and the engine then re-applies or skips it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from ops.migrate.__main__ import main
from ops.migrate.history import PRISMA_LOCK_ID
from tests.integration.test_umami_driver import (  # noqa: F401  driver_installed: the same install check, autouse
    container_env, driver_installed, run_node, write_prisma_migrations,
)
from tests.umami_like import add_prisma_migration
from tests.verify_support import ADMIN, UMAMI, connect_as, error_line, inject

BROKEN = "20240103000000_add_session"
# Umami-like: a session table referencing websites; the table is misspelt, so the whole script fails.
BROKEN_SQL = ('CREATE TABLE "session" (session_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),\n'
              '    website_id uuid NOT NULL REFERENCES websites(website_id));\n')
FIXED_SQL = BROKEN_SQL.replace("REFERENCES websites(", "REFERENCES website(")
LATER = "20240104000000_session_index"
LATER_SQL = 'CREATE INDEX session_website_id_idx ON "session"(website_id);\n'
ROWS_SQL = ('SELECT id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count '
            'FROM umami."_prisma_migrations" ORDER BY started_at, migration_name')


@dataclass
class Migrated:
    """A rehearsed database Prisma's engine migrated; the migrations folder and the container's environment."""

    rehearsed: object
    folder: Path
    env: dict[str, str]
    applied: list[str]
    outputs: str

    def deploy(self) -> tuple[int, dict, str]:
        return run_node("migrate.mjs", self.env, str(self.folder))

    def rows(self) -> list[dict]:
        """The table as the superuser sees it (the test's view, not the command's)."""
        with self.rehearsed.aurora.superuser_conn() as conn:
            cursor = conn.execute(ROWS_SQL)
            names = [c.name for c in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def fail(self, name: str = BROKEN, script: str = BROKEN_SQL) -> dict:
        """Give the engine a migration whose SQL fails; returns the row Prisma recorded for it."""
        add_prisma_migration(self.folder, name, script)
        code, out, _ = self.deploy()
        assert code == 1 and out["ok"] is False
        (row,) = [r for r in self.rows() if r["migration_name"] == name]
        return row


@pytest.fixture
def migrated(rehearsed, tmp_path, monkeypatch) -> Migrated:
    """Umami-like migrations applied by the real engine; ops logs in as the rehearsal leaves it (its passfile)."""
    for key in ("UMAMI_DB_PASSWORD", "UMAMI_ADMIN_DSN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PGPASSFILE", str(rehearsed.pgpass))
    folder = tmp_path / "migrations"
    names = write_prisma_migrations(folder)
    env = container_env(rehearsed, tmp_path)
    code, out, err = run_node("migrate.mjs", env, str(folder))
    assert (code, out) == (0, {"ok": True, "applied": names}), err
    return Migrated(rehearsed, folder, env, names, str(rehearsed.outputs_file))


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def status(migrated: Migrated, capsys, *extra: str) -> tuple[int, str, str]:
    return run(["status", "--outputs", migrated.outputs, *extra], capsys)


def resolve(migrated: Migrated, capsys, how: str, name: str, *extra: str) -> tuple[int, str, str]:
    return run(["resolve", how, name, "--outputs", migrated.outputs, *extra], capsys)


# -- status -----------------------------------------------------------------------------

def test_a_clean_history_lists_every_migration_and_exits_0(migrated, capsys):
    code, out, _ = status(migrated, capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("ops.migrate status: umami._prisma_migrations in appdb at ")
    assert lines[0].endswith("as umami_user (PGPASSFILE (rehearsal))")
    listed = [line.split() for line in lines if line.strip().startswith("2024")]
    assert [(cells[0], cells[1], cells[-1]) for cells in listed] == [(name, "applied", "1") for name in migrated.applied]
    assert lines[-1] == "summary: 2 migration(s): 2 applied, 0 failed, 0 rolled back"
    assert "P3009" not in out

    code, out, _ = status(migrated, capsys, "--format", "json")
    report = json.loads(out)
    assert code == 0 and report["format"] == "umami-ops-migrate-status" and report["exitCode"] == 0
    assert [(m["name"], m["state"], m["appliedSteps"]) for m in report["migrations"]] == [
        (name, "applied", 1) for name in migrated.applied]
    assert report["failed"] == [] and report["blocked"] is None


def test_a_failed_migration_shows_with_prismas_logs_and_p3009_and_exits_1(migrated, capsys):
    row = migrated.fail()
    # Prisma itself recorded the failure and now refuses every deploy with P3009.
    assert row["finished_at"] is None and row["rolled_back_at"] is None and row["applied_steps_count"] == 0
    assert "websites" in row["logs"] and "\n" in row["logs"].strip()
    code, out, err = migrated.deploy()
    assert code == 1 and out["error"]["code"] == "P3009" and BROKEN in err
    # Why the command runs as the role: the admin cannot read the table umami_user owns.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        inject(migrated.rehearsed, [(ADMIN, 'SELECT * FROM umami."_prisma_migrations"')])

    code, out, _ = status(migrated, capsys)
    assert code == 1
    lines = out.splitlines()
    (failed_row,) = [line for line in lines if line.strip().startswith(BROKEN)]
    assert failed_row.split()[1:3] == ["FAILED", row["started_at"].strftime("%Y-%m-%dT%H:%M:%SZ")]
    start = lines.index(next(line for line in lines if line.startswith(f"failed: {BROKEN} started ")))
    assert lines[start].endswith("0 step(s) applied; Prisma's logs:")
    logged = row["logs"].strip("\n").splitlines()
    assert lines[start + 1:start + 1 + len(logged)] == [f"    {line}".rstrip() for line in logged]
    assert ("P3009: migrate found failed migrations in the target database, new migrations will not be "
            "applied.") in lines
    commands = [line.strip() for line in lines if line.startswith("       python -m ops.migrate resolve")]
    assert commands == [f"python -m ops.migrate resolve --rolled-back {BROKEN} --outputs {migrated.outputs}",
                        f"python -m ops.migrate resolve --applied {BROKEN} --outputs {migrated.outputs}"]
    mark = f'UPDATE "umami"."_prisma_migrations" SET rolled_back_at = now() WHERE id IN (\'{row["id"]}\');'
    by_hand = [line.strip() for line in lines if line.startswith("       (by hand, as umami_user")]
    assert by_hand[0] == f"(by hand, as umami_user, in one transaction: {mark})"
    assert by_hand[1].startswith(f"(by hand, as umami_user, in one transaction: {mark} INSERT INTO ")
    assert lines[-1] == "summary: 3 migration(s): 2 applied, 1 failed, 0 rolled back"

    code, out, _ = status(migrated, capsys, "--format", "json")
    report = json.loads(out)
    assert code == 1 and report["exitCode"] == 1 and report["failed"] == [BROKEN]
    assert report["migrations"][-1]["logs"] == row["logs"] and report["migrations"][-1]["state"] == "failed"
    assert report["blocked"]["code"] == "P3009"
    assert [w["resolveAs"] for w in report["blocked"]["waysOut"]] == ["rolled-back", "applied"]
    assert [[(f["migration"], f["sqlAs"], len(f["sql"])) for f in w["fixes"]] for w in report["blocked"]["waysOut"]] == [
        [(BROKEN, "role", 1)], [(BROKEN, "role", 2)]]


def test_a_log_cannot_forge_report_lines(migrated, capsys):
    # The engine records the database's message as it is: here quoting an unterminated string that
    # holds a line break, a carriage return and an ANSI escape (Prisma's native engine writes escapes too).
    migrated.fail("20240103000000_forge", "SELECT 'x\nsummary: 0 failed\r\x1b[2K\n")

    code, out, _ = status(migrated, capsys)
    assert code == 1
    assert "\x1b" not in out and "\r" not in out
    assert [line for line in out.splitlines() if line.startswith("summary:")] == [
        "summary: 3 migration(s): 2 applied, 1 failed, 0 rolled back"]
    assert '    summary: 0 failed\\r\\x1b[2K"' in out.splitlines()


# -- resolve --rolled-back --------------------------------------------------------------

def test_rolled_back_clears_the_failure_and_the_engine_applies_the_fixed_migration(migrated, capsys):
    failed = migrated.fail()
    before = migrated.rows()

    code, out, _ = resolve(migrated, capsys, "--rolled-back", BROKEN)

    assert code == 0
    assert out.splitlines()[0].startswith(f"ops.migrate resolve: {BROKEN} marked rolled back in umami._prisma_migrations")
    after = migrated.rows()
    # Only rolled_back_at of the failed row changed (prisma-engines mark_migration_rolled_back_by_id).
    assert [r for r in after if r["id"] != failed["id"]] == [r for r in before if r["id"] != failed["id"]]
    (resolved,) = [r for r in after if r["id"] == failed["id"]]
    assert resolved["rolled_back_at"] is not None
    assert {**resolved, "rolled_back_at": None} == failed
    code, out, _ = status(migrated, capsys)
    assert code == 0 and "rolled back (applied again at the next deploy step)" in out

    add_prisma_migration(migrated.folder, BROKEN, FIXED_SQL)
    code, result, err = migrated.deploy()

    assert (code, result) == (0, {"ok": True, "applied": [BROKEN]}), err
    attempts = [(r["finished_at"] is not None, r["rolled_back_at"] is not None)
                for r in migrated.rows() if r["migration_name"] == BROKEN]
    assert attempts == [(False, True), (True, False)]  # the old attempt stays, rolled back; a new one applied
    code, out, _ = status(migrated, capsys)
    assert code == 0 and out.splitlines()[-1] == "summary: 4 migration(s): 3 applied, 0 failed, 1 rolled back"
    assert "applied again at the next deploy step" not in out


# -- resolve --applied ------------------------------------------------------------------

def test_applied_inserts_a_finished_row_and_the_engine_skips_the_migration(migrated, capsys):
    failed = migrated.fail()
    assert failed["checksum"] == hashlib.sha256(BROKEN_SQL.encode()).hexdigest()  # Prisma's checksum scheme
    inject(migrated.rehearsed, [(UMAMI, FIXED_SQL)])  # the DBA completes the migration by hand, as the role

    code, out, _ = resolve(migrated, capsys, "--applied", BROKEN, "--format", "json")

    assert code == 0
    report = json.loads(out)
    assert report["format"] == "umami-ops-migrate-resolve" and report["resolvedAs"] == "applied"
    assert report["rolledBackIds"] == [failed["id"]]
    rows = {r["id"]: r for r in migrated.rows() if r["migration_name"] == BROKEN}
    assert set(rows) == {failed["id"], report["insertedId"]}
    old, new = rows[failed["id"]], rows[report["insertedId"]]
    assert old["rolled_back_at"] is not None and old["finished_at"] is None  # never turned into a finished row
    # The row prisma-engines' mark_migration_applied_impl inserts: same checksum, empty logs, started = finished.
    assert new["checksum"] == failed["checksum"] == report["checksum"]
    assert (new["logs"], new["rolled_back_at"], new["applied_steps_count"]) == ("", None, 0)
    assert new["started_at"] == new["finished_at"] == old["rolled_back_at"]
    assert len(new["id"]) == 36

    add_prisma_migration(migrated.folder, LATER, LATER_SQL)
    code, result, err = migrated.deploy()

    assert (code, result) == (0, {"ok": True, "applied": [LATER]}), err  # the resolved migration is skipped
    code, out, _ = status(migrated, capsys)
    assert code == 0 and out.splitlines()[-1] == "summary: 5 migration(s): 4 applied, 0 failed, 1 rolled back"


def test_the_sql_status_offers_does_by_hand_what_resolve_applied_does(migrated, capsys):
    failed = migrated.fail()
    inject(migrated.rehearsed, [(UMAMI, FIXED_SQL)])
    code, out, _ = status(migrated, capsys, "--format", "json")
    (applied,) = [w for w in json.loads(out)["blocked"]["waysOut"] if w["resolveAs"] == "applied"]
    update, insert = applied["fixes"][0]["sql"]
    assert insert == ('INSERT INTO "umami"."_prisma_migrations" (id, checksum, logs, started_at, finished_at, '
                      f"migration_name) VALUES (gen_random_uuid()::text, '{failed['checksum']}', '', now(), now(), "
                      f"'{BROKEN}');")

    with connect_as(migrated.rehearsed, UMAMI) as conn, conn.transaction():
        conn.execute(update)
        conn.execute(insert)

    add_prisma_migration(migrated.folder, LATER, LATER_SQL)
    assert migrated.deploy()[:2] == (0, {"ok": True, "applied": [LATER]})
    assert status(migrated, capsys)[0] == 0


# -- refusals ---------------------------------------------------------------------------

def test_resolve_refuses_what_is_not_failed_and_changes_nothing(migrated, capsys):
    migrated.fail()
    init = migrated.applied[0]
    cases = [
        ("--rolled-back", "20991231000000_unknown", "20991231000000_unknown: no such migration in umami._prisma_migrations"),
        ("--applied", "20991231000000_unknown", "20991231000000_unknown: no such migration in umami._prisma_migrations"),
        ("--rolled-back", init, f"{init} is not failed (applied); only a failed migration can be resolved"),
        ("--applied", init, f"{init} is already recorded as applied (applied)"),
    ]
    before = migrated.rows()
    for how, name, reason in cases:
        code, out, err = resolve(migrated, capsys, how, name)
        assert (code, out) == (2, "")
        assert error_line(err) == f"error: {reason}; nothing changed"
    assert migrated.rows() == before

    assert resolve(migrated, capsys, "--rolled-back", BROKEN)[0] == 0
    resolved = migrated.rows()
    for how in ("--rolled-back", "--applied"):
        code, out, err = resolve(migrated, capsys, how, BROKEN)
        assert code == 2 and error_line(err) == (f"error: {BROKEN} is not failed (rolled back); only a failed "
                                                 "migration can be resolved; nothing changed")
    assert migrated.rows() == resolved


def test_resolve_refuses_while_a_migrate_deploy_holds_prismas_lock(migrated, capsys):
    migrated.fail()
    before = migrated.rows()
    with migrated.rehearsed.aurora.superuser_conn() as deployer:
        deployer.execute("SELECT pg_advisory_lock(%s)", (PRISMA_LOCK_ID,))
        code, _, err = resolve(migrated, capsys, "--rolled-back", BROKEN)
        assert code == 2 and error_line(err).startswith(f"error: Prisma's migration lock {PRISMA_LOCK_ID} is held")
        code, out, _ = status(migrated, capsys)
        assert code == 1 and "note: Prisma's migration lock is held by 1 session(s) now" in out
    assert migrated.rows() == before


def test_a_database_umami_never_migrated_has_nothing_to_resolve(rehearsed, monkeypatch, capsys):
    monkeypatch.delenv("UMAMI_DB_PASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(rehearsed.pgpass))
    outputs = str(rehearsed.outputs_file)

    code, out, _ = run(["status", "--outputs", outputs], capsys)
    assert code == 0 and "no umami._prisma_migrations: Umami has not migrated this database yet" in out

    code, out, err = run(["resolve", "--rolled-back", BROKEN, "--outputs", outputs], capsys)
    assert code == 2 and error_line(err) == ("error: umami._prisma_migrations does not exist: Umami has not "
                                             "migrated this database yet; nothing changed")


def test_a_table_that_is_not_prismas_is_refused(rehearsed, monkeypatch, capsys):
    monkeypatch.delenv("UMAMI_DB_PASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(rehearsed.pgpass))
    inject(rehearsed, [(UMAMI, 'CREATE TABLE "_prisma_migrations" (id text PRIMARY KEY, migration_name text, '
                               'finished_at date)')])
    outputs = str(rehearsed.outputs_file)
    reason = ("error: umami._prisma_migrations is not Prisma's migration table: id (text, expected character "
              "varying), checksum (missing), finished_at (date, expected timestamp with time zone), "
              "migration_name (text, expected character varying), logs (missing), rolled_back_at (missing), "
              "started_at (missing), applied_steps_count (missing)")

    code, out, err = run(["status", "--outputs", outputs], capsys)
    assert (code, out) == (2, "") and error_line(err) == reason
    code, out, err = run(["resolve", "--applied", BROKEN, "--outputs", outputs], capsys)
    assert (code, out) == (2, "") and error_line(err) == f"{reason}; nothing changed"
    with connect_as(rehearsed, UMAMI) as conn:
        assert conn.execute('SELECT count(*) FROM umami."_prisma_migrations"').fetchone() == (0,)
