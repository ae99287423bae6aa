"""`python -m ops.verify --format sql` on a real PostgreSQL 15: inject leaks, run the fix script's
sections as the roles they name, verify again: clean. Also a table whose name holds a newline,
`<script>`, a Markdown link and a pipe, through every format and through the script itself."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from ops.verify.__main__ import main
from tests.integration.test_verify_leaks import LEAKS, Leak
from tests.verify_support import (
    ADMIN, APP, SUPERUSER, UMAMI, connect_as, failing, inject, verify, passfile_only,
)

STATEMENT_START = ("BEGIN;", "COMMIT;", "REVOKE ", "GRANT ", "SET ROLE ", "RESET ROLE;", "ALTER ", "DROP USER MAPPING ")
HOSTILE_TABLE = 'x\n<script>x</script><img src=x onerror=y>[a](http://x)|`"'  # 59 bytes: within NAMEDATALEN

# Leaks no SQL of the admin or umami can repair, and why (the script lists them as comments instead).
NOT_BY_SQL = {
    "ISO-004": "only a superuser can take REPLICATION away",
    "ISO-005": "only a superuser can take BYPASSRLS away",
    "ISO-006": "the right CONNECTION LIMIT is the stack's budget: pulumi up applies it",
    "ISO-028": "CONNECT on a database the superuser owns was granted by the superuser",
    "ISO-029": "the grant lives in another database",
    "ISO-031": "the superuser owns the foreign server and granted its USAGE",
    "ISO-032": "the superuser owns the foreign server: only its owner drops the mapping",
    "ISO-065": "taking rds_superuser from the application is the application's change",
}


@pytest.fixture
def cli_env(rehearsed, monkeypatch):
    return passfile_only(rehearsed, monkeypatch)


def run(rehearsed, capsys, fmt: str) -> tuple[int, str]:
    code = main(["--outputs", str(rehearsed.outputs_file), "--format", fmt, "--fail-on", "low"])
    return code, capsys.readouterr().out


def sections(script: str) -> dict[str, str]:
    """The admin's and the umami role's sections, and the trailing comments on what SQL cannot fix.
    Each statement is one line, so a section ends at the next header line."""
    found = {"admin": [], "role": [], "live": [], "unfixable": []}
    current = None
    for line in script.splitlines():
        if line.startswith("-- run as the admin ("):
            current = "admin"
        elif line.startswith("-- run as the umami role ("):
            current = "role"
        elif line.startswith("-- seen live, repaired by the statements above (verify again): "):
            current = "live"
        elif line.startswith("-- not fixable by SQL: "):
            current = "unfixable"
        if current:
            found[current].append(line)
    return {name: "\n".join(lines) for name, lines in found.items()}


def apply_script(rehearsed, script: str) -> None:
    parts = sections(script)
    with connect_as(rehearsed, ADMIN) as conn:
        conn.execute(parts["admin"])
    with connect_as(rehearsed, UMAMI) as conn:
        conn.execute(parts["role"])


def assert_every_line_is_a_comment_or_a_statement(script: str) -> None:
    for line in script.splitlines():
        assert line == "" or line.startswith("-- ") or (line.startswith(STATEMENT_START) and line.endswith(";")), line


def test_fix_script_repairs_what_the_admin_and_umami_must_fix(cli_env, capsys):
    inject(cli_env, [
        (APP, "GRANT SELECT ON public.settings TO umami_user"),  # granted by app_user: the admin acts as it
        (ADMIN, "CREATE ROLE reporting NOLOGIN"), (SUPERUSER, "GRANT pg_monitor TO reporting"),
        (ADMIN, "GRANT reporting TO umami_user"),  # one membership behind ISO-010 and ISO-011
        (ADMIN, "GRANT CREATE ON SCHEMA public TO PUBLIC"),
        (UMAMI, "CREATE TABLE umami.probe_target (id int)"),
        (UMAMI, "GRANT SELECT ON umami.probe_target TO app_user"),  # only umami revokes its own grant
    ])
    assert {"ISO-010", "ISO-011", "ISO-020", "ISO-033", "ISO-061"} <= set(failing(verify(cli_env)))

    code, script = run(cli_env, capsys, "sql")
    assert code == 1  # as for every format: findings at or above --fail-on
    assert_every_line_is_a_comment_or_a_statement(script)
    parts = sections(script)
    admin, role = parts["admin"].splitlines(), parts["role"].splitlines()
    assert admin[:2] == ["-- run as the admin (postgres)", "BEGIN;"] and admin[-1] == "COMMIT;"
    assert role[:2] == ["-- run as the umami role (umami_user)", "BEGIN;"] and role[-1] == "COMMIT;"
    assert admin.count('REVOKE "reporting" FROM "umami_user";') == 1  # every path through it: one statement
    i = admin.index('REVOKE SELECT ON TABLE "public"."settings" FROM "umami_user";')
    assert admin[i - 3:i + 3] == ["-- ISO-020 table public.settings", 'GRANT "app_user" TO "postgres";',
                                  'SET ROLE "app_user";', admin[i], "RESET ROLE;", 'REVOKE "app_user" FROM "postgres";']
    assert 'REVOKE CREATE ON SCHEMA "public" FROM PUBLIC;' in admin
    assert role[2:4] == ["-- ISO-061 umami.probe_target", 'REVOKE SELECT ON TABLE "umami"."probe_target" FROM "app_user";']
    # The live probes have no SQL of their own: the catalog findings' fixes repair them.
    assert parts["live"].startswith("-- seen live, repaired by the statements above (verify again): PRB-")
    assert "PRB-" not in parts["unfixable"]

    apply_script(cli_env, script)
    assert failing(verify(cli_env)) == {}
    with connect_as(cli_env, SUPERUSER) as conn:  # the admin's temporary membership is gone again
        assert conn.execute("SELECT pg_has_role('postgres', 'app_user', 'MEMBER')").fetchone() == (False,)

    code, script = run(cli_env, capsys, "sql")
    assert code == 0 and script.count("-- nothing to run") == 2 and "BEGIN;" not in script


@pytest.mark.parametrize("leak", [leak for leak in LEAKS if leak.check not in NOT_BY_SQL], ids=str)
def test_every_leak_sql_can_fix_is_fixed_by_the_script(cli_env, capsys, leak: Leak):
    inject(cli_env, leak.steps)
    code, script = run(cli_env, capsys, "sql")
    assert code == 1
    apply_script(cli_env, script)
    assert failing(verify(cli_env)) == {}, script


@pytest.mark.parametrize("leak", [leak for leak in LEAKS if leak.check in NOT_BY_SQL], ids=str)
def test_what_sql_cannot_fix_is_listed_not_scripted(cli_env, capsys, leak: Leak):
    inject(cli_env, leak.steps)
    parts = sections(run(cli_env, capsys, "sql")[1])
    assert f"-- not fixable by SQL: {leak.check} " in parts["unfixable"]
    assert f"-- {leak.check} " not in parts["admin"] + parts["role"]


def test_a_grant_only_a_superuser_can_revoke_says_so(cli_env):
    inject(cli_env, [(SUPERUSER, "GRANT CONNECT ON DATABASE postgres TO umami_user")])
    (result,) = [r for r in verify(cli_env).results if r.check.id == "ISO-028"]
    (finding,) = [f for f in result.findings if f.fix or "superuser" in f.evidence]
    assert finding.fix == () and finding.evidence.endswith(
        "(only a superuser can fix it: granted by rdsadmin, a superuser)")


def test_a_table_named_to_forge_reports_stays_one_name_in_every_format(cli_env, capsys):
    quoted = '"' + HOSTILE_TABLE.replace('"', '""') + '"'
    inject(cli_env, [(APP, f"CREATE TABLE app.{quoted} (id int)"), (APP, "GRANT USAGE ON SCHEMA app TO umami_user"),
                     (APP, f"GRANT SELECT ON app.{quoted} TO umami_user")])

    code, out = run(cli_env, capsys, "text")
    assert code == 1 and not any(line.startswith(("<script>", "[a]")) for line in out.splitlines())
    named = [line for line in out.splitlines() if "<script>" in line]  # evidence, and the fix's SQL
    assert named and all("x\\n<script>" in line or 'U&"x\\000A<script>' in line for line in named)

    code, out = run(cli_env, capsys, "markdown")
    inert = re.sub(r"</?(details|summary)>", "", out)
    assert "<" not in inert and not re.search(r"(?<!\\)\]\(", out)
    row = next(line for line in out.splitlines() if line.startswith("| ISO-020 "))
    assert len(re.findall(r"(?<!\\)\|", row)) == 7  # six cells, no more

    code, out = run(cli_env, capsys, "junit")
    failure = next(c for c in ET.fromstring(out).iter("testcase") if c.get("name").startswith("ISO-020")).find("failure")
    assert "x\\n<script>x</script>" in failure.text

    code, out = run(cli_env, capsys, "json")
    findings = {c["id"]: c["findings"] for c in json.loads(out)["checks"]}
    assert findings["ISO-020"][0]["subject"] == f"table app.{HOSTILE_TABLE}"  # JSON keeps the name whole

    code, script = run(cli_env, capsys, "sql")
    assert_every_line_is_a_comment_or_a_statement(script)
    assert '-- ISO-020 table app.x\\n<script>x</script><img src=x onerror=y>[a](http://x)|`"' in script
    assert ('REVOKE SELECT ON TABLE "app".U&"x\\000A<script>x</script><img src=x onerror=y>[a](http://x)|`"""'
            ' FROM "umami_user";') in script
    apply_script(cli_env, script)
    assert failing(verify(cli_env)) == {}
