"""The tenant benchmark's code at a small size: it builds 30 tenants, the matrix answers in a bounded
number of queries, and the matrix, the naive loop and the cross-join agree on every pair they share and
on every planted leak (the full size runs only as `python -m bench.tenants`)."""

from bench.tenants import Sizes, build, measure, planted_leaks
from ops.core.db import Target


def test_benchmark_code_at_a_small_size(aurora):
    sizes = Sizes(tenants=30, tables=5)
    with aurora.superuser_conn() as superuser:
        build_seconds = build(superuser, aurora.admin.user, sizes)
    target = Target("127.0.0.1", aurora.port, aurora.dbname, aurora.admin.user, aurora.admin.password,
                    "verify-full", sslrootcert=str(aurora.cluster.ca_file))
    result = measure(target, aurora.admin.user, sizes, build_seconds, repeat=1, loop_sample=1500,
                     cross_join_budget=120)
    assert result.disagreements == []
    # principals and default privileges (shared with the catalog audit), then areas, relations, functions, RLS.
    assert result.ours.queries == 6
    assert len(result.objects.principals) == 32  # umami, 30 tenants, app_user
    assert len(result.objects.relations) == 30 * 5 + 1  # and the table the default-privileges leak created
    kinds = {leak.kind for leak in planted_leaks(sizes, aurora.admin.user)}
    assert len(kinds) == 8 and all(any(leak.reported_by(check, finding) for check, finding in result.ours.findings)
                                   for leak in planted_leaks(sizes, aurora.admin.user))
    assert result.loop.probes == 1500 and result.loop.full_probes == result.objects.pairs
    assert "run whole" in result.cross.method and result.cross.probes == result.cross.full_probes
    lines = result.lines()
    assert lines[0].startswith("database: 30 tenants × 5 tables (150 tables), 32 principals")
    assert any(line.strip().startswith("(a) naive loop") for line in lines)
    assert lines[-1].startswith("agreement: all three agree")
