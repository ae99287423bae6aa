"""components.config's fixed lists of reserved words, against a real PostgreSQL 15."""

import psycopg
import pytest
from psycopg import sql

from components.config import RESERVED_KEYWORDS, RESERVED_ROLE_NAMES


def test_reserved_keywords_are_postgresqls(aurora):
    with aurora.connect_as(aurora.admin) as conn:
        words = {w for (w,) in conn.execute("SELECT word FROM pg_get_keywords() WHERE catcode IN ('R', 'T')")}
    assert RESERVED_KEYWORDS == words


@pytest.mark.parametrize("name", RESERVED_ROLE_NAMES)
def test_reserved_role_names_are_refused_even_quoted(aurora, name):
    with aurora.connect_as(aurora.admin) as conn, pytest.raises(psycopg.errors.ReservedName):
        conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(name)))
