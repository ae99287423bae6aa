"""A fingerprint of a cluster, to prove that a refused or destructive path changed nothing it may not.

    before = fingerprint(aurora)
    ...                                   # something that must change nothing
    assert fingerprint(aurora) == before

Parts: `pg_dumpall --schema-only` (every role with its password hash, attributes,
memberships and settings, every database's DDL and ACLs; run as the cluster's OS
user through its own bin dir, as pgcluster runs the server tools), the role
attributes, memberships and settings from the catalogs, and a checksum of the rows
of every table outside `exclude_schema`. With `exclude_schema`/`exclude_role` the
dump is left out and those are skipped: what must be unchanged around a stack that
was itself created or destroyed.
"""

from __future__ import annotations

import os
import subprocess

from psycopg import sql

from ops.engine import pgcluster


def schema_dump(aurora) -> str:
    cluster = aurora.cluster
    # HOME: libpq looks for ~/.postgresql/postgresql.crt, which the server OS user may not read under /root.
    env = {**os.environ, "PGPASSWORD": aurora.superuser.password, "LC_ALL": "C", "HOME": str(cluster.base_dir)}
    if cluster.tls:
        env.update(PGSSLMODE="verify-full", PGSSLROOTCERT=str(cluster.ca_file))
    result = subprocess.run(
        [str(cluster.bin / "pg_dumpall"), "--schema-only", "-h", "127.0.0.1", "-p", str(cluster.port),
         "-U", aurora.superuser.user, "-l", "postgres"],
        capture_output=True, text=True, cwd="/", env=env, timeout=60,
        user=cluster._os_user, group=cluster._os_user,
    )
    assert result.returncode == 0, result.stderr
    # \restrict / \unrestrict carry a random key per dump (pg_dump 15.14+).
    return "\n".join(line for line in result.stdout.splitlines()
                     if not line.startswith(("-- Dumped", "\\restrict", "\\unrestrict")))


def fingerprint(aurora, *, exclude_schema: str | None = None, exclude_role: str | None = None) -> dict:
    skip_roles = [r for r in (exclude_role,) if r]
    with aurora.superuser_conn() as conn:
        roles = conn.execute(
            "SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, "
            "rolbypassrls, rolconnlimit, rolvaliduntil::text, md5(coalesce(rolpassword, '')) FROM pg_authid "
            "WHERE NOT rolname = ANY(%s) ORDER BY 1", (skip_roles,)).fetchall()
        members = conn.execute(
            "SELECT pg_get_userbyid(roleid), pg_get_userbyid(member), admin_option FROM pg_auth_members "
            "WHERE NOT pg_get_userbyid(roleid) = ANY(%s) AND NOT pg_get_userbyid(member) = ANY(%s) ORDER BY 1, 2",
            (skip_roles, skip_roles)).fetchall()
        settings = conn.execute(
            "SELECT coalesce(pg_get_userbyid(setrole), ''), setdatabase, setconfig::text FROM pg_db_role_setting "
            "WHERE setrole = 0 OR NOT pg_get_userbyid(setrole) = ANY(%s) ORDER BY 1, 2", (skip_roles,)).fetchall()
    tables = {}
    with aurora.superuser_conn(pgcluster.APP_DATABASE) as conn:
        for schema, table in conn.execute(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND n.nspname NOT LIKE 'pg_toast%%' AND n.nspname <> %s ORDER BY 1, 2",
                (exclude_schema or "",)).fetchall():
            tables[f"{schema}.{table}"] = conn.execute(sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {}.{} t").format(
                sql.Identifier(schema), sql.Identifier(table))).fetchone()
        extensions = conn.execute("SELECT extname, extnamespace::regnamespace::text, extversion FROM pg_extension "
                                  "ORDER BY 1").fetchall()
    found = {"roles": roles, "memberships": members, "settings": settings, "tables": tables,
             "extensions": extensions}
    if not exclude_schema and not exclude_role:
        found["dump"] = schema_dump(aurora)
    return found
