"""An Umami-like migration set, run as the umami role the way Prisma runs Umami's.

It mirrors what matters in Umami's real migrations: pgcrypto first, Prisma's
bookkeeping table, tables with UUID defaults, indexes, a sequence and rows,
all with unqualified names (the role's search_path decides where they go).
"""

from pathlib import Path

import psycopg
from psycopg import sql

from facts import UMAMI_ADMIN_USERNAME, UMAMI_DEFAULT_ADMIN_PASSWORD_HASH
from ops.verify.checks.schema_state import UMAMI_3_1_TABLES

PRISMA_MIGRATIONS_DDL = """CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    id varchar(36) PRIMARY KEY, checksum varchar(64) NOT NULL, finished_at timestamptz,
    migration_name varchar(255) NOT NULL, logs text, rolled_back_at timestamptz,
    started_at timestamptz NOT NULL DEFAULT now(), applied_steps_count integer NOT NULL DEFAULT 0)"""

MIGRATIONS = [
    'CREATE EXTENSION IF NOT EXISTS "pgcrypto"',
    PRISMA_MIGRATIONS_DDL,
    """CREATE TABLE "user" (user_id uuid PRIMARY KEY DEFAULT gen_random_uuid(), username varchar(255) NOT NULL,
        password varchar(60) NOT NULL, role varchar(50) NOT NULL, created_at timestamptz DEFAULT now())""",
    'CREATE UNIQUE INDEX user_username_key ON "user"(username)',
    """CREATE TABLE website (website_id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name varchar(100) NOT NULL,
        domain varchar(500), user_id uuid REFERENCES "user"(user_id), created_at timestamptz DEFAULT now())""",
    """CREATE TABLE website_event (event_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        website_id uuid NOT NULL, url_path varchar(500) NOT NULL, created_at timestamptz DEFAULT now())""",
    "CREATE INDEX website_event_website_id_created_at_idx ON website_event(website_id, created_at)",
    "CREATE SEQUENCE report_number_seq",
    # Umami's own first admin row: password `umami` under the fixed hash its first migration writes.
    f"""INSERT INTO "user" (username, password, role) VALUES ('{UMAMI_ADMIN_USERNAME}', '{UMAMI_DEFAULT_ADMIN_PASSWORD_HASH}', 'admin')""",
    "INSERT INTO website (name, domain, user_id) SELECT 'site', 'example.com', user_id FROM \"user\"",
    "INSERT INTO website_event (website_id, url_path) SELECT website_id, '/p' || g FROM website, generate_series(1, 20) g",
    "SELECT nextval('report_number_seq')",
    """INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, applied_steps_count)
       VALUES (gen_random_uuid()::text, md5('01_init'), now(), '01_init', 1)""",
]

TABLES = ("_prisma_migrations", "user", "website", "website_event")


def run_umami_like_migrations(conn: psycopg.Connection) -> None:
    """Apply the migrations in one transaction, as Prisma does per migration file."""
    with conn.transaction():
        for statement in MIGRATIONS:
            conn.execute(statement)


def run_umami_31_migrations(conn: psycopg.Connection, *, failed: str | None = None) -> None:
    """Umami 3.1's tables (simplified columns) with UUID defaults, indexes, a sequence and
    Prisma's bookkeeping; `failed` adds a migration that started and never finished."""
    with conn.transaction():
        conn.execute('CREATE EXTENSION IF NOT EXISTS "pgcrypto"')
        conn.execute(PRISMA_MIGRATIONS_DDL)
        for table in sorted(UMAMI_3_1_TABLES):
            key = sql.Identifier(f"{table}_id")
            conn.execute(sql.SQL("CREATE TABLE {} ({} uuid PRIMARY KEY DEFAULT gen_random_uuid(), "
                                 "created_at timestamptz DEFAULT now())").format(sql.Identifier(table), key))
            conn.execute(sql.SQL("CREATE INDEX {} ON {} (created_at)").format(
                sql.Identifier(f"{table}_created_at_idx"), sql.Identifier(table)))
        conn.execute("CREATE SEQUENCE report_number_seq")
        conn.execute('INSERT INTO "user" DEFAULT VALUES')
        for name in ("01_init", "02_report_schema_session_data", "14_add_link_and_pixel", "19_add_session_replay"):
            conn.execute("INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, applied_steps_count) "
                         "VALUES (gen_random_uuid()::text, md5(%s), now(), %s, 1)", (name, name))
        if failed:
            conn.execute("INSERT INTO _prisma_migrations (id, checksum, migration_name, logs) "
                         "VALUES (gen_random_uuid()::text, md5(%s), %s, 'ERROR: boom')", (failed, failed))


def add_prisma_migration(folder: Path, name: str, script: str) -> Path:
    """Write (or rewrite) migration `name` in a Prisma migrations folder (`migrate deploy` reads
    `<folder>/<name>/migration.sql`); returns the path of its migration.sql."""
    path = folder / name / "migration.sql"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script)
    return path
