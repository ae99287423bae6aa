import psycopg
import pytest


def test_admin_is_aurora_like(aurora):
    with aurora.connect_as(aurora.admin) as conn:
        row = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, pg_has_role(current_user, 'rds_superuser', 'MEMBER') "
            "FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
    assert row == (False, True, True, True)


def test_application_data_is_present_and_private(aurora):
    with aurora.connect_as(aurora.app) as conn:
        assert conn.execute("SELECT count(*) FROM app.customers").fetchone()[0] == 50
    with pytest.raises(psycopg.OperationalError):
        aurora.cluster.connect(aurora.app.user, "wrong-password", aurora.dbname)
