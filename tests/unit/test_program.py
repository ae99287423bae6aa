"""The offline engine: what it records, and how it fails when it cannot answer."""

import pytest

from ops.core.errors import OpsError
from ops.engine.offline import OfflineHandler
from ops.engine.program import Handler, parse_overrides, read_stack_config, run_program


def test_a_data_source_without_an_offline_answer_is_a_one_line_error():
    with pytest.raises(OpsError, match=r"^data source aws:[\w/]+:\w+ has no offline answer$"):
        run_program(Handler(), stack="dev", config=read_stack_config("dev"))


def test_a_run_after_a_failed_run_completes():
    with pytest.raises(OpsError):
        run_program(Handler(), stack="dev", config=read_stack_config("dev"))
    run = run_program(OfflineHandler(), stack="dev", config=read_stack_config("dev"))
    assert run.outputs["dbRole"] == "umami_user"


def test_unknown_stack_file_is_named():
    with pytest.raises(OpsError, match="no stack file Pulumi.nosuch.yaml"):
        read_stack_config("nosuch")


def test_overrides_get_the_namespace_and_keep_equals_signs():
    assert parse_overrides(["schemaName=a=b", "aws:region=eu-west-1"], "umami") == {
        "umami:schemaName": "a=b", "aws:region": "eu-west-1"}
