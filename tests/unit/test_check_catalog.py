"""The checks' data file (ops/verify/checks/checks.toml) and the modules' evaluators agree one to one."""

from __future__ import annotations

import ast
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from ops.verify.checks import ALL_CHECKS, FAMILIES
from ops.verify.checks.base import CHECKS_FILE, Severity, check_data

ROOT = Path(__file__).resolve().parents[2]
CHECKS_DIR = CHECKS_FILE.parent


def data_ids() -> list[str]:
    with CHECKS_FILE.open("rb") as f:
        return [entry["id"] for entries in tomllib.load(f).values() for entry in entries]


def declared_evaluators() -> dict[str, list[str]]:
    """Module name -> the ids of every `declare(family, {id: evaluate})` key it writes, duplicates kept."""
    found: dict[str, list[str]] = {}
    for path in sorted(CHECKS_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "declare":
                assert isinstance(node.args[1], ast.Dict), f"{path.name}: declare() takes a dict literal"
                found.setdefault(path.stem, []).extend(k.value for k in node.args[1].keys)
    return found


def test_ids_in_the_data_file_are_unique():
    ids = data_ids()
    assert [i for i, n in Counter(ids).items() if n > 1] == []
    assert len(ALL_CHECKS) == len(ids)


def test_every_id_has_exactly_one_evaluator_and_every_evaluator_an_id():
    evaluated = [i for ids in declared_evaluators().values() for i in ids]
    assert [i for i, n in Counter(evaluated).items() if n > 1] == []
    assert sorted(evaluated) == sorted(data_ids())


def test_data_families_are_the_declared_families():
    assert list(check_data()) == [f.name for f in FAMILIES]
    for family in FAMILIES:
        assert [c.id for c in family.checks] == [e["id"] for e in check_data()[family.name]]


@pytest.mark.parametrize("entry", [e for entries in check_data().values() for e in entries], ids=lambda e: e["id"])
def test_entries_are_complete(entry):
    assert set(entry) == {"id", "title", "severity", "remediation"}
    assert entry["severity"] in Severity.__members__
    assert entry["title"].strip() and entry["remediation"].strip()


def test_placeholders_are_filled():
    assert all("$" not in c.title + c.remediation for _, c in ALL_CHECKS.values())


def test_the_data_file_ships_with_the_package():
    with (ROOT / "pyproject.toml").open("rb") as f:
        package_data = tomllib.load(f)["tool"]["setuptools"]["package-data"]
    assert CHECKS_FILE.name in package_data["ops.verify.checks"]
