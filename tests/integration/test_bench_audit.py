"""The benchmark's code at a small size: it builds, audits in a handful of queries, and the
audit, both naive loops and the cross-join agree on which tables umami can use (the full size
runs only as `python -m bench.audit`)."""

from bench.audit import LEAKED_TABLES, Sizes, build, measure
from ops.core.db import Target


def test_benchmark_code_at_a_small_size(aurora, tmp_path):
    sizes = Sizes(tables=120, schemas=6, roles=15)
    with aurora.superuser_conn() as superuser:
        build_seconds = build(superuser, aurora.admin_dsn(), tmp_path, sizes)
    target = Target("127.0.0.1", aurora.port, aurora.dbname, aurora.admin.user, aurora.admin.password,
                    "verify-full", sslrootcert=str(aurora.cluster.ca_file))
    result = measure(target, aurora.admin.user, sizes, build_seconds, repeat=1)
    assert result.audit.queries == 6
    assert result.naive.queries == 1 + 7 * 124 and result.naive_combined.queries == 1 + 124  # + the fixture's 4
    assert result.cross_join.queries == 1
    # umami reaches the leaked tables and those granted to PUBLIC (the first of each schema; one overlaps);
    # measure() has already checked that the naive loops and the cross-join found the same set.
    assert len(result.audit.tables) == LEAKED_TABLES + sizes.schemas - 1
    assert result.audit.findings > LEAKED_TABLES
    lines = result.lines()
    assert lines[0].startswith("database: 120 tables in 6 schemas, 15 roles (built in ") and "x faster" in lines[2]
    assert lines[4].startswith("cross-join, one query with has_table_privilege per table and privilege, filtered on ")
