"""umami:retentionDays: 365 by default, 0 turns the job off, bad values rejected in one line naming the key."""

import pulumi
import pytest

from components.config import DEFAULT_RETENTION_DAYS, MAX_RETENTION_DAYS, ConfigError
from tests.stack import run_dev

INVALID = [
    ("-1", "umami:retentionDays=-1 is out of range; use 0-3650 days (0 keeps everything)"),
    ("3651", "umami:retentionDays=3651 is out of range; use 0-3650 days (0 keeps everything)"),
    ("a year", "umami:retentionDays=a year is not a whole number; use 0-3650 days (0 keeps everything)"),
    ("30.5", "umami:retentionDays=30.5 is not a whole number"),
    ("", 'umami:retentionDays="" is null or empty; set a value, or remove the key to use the default'),
]


@pytest.mark.parametrize("value, expected", INVALID, ids=[v or "empty" for v, _ in INVALID])
def test_a_bad_retention_is_one_line_naming_the_key(value, expected):
    with pytest.raises(ConfigError) as error:
        run_dev({"retentionDays": value})
    assert isinstance(error.value, pulumi.RunError)  # printed by Pulumi without a traceback
    assert len(error.value.problems) == 1, error.value.problems
    assert error.value.problems[0].startswith(expected)


def test_one_year_is_the_default_and_both_ends_of_the_range_are_accepted():
    assert DEFAULT_RETENTION_DAYS == 365
    assert run_dev().outputs["retentionDays"] == 365
    assert run_dev({"retentionDays": "0"}).outputs["retentionDays"] == 0
    assert run_dev({"retentionDays": str(MAX_RETENTION_DAYS)}).outputs["retentionDays"] == 3650


@pytest.mark.parametrize("image", ["ghcr.io/umami-software/umami:postgresql-v2.19.0",
                                   "ghcr.io/umami-software/umami:3.0.3"])
def test_images_older_than_3_1_keep_everything_by_default_and_refuse_a_retention(image):
    # Their schema lacks tables the job deletes from (session_replay came with 3.1).
    assert run_dev({"image": image}).outputs["retentionDays"] == 0
    with pytest.raises(ConfigError) as error:
        run_dev({"image": image, "retentionDays": "90"})
    version = image.rsplit(":", 1)[1].removeprefix("postgresql-v")
    assert error.value.problems == [f"umami:retentionDays=90 needs Umami 3.1's tables, but the image is Umami "
                                    f"{version}; use 0 or a 3.1+ image"]


def test_a_digest_pinned_image_is_taken_to_be_current():
    run = run_dev({"image": "ghcr.io/umami-software/umami@sha256:" + "ab" * 32})
    assert run.outputs["retentionDays"] == 365


def test_a_database_only_stack_has_no_retention_job():
    run = run_dev({"deployService": "false", "retentionDays": "30"}, remove=("umami:vpcId", "umami:privateSubnetIds"))
    assert "retentionDays" not in run.outputs
    assert not run.by_type("aws:scheduler/schedule:Schedule")
