"""The `destroy` family (DST-0xx) and its functions: what `DROP SCHEMA umami CASCADE` and the role
delete's REASSIGN OWNED / DROP OWNED would reach outside the schema, named before anything happens.

Each case plants one object outside `umami` in a clean rehearsed database (after Umami-like
migrations, so pgcrypto and `umami.website` exist) and asserts that exactly that object is reported;
one test checks the list against what PostgreSQL itself says a cascade drops.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import psycopg
import pytest

from ops.verify.checks.base import Severity, Status
from ops.verify.checks.destroy import dependent_objects, dependents_outside, owned_outside
from ops.verify.__main__ import main
from tests.umami_like import run_umami_like_migrations
from tests.verify_support import (
    ADMIN, APP, SUPERUSER, UMAMI, connect_as, failing, inject, outputs_of, verify, passfile_only,
)


@pytest.fixture
def migrated(rehearsed):
    """The rehearsed database after Umami-like migrations: umami.website, pgcrypto in umami."""
    with connect_as(rehearsed, UMAMI) as conn:
        run_umami_like_migrations(conn)
        where = conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension "
                             "WHERE extname = 'pgcrypto'").fetchone()
    assert where == ("umami",)
    return rehearsed


@dataclass(frozen=True)
class Dependent:
    name: str
    steps: list[tuple[str, str]]
    reported: str  # exactly what DST-001 and dependents_outside() name

    def __str__(self) -> str:
        return self.name


VISIT_KIND = [(UMAMI, "CREATE TYPE umami.visit_kind AS ENUM ('pageview', 'event')")]

DEPENDENTS = [
    Dependent("view", [(SUPERUSER, "CREATE VIEW app.website_names AS SELECT name FROM umami.website")],
              "view app.website_names"),
    Dependent("foreign-key", [(SUPERUSER, "CREATE TABLE app.site_links (id int, website_id uuid "
                                          "REFERENCES umami.website (website_id))")],
              "constraint site_links_website_id_fkey on table app.site_links"),
    Dependent("column-default", [(SUPERUSER, "ALTER TABLE app.customers ADD COLUMN token uuid "
                                             "DEFAULT umami.gen_random_uuid()")],
              "default value for column token of table app.customers"),
    Dependent("index", [(SUPERUSER, "CREATE INDEX customers_email_digest ON app.customers "
                                    "(umami.digest(email, 'sha256'))")],
              "index app.customers_email_digest"),
    Dependent("function", VISIT_KIND + [(SUPERUSER, "CREATE FUNCTION app.kind_label(k umami.visit_kind) RETURNS text "
                                                    "LANGUAGE sql IMMUTABLE AS $$SELECT k::text$$")],
              "function app.kind_label(umami.visit_kind)"),
    Dependent("column-type", VISIT_KIND + [(SUPERUSER, "ALTER TABLE app.orders ADD COLUMN kind umami.visit_kind")],
              "column kind of table app.orders"),
]


@pytest.mark.parametrize("as_admin", [True, False], ids=["as-admin", "as-umami"])
@pytest.mark.parametrize("dependent", DEPENDENTS, ids=str)
def test_each_dependent_outside_is_reported_alone(migrated, dependent, as_admin):
    inject(migrated, dependent.steps)
    with connect_as(migrated, UMAMI) as conn:
        assert dependents_outside(conn, "umami") == [dependent.reported]
    report = verify(migrated, as_admin=as_admin, only=["destroy"])
    assert set(failing(report)) == {"DST-001"}
    (result,) = [r for r in report.results if r.check.id == "DST-001"]
    assert [(f.severity, f.subject) for f in result.findings] == [(Severity.HIGH, dependent.reported)]
    assert "DROP SCHEMA umami CASCADE drops it" in result.findings[0].evidence
    assert result.ran_as.startswith("postgres" if as_admin else "umami_user")


def test_the_list_is_what_a_cascade_drop_reaches_outside_the_schema(migrated):
    """Everything planted at once, plus a view over the view: PostgreSQL's own cascade (rolled back)
    drops exactly the listed objects outside `umami`, and nothing else outside it."""
    steps = VISIT_KIND + [step for d in DEPENDENTS for step in d.steps if step not in VISIT_KIND]
    steps.append((SUPERUSER, "CREATE VIEW app.website_names_upper AS SELECT upper(name) FROM app.website_names"))
    inject(migrated, steps)
    with connect_as(migrated, ADMIN) as conn:
        found = dependent_objects(conn, "umami")
    expected = sorted([d.reported for d in DEPENDENTS] + ["view app.website_names_upper"], key=str.encode)
    assert [d.object for d in found] == expected
    through = {d.object: d.depends_on for d in found}
    assert through["view app.website_names_upper"] == ("column name of view app.website_names",)
    assert through["index app.customers_email_digest"] == ("function umami.digest(text,text)",)

    notices: list[str] = []
    with connect_as(migrated, SUPERUSER) as conn:
        conn.add_notice_handler(lambda diag: notices.append(diag.message_detail or ""))
        with pytest.raises(psycopg.errors.QueryCanceled):  # stands for a rollback
            with conn.transaction():
                conn.execute("DROP SCHEMA umami CASCADE")
                raise psycopg.errors.QueryCanceled("roll back")
    cascaded = {line.removeprefix("drop cascades to ") for line in "\n".join(notices).splitlines()}
    outside = {entry for entry in cascaded if not re.match(r"\w[\w ]* umami\.", entry) and entry != "extension pgcrypto"}
    assert outside == set(expected)
    with connect_as(migrated, ADMIN) as conn:  # rolled back: still there
        assert len(dependents_outside(conn, "umami")) == len(expected)


def test_the_schemas_own_objects_and_outside_objects_using_nothing_inside_are_not_reported(migrated):
    inject(migrated, [
        (UMAMI, "CREATE VIEW umami.recent AS SELECT * FROM umami.website_event"),  # inside, on inside
        (UMAMI, "CREATE TABLE umami.notes (id uuid DEFAULT gen_random_uuid(), w uuid REFERENCES website)"),
        (SUPERUSER, "CREATE EXTENSION IF NOT EXISTS pgcrypto"),  # no-op: it stays in umami
        (SUPERUSER, "CREATE TABLE app.audit (id uuid DEFAULT gen_random_uuid())"),  # pg_catalog's (PG 13+)
    ])
    with connect_as(migrated, ADMIN) as conn:
        assert dependents_outside(conn, "umami") == []
        assert dependents_outside(conn, "no_such_schema") == []


def test_objects_outside_owned_by_the_role_are_reported_by_dst_002(migrated):
    inject(migrated, [(SUPERUSER, "CREATE SCHEMA scratch"),
                      (SUPERUSER, "GRANT USAGE, CREATE ON SCHEMA scratch TO umami_user"),
                      (UMAMI, "CREATE TABLE scratch.mine (id int)")])
    report = verify(migrated, only=["destroy"])
    found = failing(report)
    assert set(found) == {"DST-002", "DST-003"}
    results = {r.check.id: r for r in report.results}
    assert [(f.severity, f.subject) for f in results["DST-002"].findings] == [(Severity.HIGH, "table scratch.mine")]
    assert "REASSIGN OWNED BY umami_user TO postgres" in results["DST-002"].findings[0].evidence
    assert [(f.severity, f.subject) for f in results["DST-003"].findings] == [(Severity.MEDIUM, "schema scratch")]
    with connect_as(migrated, UMAMI) as conn:
        assert owned_outside(conn, "umami_user", "umami") == [
            "table scratch.mine (owned: REASSIGN OWNED hands it to the admin)",
            "privileges on schema scratch (granted: DROP OWNED revokes them)"]


def test_schemas_and_databases_owned_by_the_role_and_policies_naming_it(migrated):
    inject(migrated, [(SUPERUSER, "CREATE SCHEMA side AUTHORIZATION umami_user"),
                      (SUPERUSER, "CREATE DATABASE umami_side OWNER umami_user"),
                      (SUPERUSER, "CREATE TABLE public.flags (id int)"),
                      (SUPERUSER, "CREATE POLICY umami_reads ON public.flags TO umami_user USING (true)")])
    with connect_as(migrated, ADMIN) as conn:
        assert owned_outside(conn, "umami_user", "umami") == [
            "database umami_side (owned: REASSIGN OWNED hands it to the admin)",
            "schema side (owned: REASSIGN OWNED hands it to the admin)",
            "policy umami_reads on table public.flags (names the role: DROP OWNED removes it, or drops the policy)"]
    found = failing(verify(migrated, only=["destroy"]))
    assert set(found) == {"DST-002", "DST-003"}
    assert found["DST-003"] == ["medium policy umami_reads on table public.flags: names umami_user: DROP OWNED BY "
                                "umami_user removes the role from it, and drops the policy if it names no other role"]


def test_a_table_in_another_database_is_counted(migrated):
    inject(migrated, [(SUPERUSER, "CREATE DATABASE otherdb"),
                      (f"{SUPERUSER}@otherdb", "CREATE TABLE t (id int)"),
                      (f"{SUPERUSER}@otherdb", "ALTER TABLE t OWNER TO umami_user")])
    found = failing(verify(migrated, only=["DST-002"]))
    assert found == {"DST-002": ["high database otherdb: umami_user owns or is granted 1 object(s) there: "
                                 "REASSIGN/DROP OWNED run only in this database, so DROP ROLE fails; "
                                 "clean up in otherdb"]}


def test_privileges_outside_are_reported_by_dst_003(migrated):
    inject(migrated, [(APP, "GRANT SELECT ON public.settings TO umami_user")])
    report = verify(migrated, only=["destroy"])
    assert set(failing(report)) == {"DST-003"}
    (result,) = [r for r in report.results if r.check.id == "DST-003"]
    assert [(f.severity, f.subject) for f in result.findings] == [(Severity.MEDIUM, "table public.settings")]


@pytest.mark.parametrize("as_admin", [True, False], ids=["as-admin", "as-umami"])
def test_clean_rehearsal_passes_and_says_what_a_destroy_keeps(rehearsed, as_admin):
    report = verify(rehearsed, as_admin=as_admin, only=["destroy"])
    statuses = {r.check.id: r.status for r in report.results if r.family == "destroy"}
    assert statuses == {"DST-001": Status.PASS, "DST-002": Status.PASS, "DST-003": Status.PASS,
                        "DST-004": Status.INFO}
    assert failing(report) == {}
    with connect_as(rehearsed, UMAMI) as conn:
        run_umami_like_migrations(conn)
    report = verify(rehearsed, as_admin=as_admin, only=["destroy"])
    assert failing(report) == {}
    (keeps,) = [r for r in report.results if r.check.id == "DST-004"]
    evidence = {f.subject: f.evidence for f in keeps.findings}
    assert evidence["extension pgcrypto"].startswith("version ") and "retained (retainOnDelete)" in \
        evidence["extension pgcrypto"]
    assert evidence["schema umami"] == (
        "kept: it is not empty (1 sequence(s) of umami_user, 4 table(s) of umami_user), so DROP SCHEMA umami without "
        "CASCADE fails; the role's objects in it pass to postgres by REASSIGN OWNED; umami:dropSchemaCascade is not "
        "in the outputs (false by default)")


def test_with_drop_schema_cascade_in_the_outputs_the_schema_goes_with_pgcrypto(migrated):
    report = verify(migrated, only=["DST-004"], outputs=outputs_of(migrated, dbDropSchemaCascade=True))
    (keeps,) = [r for r in report.results if r.check.id == "DST-004"]
    evidence = {f.subject: f.evidence for f in keeps.findings}
    assert evidence["schema umami"] == ("dropped with everything in it (1 sequence(s) of umami_user, 4 table(s) of "
                                        "umami_user, pgcrypto) and every dependent DST-001 lists; "
                                        "umami:dropSchemaCascade=true")
    assert evidence["extension pgcrypto"].endswith("in schema umami: dropped with the schema by the cascade; "
                                                   "umami:dropSchemaCascade=true")


def test_pgcrypto_elsewhere_is_left_where_it_is(aurora, tmp_path):
    from tests.conftest import rehearse_into
    with aurora.superuser_conn() as conn:
        conn.execute("CREATE EXTENSION pgcrypto SCHEMA public")
    rehearsed = rehearse_into(aurora, tmp_path / "rehearsal")
    inject(rehearsed, [(SUPERUSER, "CREATE INDEX customers_email_digest ON app.customers "
                                   "(public.digest(email, 'sha256'))")])
    report = verify(rehearsed, only=["destroy"])
    assert failing(report) == {}  # the index uses public's pgcrypto: nothing in umami
    (keeps,) = [r for r in report.results if r.check.id == "DST-004"]
    assert any("in schema public: not the stack's, left where it is" in f.evidence for f in keeps.findings)


# -- command line -------------------------------------------------------------------------

@pytest.fixture
def cli_env(migrated, monkeypatch):
    return passfile_only(migrated, monkeypatch)


def run_json(argv: list[str], capsys) -> tuple[int, dict]:
    code = main(argv + ["--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def test_cli_only_destroy_and_the_default_run_leaves_it_out(cli_env, capsys):
    outputs = str(cli_env.outputs_file)
    code, report = run_json(["--outputs", outputs, "--only", "destroy"], capsys)
    ran = {c["id"]: c["status"] for c in report["checks"] if c["status"] != "skipped"}
    assert code == 0 and ran == {"DST-001": "pass", "DST-002": "pass", "DST-003": "pass", "DST-004": "info"}

    code, report = run_json(["--outputs", outputs], capsys)
    assert code == 0 and not [c for c in report["checks"] if c["id"].startswith("DST-")]

    inject(cli_env, [(SUPERUSER, "CREATE VIEW app.website_names AS SELECT name FROM umami.website")])
    code, report = run_json(["--outputs", outputs, "--only", "destroy"], capsys)
    failed = {c["id"]: c for c in report["checks"] if c["status"] == "fail"}
    assert code == 1 and set(failed) == {"DST-001"}
    assert [f["subject"] for f in failed["DST-001"]["findings"]] == ["view app.website_names"]
    code, report = run_json(["--outputs", outputs], capsys)  # the default run does not look
    assert code == 0
    code, report = run_json(["--outputs", outputs, "--only", "DST-002"], capsys)
    assert code == 0


def test_list_marks_the_family_as_opt_in(capsys):
    assert main(["--list"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("DST-")]
    assert [line.split()[:3] for line in lines] == [["DST-001", "destroy", "high"], ["DST-002", "destroy", "high"],
                                                   ["DST-003", "destroy", "medium"], ["DST-004", "destroy", "info"]]
    assert all(line.endswith("[only with --only destroy]") for line in lines)
