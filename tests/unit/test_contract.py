"""The stack outputs contract (contract.py) against README's table, the program's exports, and parse."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import contract
from tests.stack import run_dev

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_rows() -> list[tuple[str, ...]]:
    """The rows of the table under "## Stack outputs", as (output, type, absent, meaning)."""
    text = README.read_text()
    section = text[text.index("## Stack outputs"):]
    section = section[:section.index("\n## ", 1)]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = tuple(cell.strip() for cell in lines[0].strip("|").split("|"))
    assert header == contract.TABLE_HEADER
    return [tuple(cell.strip() for cell in line.strip().strip("|").split("|")) for line in lines[2:]]


def test_readme_lists_exactly_the_contract():
    rows = readme_rows()
    keys = [re.fullmatch(r"`(\w+)`", row[0]).group(1) for row in rows]
    assert keys == list(contract.KEYS), "README's table and contract.py list different outputs"
    assert rows == contract.table_rows(), "regenerate README's table with `python -m contract`"


def test_readme_names_the_contract_version():
    assert f"## Stack outputs (contract version {contract.CONTRACT_VERSION})" in README.read_text()


def test_every_output_is_described_in_one_line_and_grouped():
    for output in contract.OUTPUTS:
        assert output.group in contract.GROUPS
        assert output.meaning and "\n" not in output.meaning and "|" not in output.meaning
    assert {o.group for o in contract.OUTPUTS} == set(contract.GROUPS)


def exported(overrides=None) -> set[str]:
    return set(run_dev(overrides).outputs)


def program_keys(*groups: str, optional: bool = False) -> set[str]:
    return {o.key for o in contract.OUTPUTS if o.group in groups and (optional or not o.optional)}


def test_a_full_stack_exports_contract_keys_only_and_every_required_one():
    keys = exported()
    assert keys <= program_keys(*contract.PROGRAM_GROUPS, optional=True)
    assert program_keys(*contract.PROGRAM_GROUPS) <= keys
    assert contract.parse(run_dev().outputs_json(), "program").service is not None


def test_a_database_only_stack_exports_no_service_or_monitoring_output():
    keys = exported({"deployService": False})
    assert keys <= program_keys("stack", "database", "secrets", optional=True)
    assert program_keys("stack", "database", "secrets") <= keys
    parsed = contract.parse(run_dev({"deployService": False}).outputs_json(), "program")
    assert (parsed.service, parsed.monitoring) == (None, None)


def test_drop_schema_cascade_is_exported_only_when_set():
    assert "dbDropSchemaCascade" not in exported()
    run = run_dev({"dropSchemaCascade": True})
    assert contract.parse(run.outputs_json(), "program").database.drop_schema_cascade is True


def test_export_refuses_keys_outside_the_contract_and_missing_ones():
    exports = {}
    with pytest.raises(contract.ContractError, match=r"^group secrets: not in the contract: dbPassword; "
                                                     r"missing: adminSecretArn, umamiAdminSecretArn, "
                                                     r"umamiAdminSecretName$"):
        contract.export(exports.__setitem__, secrets={"dbSecretArn": "a", "dbSecretName": "n", "appSecretArn": "b",
                                                      "dbPassword": "x"})
    with pytest.raises(contract.ContractError, match="exports no group 'rehearsal'"):
        contract.export(exports.__setitem__, rehearsal={"rehearsal": True, "rehearsalPassfile": "p"})
    contract.export(exports.__setitem__, service=None)
    assert exports == {}


BASE = {"contractVersion": 1, "dbHost": "db", "dbPort": 5432, "dbName": "appdb", "dbSchema": "umami",
        "dbRole": "umami_user", "dbSecretArn": "arn"}


def test_parse_types_the_groups_and_reads_absent_outputs_as_none():
    parsed = contract.parse({**BASE, "dbPort": "6543", "applicationRoles": ["app"], "ecsServiceName": "umami-dev",
                             "unknownKey": 1}, "outputs.json")
    assert parsed.database.port == 6543 and parsed.database.application_roles == ("app",)
    assert parsed.database.sslmode == contract.DEFAULT_SSL_MODE and parsed.database.ca_bundle is None
    assert parsed.service == contract.ServiceOutputs(ecs_service_name="umami-dev")
    assert parsed.monitoring is None and parsed.rehearsal is False


@pytest.mark.parametrize("change, message", [
    ({"dbPort": "x"}, "outputs.json: dbPort='x' is not a whole number"),
    ({"dbHost": None}, "outputs.json: output dbHost is null"),
    ({"url": 5}, "outputs.json: url must be a string, not int"),
    ({"alarmNames": "a"}, "outputs.json: alarmNames='a' must be a list of alarm names"),
    ({"rehearsal": "yes"}, "outputs.json: rehearsal='yes' is not true or false"),
    ({"dbRole": "[secret]"}, "outputs.json: output dbRole is a secret; it must be exported in plain text"),
])
def test_parse_errors_are_one_line_naming_source_and_key(change, message):
    with pytest.raises(contract.ContractError) as caught:
        contract.parse({**BASE, **change}, "outputs.json")
    assert str(caught.value) == message
