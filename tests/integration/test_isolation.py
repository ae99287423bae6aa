"""Isolation both ways, with real logins on a real PostgreSQL 15 after the rehearsal."""

import psycopg
import pytest
from psycopg import sql

from tests.umami_like import TABLES, run_umami_like_migrations
from tests.verify_support import failing, verify

DENIED = "42501"
APP_TABLES = ("app.customers", "app.orders", "app.order_totals", "public.settings")


def denied(conn, statement, params=None) -> bool:
    """True when the statement fails with insufficient_privilege; always rolled back."""
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(statement, params)
    except psycopg.Error as exc:
        assert exc.sqlstate == DENIED, f"{statement}: expected 42501, got {exc.sqlstate} {exc}"
        return True
    return False


def test_umami_like_migrations_succeed_as_the_role(rehearsed):
    with rehearsed.aurora.connect_as(rehearsed.umami) as conn:
        run_umami_like_migrations(conn)
        placed = conn.execute(
            "SELECT c.relname, n.nspname, pg_get_userbyid(c.relowner) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = ANY(%s)", (list(TABLES),)).fetchall()
        assert {(name, nsp, owner) for name, nsp, owner in placed} == {(t, "umami", "umami_user") for t in TABLES}
        assert conn.execute("SELECT count(*) FROM website_event").fetchone()[0] == 20
        assert conn.execute("SELECT length(website_id::text) FROM website").fetchone()[0] == 36


@pytest.mark.parametrize("table", APP_TABLES)
def test_role_cannot_touch_application_tables(rehearsed, table):
    nsp, rel = table.split(".")
    name = sql.Identifier(nsp, rel)
    with rehearsed.aurora.connect_as(rehearsed.umami) as conn:
        assert denied(conn, sql.SQL("SELECT * FROM {}").format(name))
        if rel == "order_totals":
            return
        column = "email" if rel == "customers" else ("key" if rel == "settings" else "total")
        assert denied(conn, sql.SQL("INSERT INTO {} DEFAULT VALUES").format(name))
        assert denied(conn, sql.SQL("UPDATE {} SET {} = NULL").format(name, sql.Identifier(column)))
        assert denied(conn, sql.SQL("DELETE FROM {}").format(name))
        assert denied(conn, sql.SQL("TRUNCATE {}").format(name))


def test_role_cannot_create_outside_its_schema_or_become_the_app(rehearsed):
    with rehearsed.aurora.connect_as(rehearsed.umami) as conn:
        assert denied(conn, "CREATE TABLE public.t (id int)")
        assert denied(conn, "CREATE TABLE app.t (id int)")
        assert denied(conn, "CREATE VIEW public.v AS SELECT 1")
        assert denied(conn, "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        assert denied(conn, "CREATE SCHEMA other")
        assert denied(conn, "SELECT nextval('app.invoice_numbers')")
        assert denied(conn, "SET ROLE app_user")
        visible = conn.execute("SELECT table_schema || '.' || table_name FROM information_schema.tables "
                               "WHERE table_schema NOT IN ('umami', 'pg_catalog', 'information_schema')").fetchall()
        assert visible == []


def test_application_role_cannot_reach_umami(rehearsed):
    with rehearsed.aurora.connect_as(rehearsed.umami) as conn:
        run_umami_like_migrations(conn)
    with rehearsed.aurora.connect_as(rehearsed.aurora.app) as conn:
        for table in TABLES:
            assert denied(conn, sql.SQL("SELECT * FROM {}").format(sql.Identifier("umami", table)))
        assert denied(conn, 'INSERT INTO umami.website (name) VALUES (\'x\')')
        assert denied(conn, "DELETE FROM umami.website_event")
        assert denied(conn, "CREATE TABLE umami.intruder (id int)")
        assert denied(conn, "SET ROLE umami_user")


def test_verification_passes_on_the_clean_rehearsal(rehearsed):
    assert failing(verify(rehearsed)) == {}


@pytest.mark.parametrize("widening, detected_by", [
    # Without USAGE on schema app the read still fails; the catalog audit sees the grant anyway.
    ("GRANT SELECT ON app.customers TO umami_user", {"ISO-020", "PRB-004"}),
    ("GRANT USAGE ON SCHEMA app TO umami_user; GRANT SELECT ON ALL TABLES IN SCHEMA app TO umami_user",
     {"ISO-020", "PRB-001"}),
    ("GRANT CREATE ON SCHEMA public TO umami_user", {"ISO-024", "PRB-002"}),
    ("GRANT app_user TO umami_user", {"ISO-011", "PRB-003"}),
    ("GRANT SELECT ON public.settings TO PUBLIC", {"ISO-020", "PRB-001"}),
])
def test_a_widened_grant_is_detected(rehearsed, widening, detected_by):
    with rehearsed.aurora.superuser_conn() as conn:
        conn.execute(widening)
    assert detected_by <= set(failing(verify(rehearsed)))
