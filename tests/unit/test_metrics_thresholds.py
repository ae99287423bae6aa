"""The stories' limits: defaults, the edges of each comparison, and the thresholds file."""

from __future__ import annotations

import json

import pytest

from ops.core.errors import OpsError
from ops.metrics import thresholds
from ops.metrics.thresholds import FAIL, INFO, NO_DATA, PASS

MIB = 1024 * 1024


def judge(key: str, before, after, limits=None):
    chosen = thresholds.parse(limits, "test") if limits is not None else thresholds.defaults()
    return chosen.rule(key).judge(before, after)


def test_defaults_are_the_stories_limits():
    limits = thresholds.defaults().as_dict()
    assert limits == {"cpuIncreasePoints": 5, "connectionsIncrease": 2, "iopsIncreasePercent": 10,
                      "umamiSchemaGrowthBytes": 64 * MIB, "databaseGrowthBytes": 256 * MIB,
                      "volumeGrowthBytes": None, "umamiConnectionsOverBudget": 0}


@pytest.mark.parametrize("before, after, verdict", [
    (20.0, 24.9, PASS),
    (20.0, 25.0, FAIL),          # "less than 5 points": exactly 5 breaks it
    (3.2, 8.2, FAIL),            # 8.2 - 3.2 is 4.999999999999999 in floating point: still exactly 5
    (3.3, 8.3, FAIL),            # ... and 5.000000000000001 here
    (40.0, 30.0, PASS),
])
def test_cpu_increase_must_stay_below_five_points(before, after, verdict):
    assert judge("cpuIncreasePoints", before, after) == (verdict, "")


@pytest.mark.parametrize("before, after, verdict", [(3, 3, PASS), (3, 5, PASS), (3, 6, FAIL), (5, 0, PASS)])
def test_connections_may_rise_by_at_most_two(before, after, verdict):
    assert judge("connectionsIncrease", before, after)[0] == verdict


@pytest.mark.parametrize("before, after, verdict", [
    (100.0, 110.0, PASS),        # exactly 10 %
    (100.0, 110.01, FAIL),
    (0.3, 0.33, PASS),           # 10.000000000000009 % in floating point: exactly 10 %
    (250.0, 100.0, PASS),        # less I/O is no regression
    (0.0, 0.0, PASS),
])
def test_iops_may_rise_by_at_most_ten_percent(before, after, verdict):
    assert judge("iopsIncreasePercent", before, after)[0] == verdict


def test_iops_from_zero_breaks_a_percentage_limit_and_says_why():
    verdict, note = judge("iopsIncreasePercent", 0.0, 0.5)
    assert verdict == FAIL and "before value was 0" in note


@pytest.mark.parametrize("growth, verdict", [(64 * MIB, PASS), (64 * MIB + 1, FAIL)])
def test_umami_schema_growth_limit_is_inclusive(growth, verdict):
    assert judge("umamiSchemaGrowthBytes", 1000, 1000 + growth)[0] == verdict


def test_missing_data_and_disabled_limits():
    assert judge("cpuIncreasePoints", None, 30.0) == (NO_DATA, "")
    assert judge("cpuIncreasePoints", 30.0, None) == (NO_DATA, "")
    assert judge("volumeGrowthBytes", 0, 10 ** 12) == (INFO, "")
    assert judge("cpuIncreasePoints", 0, 99, {"cpuIncreasePoints": None}) == (INFO, "")


def test_file_overrides_and_sizes(tmp_path):
    path = tmp_path / "limits.json"
    path.write_text(json.dumps({"connectionsIncrease": 5, "databaseGrowthBytes": "1.5GiB",
                                "umamiSchemaGrowthBytes": "500MB", "volumeGrowthBytes": 2048}))
    loaded = thresholds.load(path)
    assert loaded.source == f"thresholds file {path}"
    assert loaded.limits["connectionsIncrease"] == 5
    assert loaded.limits["databaseGrowthBytes"] == 1536 * MIB
    assert loaded.limits["umamiSchemaGrowthBytes"] == 500_000_000
    assert loaded.limits["volumeGrowthBytes"] == 2048
    assert loaded.limits["cpuIncreasePoints"] == 5
    assert loaded.rule("databaseGrowthBytes").describe() == "growth <= 1.5 GiB"
    assert loaded.rule("cpuIncreasePoints").describe() == "increase < 5 points"
    assert loaded.rule("iopsIncreasePercent").describe() == "increase <= 10 %"


@pytest.mark.parametrize("content, message", [
    ('{"cpuIncrease": 5}', "unknown key 'cpuIncrease' (known: cpuIncreasePoints, connectionsIncrease"),
    ('{"cpuIncreasePoints": "five"}', 'cpuIncreasePoints="five" is not a number (null disables the check)'),
    ('{"connectionsIncrease": -1}', "connectionsIncrease=-1 must be >= 0"),
    ('{"connectionsIncrease": true}', "connectionsIncrease=true is not a number"),
    ('{"umamiSchemaGrowthBytes": "lots"}', 'umamiSchemaGrowthBytes="lots" is not a size'),
    ('{"databaseGrowthBytes": [1]}', "databaseGrowthBytes=[1] is not a number of bytes"),
    ('{"freeStorageSpaceBytes": 1}', "FreeStorageSpace is not an Aurora metric"),
    ('[5]', "a thresholds file must be a JSON object"),
    ('{"cpuIncreasePoints": 5,}', "is not valid JSON (line 1"),
])
def test_bad_thresholds_file_is_one_line_naming_the_key(tmp_path, content, message):
    path = tmp_path / "limits.json"
    path.write_text(content)
    with pytest.raises(OpsError) as error:
        thresholds.load(path)
    assert message in str(error.value)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_missing_thresholds_file(tmp_path):
    with pytest.raises(OpsError, match="cannot read thresholds file .*: No such file or directory"):
        thresholds.load(tmp_path / "absent.json")
