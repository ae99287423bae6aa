"""The verdict does not depend on who audits: the admin, the umami role alone, or an application
role given as the auditor (UMAMI_ADMIN_DSN) find the same leaks at the same severities, and what an
auditor cannot see is said in the report's notes."""

from __future__ import annotations

import pytest

from ops.verify.checks.base import Status
from ops.verify.runner import run_verification
from tests.verify_support import ADMIN, APP, UMAMI, admin_target, cluster_login, connect_as, inject, outputs_of, \
    umami_target

AUDITORS = ("admin", "umami", "app")
LEAKS = [
    (APP, "GRANT SELECT ON public.settings TO umami_user"),  # forward: umami reads the application's data
    (ADMIN, "GRANT USAGE ON SCHEMA umami TO app_user"),  # reverse: the auditor's own role reaches the schema
    (ADMIN, "GRANT USAGE ON SCHEMA umami TO billing"),  # reverse: another application login does too
    (UMAMI, "CREATE TABLE umami.website (id int)"),
    (UMAMI, "GRANT SELECT ON umami.website TO app_user"),
    (ADMIN, "ALTER ROLE app_user SET search_path = app, umami"),
]


def run_as(rehearsed, auditor: str, **changes):
    """A run with no configured applicationRoles, audited by `auditor`."""
    admin = {"admin": admin_target(rehearsed), "umami": None,
             "app": cluster_login(rehearsed, rehearsed.aurora.app.user, rehearsed.aurora.app.password)}[auditor]
    return run_verification(outputs_of(rehearsed, applicationRoles=[]), umami=umami_target(rehearsed), admin=admin,
                            include_aws=False, **changes)


def verdict(report) -> dict[str, str]:
    """Check id -> severity label of every failing check."""
    return {r.check.id: r.severity.label for r in report.results if r.status == Status.FAIL}


def test_the_same_leaks_get_the_same_severities_whoever_audits(rehearsed):
    inject(rehearsed, [(ADMIN, "CREATE ROLE billing LOGIN")] + LEAKS)
    reports = {auditor: run_as(rehearsed, auditor) for auditor in AUDITORS}
    verdicts = {auditor: verdict(report) for auditor, report in reports.items()}
    assert verdicts["umami"] == verdicts["admin"] and verdicts["app"] == verdicts["admin"]
    assert {"ISO-020": "critical", "ISO-060": "high", "ISO-061": "high", "ISO-064": "medium"}.items() \
        <= verdicts["admin"].items()
    for auditor, report in reports.items():
        assert report.application_roles == ["app_user", "billing"], auditor
        assert report.application_roles_origin.startswith("discovered") and "whoever audits" in \
            report.application_roles_origin
    assert next(iter(reports["app"].sessions)).startswith("roles") and \
        list(reports["app"].sessions.values())[0].startswith("app_user")


@pytest.fixture
def umami_at_80_percent(rehearsed):
    """Umami's pools hold 8 of 10 connections (warning level); ops' own sessions leave 2."""
    inject(rehearsed, [(ADMIN, "ALTER ROLE umami_user CONNECTION LIMIT 10")])
    pools = [connect_as(rehearsed, UMAMI) for _ in range(8)]
    yield rehearsed
    for conn in pools:
        conn.close()


def test_an_auditor_blind_to_umamis_sessions_says_con_001_is_weaker(umami_at_80_percent):
    rehearsed = umami_at_80_percent
    reports = {auditor: run_as(rehearsed, auditor, only=["CON-001"]) for auditor in AUDITORS}
    # The admin (rds_superuser includes pg_read_all_stats) and umami itself see the sessions.
    for auditor in ("admin", "umami"):
        assert verdict(reports[auditor]) == {"CON-001": "medium"}, auditor
        assert not [n for n in reports[auditor].notes if "CON-001" in n], auditor
    # An application role sees that the sessions exist, not their details: all are counted (fail closed).
    assert verdict(reports["app"]) == {"CON-001": "medium"}
    (note,) = [n for n in reports["app"].notes if "CON-001" in n]
    assert note.startswith("CON-001 is weaker: app_user is neither umami_user (or a member of it) "
                           "nor a member of pg_read_all_stats, so pg_stat_activity hides")
    with connect_as(rehearsed, APP) as conn:
        hidden = conn.execute("SELECT count(*), count(backend_type), count(client_addr) FROM pg_stat_activity "
                              "WHERE usename = 'umami_user' AND application_name <> 'umami-ops'").fetchone()
    assert hidden == (8, 0, 0)
