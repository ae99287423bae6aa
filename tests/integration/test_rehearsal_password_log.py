"""The umami role's password never reaches PostgreSQL: with every statement logged, the server log
holds the SCRAM verifier the provider sends, never the password, and the password logs in."""

from tests.conftest import rehearse_into

RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"


def test_the_password_is_absent_from_a_server_log_of_every_statement(aurora, tmp_path):
    with aurora.superuser_conn() as conn:
        conn.execute(f"ALTER DATABASE {aurora.dbname} SET log_statement = 'all'")  # dropped with the database
    log = aurora.cluster.base_dir / "server.log"
    start = log.stat().st_size
    rehearsed = rehearse_into(aurora, tmp_path)

    password = next(r.state["result"] for r in rehearsed.result.run.by_type(RANDOM_PASSWORD)
                    if r.name.endswith("-db-password"))
    logged = log.read_bytes()[start:].decode(errors="replace")
    assert 'CREATE ROLE "umami_user" WITH ENCRYPTED PASSWORD \'SCRAM-SHA-256$4096:' in logged  # it was logged
    assert password not in logged
    with aurora.cluster.connect("umami_user", password, aurora.dbname) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "umami_user"
