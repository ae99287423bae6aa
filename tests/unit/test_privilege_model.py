"""The privilege model (privilege_model.py): the component grants exactly it, the outputs rebuild it,
and the SQL it renders for fixes names the real objects, properly quoted."""

from __future__ import annotations

import pytest

import contract
from components.database import ROLE_ATTRIBUTE_ARGS
from privilege_model import (
    DECLARED_SETTINGS, ROLE_ATTRIBUTES, SEQUENCE_PRIVILEGES, TABLE_PRIVILEGES, PrivilegeModel, model_for,
)
from tests.stack import run_dev

ROLE = "postgresql:index/role:Role"
SCHEMA = "postgresql:index/schema:Schema"
GRANT = "postgresql:index/grant:Grant"
DEFAULTS = "postgresql:index/defaultPrivileges:DefaultPrivileges"
# The provider's Role inputs (camelCase, as the engine records them) of the model's attributes.
ROLE_INPUTS = {"LOGIN": "login", "INHERIT": "inherit", "SUPERUSER": "superuser", "CREATEDB": "createDatabase",
               "CREATEROLE": "createRole", "REPLICATION": "replication", "BYPASSRLS": "bypassRowLevelSecurity"}


def model_of_outputs(outputs: dict) -> PrivilegeModel:
    """The model as ops.verify rebuilds it: from the outputs alone."""
    db = contract.parse(outputs, "program").database
    return model_for(database=db.name, schema=db.schema, role=db.role, admin_role=db.admin_role,
                     connection_limit=db.connection_limit, statement_timeout_ms=db.statement_timeout_ms,
                     idle_in_transaction_timeout_ms=db.idle_in_transaction_timeout_ms)


def granted(run) -> dict:
    """What the program declares in PostgreSQL, in the model's terms."""
    role = run.one(ROLE).inputs
    (grant,) = [g.inputs for g in run.by_type(GRANT)]
    defaults = {d.inputs["objectType"]: d.inputs for d in run.by_type(DEFAULTS)}
    return {
        "database": grant["database"], "schema": run.one(SCHEMA).inputs["name"], "role": role["name"],
        "admin_role": run.one(SCHEMA).inputs["owner"],
        "attributes": tuple((a, role[ROLE_INPUTS[a]]) for a in ROLE_ATTRIBUTES),
        "memberships": tuple(role["roles"]), "connection_limit": role["connectionLimit"],
        "search_path": tuple(role["searchPaths"]), "statement_timeout_ms": role["statementTimeout"],
        "idle_in_transaction_timeout_ms": role["idleInTransactionSessionTimeout"],
        "schema_privileges": tuple(grant["privileges"]),
        "default_privileges": {t: (d["owner"], d["schema"], d["role"], tuple(d["privileges"]))
                               for t, d in defaults.items()},
    }


def expected(model: PrivilegeModel) -> dict:
    return {
        "database": model.database, "schema": model.schema, "role": model.role, "admin_role": model.admin_role,
        "attributes": model.attributes, "memberships": model.memberships,
        "connection_limit": model.connection_limit, "search_path": model.search_path,
        "statement_timeout_ms": model.statement_timeout_ms,
        "idle_in_transaction_timeout_ms": model.idle_in_transaction_timeout_ms,
        "schema_privileges": model.schema_privileges,
        "default_privileges": {d.object_type: (model.admin_role, model.schema, model.role, d.privileges)
                               for d in model.default_privileges},
    }


@pytest.mark.parametrize("overrides", [
    {},
    {"roleName": "analytics_ro", "schemaName": "analytics", "connectionLimit": "60", "statementTimeoutMs": "0",
     "idleInTransactionTimeoutMs": "120000"},
    {"deployService": False},
], ids=["dev", "overridden", "database-only"])
def test_the_component_grants_exactly_the_model_the_outputs_rebuild(overrides):
    run = run_dev(overrides)
    model = model_of_outputs(run.outputs_json())
    assert granted(run) == expected(model)


def test_the_dev_model_is_the_documented_one():
    model = model_of_outputs(run_dev().outputs_json())
    assert dict(model.attributes) == {"LOGIN": True, "INHERIT": True, "SUPERUSER": False, "CREATEDB": False,
                                      "CREATEROLE": False, "REPLICATION": False, "BYPASSRLS": False}
    assert (model.role, model.schema, model.admin_role, model.database) == ("umami_user", "umami", "postgres", "appdb")
    assert (model.connection_limit, model.statement_timeout_ms, model.idle_in_transaction_timeout_ms) == (44, 30000, 60000)
    assert model.memberships == () and model.schema_privileges == ("USAGE", "CREATE")
    assert {d.object_type: d.privileges for d in model.default_privileges} == {
        "table": ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"),
        "sequence": ("USAGE", "SELECT", "UPDATE")}
    assert (TABLE_PRIVILEGES, SEQUENCE_PRIVILEGES) == tuple(d.privileges for d in model.default_privileges)


