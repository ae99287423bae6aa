"""Pure parts of ops.verify: selection, membership reach, version tables, secret parsing."""

from __future__ import annotations

import random

import pytest

from ops.verify.checks import ALL_CHECKS, FAMILIES
from ops.verify.checks.base import Severity
from ops.verify.checks.principals import Principals, Role, resolve_app_roles
from ops.verify.checks.schema_state import SchemaState, expected_tables, migrations_clean, pgcrypto_ready, tables_present
from ops.verify.checks.secret import SecretData, agrees_with_outputs, contract_keys, database_url
from ops.core.db import Target
from ops.core.errors import OpsError
from ops.core.outputs import parse_outputs
from ops.verify.runner import select


# -- selection ------------------------------------------------------------------------

def test_select_everything_but_the_opt_in_families_by_default():
    assert select() == {cid for cid, (family, _) in ALL_CHECKS.items() if not family.opt_in}
    assert select(["destroy"]) == {"DST-001", "DST-002", "DST-003", "DST-004"}  # only when named


def test_select_by_id_and_family_case_insensitively():
    assert select(["iso-020", "Probes"]) == {"ISO-020", "PRB-001", "PRB-002", "PRB-003", "PRB-004"}
    assert select(["probes"], ["PRB-003"]) == {"PRB-001", "PRB-002", "PRB-004"}
    assert "ISO-020" not in select(skip=["privileges"])


def test_select_refuses_unknown_ids():
    with pytest.raises(OpsError, match=r"--skip ISO-9: no such check id or family"):
        select(skip=["ISO-9"])


def test_every_check_id_is_unique_and_well_formed():
    ids = [c.id for f in FAMILIES for c in f.checks]
    assert len(ids) == len(set(ids))
    assert all(len(i) == 7 and i[3] == "-" and i[4:].isdigit() for i in ids)
    assert all(check.remediation and check.title for _, check in ALL_CHECKS.values())


# -- principals -------------------------------------------------------------------------

def role(oid: int, name: str, *, inherit: bool = True, login: bool = False, superuser: bool = False) -> Role:
    return Role(oid, name, superuser, inherit, False, False, login, False, False, -1)


def principals(grants: dict[int, list[int]], *, db_owner: int = 10, noinherit: tuple[int, ...] = ()) -> Principals:
    names = {1: "umami_user", 2: "reporting", 3: "pg_monitor", 4: "app_user", 5: "loop_a", 6: "loop_b",
             7: "rdsadmin", 8: "rds_superuser", 9: "pg_database_owner", 10: "postgres", 11: "billing"}
    roles = {oid: role(oid, name, inherit=oid not in noinherit, login=oid in (1, 4, 7, 10, 11))
             for oid, name in names.items()}
    return Principals(roles=roles, grants=grants, database_oid=100, database_name="appdb", database_owner=db_owner,
                      schema_oid=200, schema_owner=10, settings=[], lo_compat_privileges=False, current_user="postgres")


def test_reach_follows_transitive_memberships_and_marks_set_role_paths():
    p = principals({1: [2], 2: [3]}, noinherit=(1,))
    reach = p.reach(1)
    assert set(reach) == {1, 2, 3}
    assert reach[3].roles == (1, 2, 3) and not reach[3].inherited
    assert p.describe(reach[3]) == "umami_user → reporting → pg_monitor (by SET ROLE: a NOINHERIT role on the way)"


def test_reach_survives_membership_cycles():
    p = principals({1: [5], 5: [6], 6: [5]})
    assert set(p.reach(1)) == {1, 5, 6}


def test_database_owner_reaches_pg_database_owner():
    assert 9 in principals({}, db_owner=1).reach(1)
    assert 9 not in principals({}, db_owner=10).reach(1)


def test_reached_by_is_reach_read_backwards_and_app_holder_is_the_first_app_role():
    rng = random.Random(15)
    for _ in range(200):
        grants = {m: rng.sample(range(1, 12), k=rng.randint(0, 3)) for m in range(1, 12)}  # cycles included
        p = principals(grants, db_owner=rng.choice([1, 4, 10]), noinherit=(2,))
        p.app_roles = [p.roles[4], p.roles[11], p.roles[7]]
        for target in range(1, 12):
            assert p.reached_by(target) == {r for r in range(1, 12) if target in p.reach(r)}
            first = next((a for a in p.app_roles if target in p.reach(a.oid)), None)
            assert p.app_holder(target) == ((first, p.reach(first.oid)[target]) if first else None)


