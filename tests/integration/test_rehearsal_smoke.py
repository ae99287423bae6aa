def test_rehearsed_fixture_gives_a_working_login(rehearsed):
    with rehearsed.aurora.connect_as(rehearsed.umami) as conn:
        assert conn.execute("SHOW search_path").fetchone()[0] == "umami"
    assert rehearsed.outputs["dbRole"] == "umami_user"
    assert rehearsed.outputs["rehearsal"] is True
    assert rehearsed.pgpass.stat().st_mode & 0o077 == 0