def test_every_model_attribute_maps_to_a_role_argument():
    assert set(ROLE_ATTRIBUTE_ARGS) == set(ROLE_ATTRIBUTES) == set(ROLE_INPUTS)


def test_the_outputs_carry_the_timeouts():
    outputs = run_dev({"statementTimeoutMs": "15000"}).outputs
    assert (outputs["dbStatementTimeoutMs"], outputs["dbIdleInTransactionTimeoutMs"]) == (15000, 60000)


DEV = model_for(database="appdb", schema="umami", role="umami_user", admin_role="postgres", connection_limit=44,
                statement_timeout_ms=30000, idle_in_transaction_timeout_ms=60000)


def test_the_model_renders_the_statements_that_establish_it():
    assert DEV.statements() == (
        'ALTER ROLE "umami_user" WITH LOGIN INHERIT NOCREATEDB NOCREATEROLE;',
        'ALTER ROLE "umami_user" CONNECTION LIMIT 44;',
        'ALTER ROLE "umami_user" SET search_path TO "umami";',
        'ALTER ROLE "umami_user" SET statement_timeout TO 30000;',
        'ALTER ROLE "umami_user" SET idle_in_transaction_session_timeout TO 60000;',
        'GRANT USAGE, CREATE ON SCHEMA "umami" TO "umami_user";',
        'ALTER DEFAULT PRIVILEGES FOR ROLE "postgres" IN SCHEMA "umami" GRANT SELECT, INSERT, UPDATE, DELETE, '
        'TRUNCATE, REFERENCES, TRIGGER ON TABLES TO "umami_user";',
        'ALTER DEFAULT PRIVILEGES FOR ROLE "postgres" IN SCHEMA "umami" GRANT USAGE, SELECT, UPDATE ON SEQUENCES '
        'TO "umami_user";',
    )


def test_parts_render_only_what_is_asked_in_the_models_order():
    assert DEV.schema_grant_sql(("CREATE",)) == 'GRANT CREATE ON SCHEMA "umami" TO "umami_user";'
    assert DEV.default_privileges_sql("table", ("TRIGGER", "INSERT")) == (
        'ALTER DEFAULT PRIVILEGES FOR ROLE "postgres" IN SCHEMA "umami" GRANT INSERT, TRIGGER ON TABLES TO "umami_user";')
    assert DEV.attributes_sql(("INHERIT", "LOGIN")) == 'ALTER ROLE "umami_user" WITH LOGIN INHERIT;'
    assert DEV.attributes_sql(("BYPASSRLS",)) == 'ALTER ROLE "umami_user" WITH NOBYPASSRLS;'  # a superuser's statement
    assert DEV.reset_sql("work_mem") == 'ALTER ROLE "umami_user" RESET work_mem;'
    assert DEV.reset_sql("statement_timeout", "appdb") == 'ALTER ROLE "umami_user" IN DATABASE "appdb" RESET statement_timeout;'


def test_identifiers_are_quoted_whatever_they_hold():
    odd = model_for(database='my"db', schema="Umami Data", role='we"ird', admin_role="Admin", connection_limit=None,
                    statement_timeout_ms=None, idle_in_transaction_timeout_ms=None)
    assert odd.schema_grant_sql() == 'GRANT USAGE, CREATE ON SCHEMA "Umami Data" TO "we""ird";'
    assert odd.setting_sql("search_path") == 'ALTER ROLE "we""ird" SET search_path TO "Umami Data";'
    assert odd.default_privileges_sql("sequence", ("USAGE",)) == (
        'ALTER DEFAULT PRIVILEGES FOR ROLE "Admin" IN SCHEMA "Umami Data" GRANT USAGE ON SEQUENCES TO "we""ird";')
    assert odd.reset_sql("MyApp.Mode", 'my"db') == 'ALTER ROLE "we""ird" IN DATABASE "my""db" RESET "MyApp"."Mode";'
    assert odd.reset_sql("myapp.mode") == 'ALTER ROLE "we""ird" RESET myapp.mode;'


def test_what_is_not_known_is_not_rendered():
    unknown = model_for(database="appdb", schema="umami", role="umami_user", admin_role=None, connection_limit=None,
                        statement_timeout_ms=None, idle_in_transaction_timeout_ms=None)
    assert [unknown.setting(name) for name in DECLARED_SETTINGS] == ['"umami"', None, None]
    assert unknown.statements() == (
        'ALTER ROLE "umami_user" WITH LOGIN INHERIT NOCREATEDB NOCREATEROLE;',
        'ALTER ROLE "umami_user" SET search_path TO "umami";',
        'GRANT USAGE, CREATE ON SCHEMA "umami" TO "umami_user";',
    )
    with pytest.raises(ValueError, match="admin role"):
        unknown.default_privileges_sql("table")
    with pytest.raises(ValueError, match="statement_timeout of umami_user is not known"):
        unknown.setting_sql("statement_timeout")
    with pytest.raises(ValueError, match="connection limit of umami_user is not known"):
        unknown.connection_limit_sql()