def test_application_roles_are_discovered_without_platform_roles():
    p = principals({})
    resolve_app_roles(p, (), exclude={"umami_user", "postgres"})
    assert [r.name for r in p.app_roles] == ["app_user", "billing"] and p.app_roles_discovered


def test_declared_application_roles_report_missing_ones():
    p = principals({})
    resolve_app_roles(p, ("app_user", "ghost"), exclude=set())
    assert [r.name for r in p.app_roles] == ["app_user"] and p.missing_app_roles == ["ghost"]


# -- schema state -----------------------------------------------------------------------

@pytest.mark.parametrize("version, count", [("3.1.0", 17), ("v3.1.2", 17), ("2.19.0", 11), ("3.0.3", None),
                                            (None, None), ("latest", None)])
def test_expected_tables_by_version(version, count):
    tables = expected_tables(version)
    assert (len(tables) if tables else None) == count


def state(**changes) -> SchemaState:
    base = dict(schema="umami", version="3.1.0", tables=expected_tables("3.1.0"), pgcrypto_schema="umami",
                pgcrypto_available=True, migrations=[("01_init", True, False)])
    base.update(changes)
    return SchemaState(**base)


def test_schema_state_findings():
    assert tables_present(state()) == [] and migrations_clean(state()) == [] and pgcrypto_ready(state()) == []
    missing = tables_present(state(tables=frozenset({"user"})))
    assert missing[0].severity == Severity.MEDIUM and "16 of 17 tables missing" in missing[0].evidence
    assert tables_present(state(migrations=None))[0].severity == Severity.INFO
    failed = migrations_clean(state(migrations=[("01_init", True, False), ("20_x", False, False), ("19_y", False, True)]))
    assert [(f.subject, f.severity) for f in failed] == [("20_x", Severity.HIGH), ("19_y", Severity.LOW)]
    assert pgcrypto_ready(state(pgcrypto_schema=None))[0].severity == Severity.MEDIUM


# -- secret -------------------------------------------------------------------------------

OUTPUTS = parse_outputs({"contractVersion": 1, "dbHost": "db.example.com", "dbPort": 5432, "dbName": "appdb",
                         "dbSchema": "umami", "dbRole": "umami_user", "dbSecretArn": "arn"}, "test")
PASSWORD = "p@ss:w/rd#1%"
URL = "postgresql://umami_user:p%40ss%3Aw%2Frd%231%25@db.example.com:5432/appdb?schema=umami&sslmode=require"


def secret(**doc) -> SecretData:
    base = {"username": "umami_user", "password": PASSWORD, "host": "db.example.com", "port": 5432,
            "database": "appdb", "schema": "umami", "DATABASE_URL": URL}
    base.update(doc)
    return SecretData("secret s", {k: v for k, v in base.items() if v is not None}, OUTPUTS,
                      Target("db.example.com", 5432, "appdb", "umami_user"))


def test_consistent_secret_has_no_findings():
    assert contract_keys(secret()) == [] and agrees_with_outputs(secret()) == [] and database_url(secret()) == []


def test_secret_problems_name_keys_never_values():
    assert "missing key(s): DATABASE_URL" in contract_keys(secret(DATABASE_URL=None))[0].evidence
    assert "host='other' but output dbHost='db.example.com'" in agrees_with_outputs(secret(host="other"))[0].evidence
    assert "does not parse" in database_url(secret(DATABASE_URL="postgresql://u:p@h:notaport/db"))[0].evidence
    unencoded = database_url(secret(DATABASE_URL=URL.replace("p%40ss%3Aw%2Frd%231%25", "wrong")))
    assert [f.evidence for f in unencoded] == ["the password in DATABASE_URL (URL-decoded) differs from the password key"]
    assert all(PASSWORD not in f.evidence for f in unencoded)
    schema = database_url(secret(DATABASE_URL=URL.replace("schema=umami", "schema=public")))
    assert schema[0].evidence == "schema in DATABASE_URL is 'public' but the secret's schema is 'umami'"
    assert database_url(secret(DATABASE_URL=URL.replace("db.example.com", "DB.example.com"))) == []


def test_list_prints_every_check_without_outputs(capsys):
    from ops.verify.__main__ import main
    assert main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(ALL_CHECKS)
    assert lines[0].split()[:3] == ["ISO-001", "roles", "critical"]
    assert "DEP-006  deployment   critical  the default login admin/umami is rejected" in lines
