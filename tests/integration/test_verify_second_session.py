"""The catalog audit reads the column ACLs on a second session of the admin while the first reads
the relations': the rows are the same as on one session, and a second session that cannot be
opened leaves the audit on the first."""

from __future__ import annotations

import psycopg
import pytest

from ops.core.errors import OpsError
from ops.verify.checks.catalog import Catalog
from tests.verify_support import ADMIN, APP, SUPERUSER, UMAMI, connect_as, inject

GRANTS = [
    (SUPERUSER, "GRANT SELECT (email) ON app.customers TO umami_user"),  # a column, to umami
    (SUPERUSER, "GRANT UPDATE (email) ON app.customers TO PUBLIC"),  # a column, to PUBLIC
    (SUPERUSER, "GRANT SELECT ON app.orders TO umami_user"),  # a table
    (APP, "CREATE TABLE app.notes (id int, body text)"),
    (APP, "GRANT INSERT (body) ON app.notes TO PUBLIC"),
    (UMAMI, "CREATE TABLE umami.visits (id int, path text)"),  # in the schema: found through pg_depend
    (UMAMI, "GRANT SELECT (path) ON umami.visits TO app_user"),
]


def catalog(conn: psycopg.Connection, second_session=None) -> Catalog:
    return Catalog(conn, schema="umami", umami_role="umami_user", admin_role="postgres", app_roles=(),
                   second_session=second_session)


def sorted_rows(cat: Catalog) -> list[tuple]:
    return sorted(tuple(str(v) for v in row) for row in cat.relation_acls)


@pytest.fixture
def admin_sessions(rehearsed):
    inject(rehearsed, GRANTS)
    with connect_as(rehearsed, ADMIN) as first, connect_as(rehearsed, ADMIN) as second:
        yield first, second


def test_two_sessions_read_what_one_reads(admin_sessions):
    first, second = admin_sessions
    alone, shared = catalog(first), catalog(first, lambda: second)
    rows = sorted_rows(shared)
    assert rows == sorted_rows(alone)
    assert alone.queries == shared.queries == 3  # principals, relations, columns
    columns = {(r.schema, r.name, r.detail, r.privilege, r.grantee) for r in shared.relation_acls
               if r.kind == "column" and r.schema in ("app", "umami")}
    umami, public, app = shared.principals.umami.oid, 0, shared.principals.by_name("app_user").oid
    assert columns == {("app", "customers", "email", "SELECT", umami), ("app", "customers", "email", "UPDATE", public),
                       ("app", "notes", "body", "INSERT", public), ("umami", "visits", "path", "SELECT", app)}
    # The columns' query was the second session's last statement.
    (last,) = first.execute("SELECT query FROM pg_stat_activity WHERE pid = %s",
                            (second.info.backend_pid,)).fetchone()
    assert "'column' AS kind" in last


def test_a_second_session_that_cannot_open_leaves_the_audit_on_one(admin_sessions):
    first, _ = admin_sessions

    def refused() -> psycopg.Connection:
        raise OpsError("cannot connect: too many connections for role")

    fallback = catalog(first, refused)
    assert sorted_rows(fallback) == sorted_rows(catalog(first))
    assert fallback.queries == 3


def test_a_failure_on_the_second_session_reaches_the_check(admin_sessions):
    first, second = admin_sessions
    second.close()
    with pytest.raises(psycopg.OperationalError):
        _ = catalog(first, lambda: second).relation_acls
