"""The CloudWatch part against moto: dimensions, GetMetricData batching, retries, and a full check."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from ops.core import aws
from ops.metrics import snapshot
from ops.metrics.__main__ import main
from ops.metrics.collect import SnapshotRequest, collect_cloudwatch, take_snapshot
from ops.metrics.connections import Sampling
from ops.metrics.metric_set import Targets, default_metric_set
from ops.core.outputs import load_outputs_file
from tests.integration.test_metrics_database import png_size, rows_by_key, write_outputs

CLUSTER = "app-aurora"
WRITER, READER = "app-aurora-1", "app-aurora-2"
LOAD_BALANCER = "app/umami-alb/0123456789abcdef"
TARGET_GROUP = "targetgroup/umami-tg/fedcba9876543210"
TARGETS = Targets(region="eu-west-1", cluster=CLUSTER, instances=(WRITER, READER), ecs_cluster="umami-dev",
                  ecs_service="umami-dev", target_group=TARGET_GROUP, load_balancer=LOAD_BALANCER)


@pytest.fixture
def cloudwatch(monkeypatch):
    """moto in-process with fake credentials; yields a client made the way ops makes them."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield aws.client("cloudwatch", "eu-west-1")


def put(client, namespace: str, name: str, dimensions: dict[str, str], values: list[float], end: datetime) -> None:
    """One value a minute, the last one minute before `end`."""
    client.put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": name, "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
         "Value": value, "Timestamp": end - timedelta(minutes=len(values) - index)}
        for index, value in enumerate(values)])


def count_calls(client) -> dict[str, list]:
    """GetMetricData calls (API calls) and their HTTP attempts, seen through botocore's event hooks."""
    seen: dict[str, list] = {"calls": [], "attempts": []}
    client.meta.events.register("provide-client-params.cloudwatch.GetMetricData",
                                lambda params, **_: seen["calls"].append(len(params["MetricDataQueries"])))
    client.meta.events.register("before-send.cloudwatch.GetMetricData",
                                lambda request, **_: seen["attempts"].append(request.url))
    return seen


class _Body:
    def __init__(self, data: bytes):
        self.data = data

    def stream(self):
        yield self.data


def fail_first_attempts(client, code: str, status: int, times: int = 1) -> None:
    """Answer the first `times` GetMetricData requests with an AWS error, before moto sees them."""
    protocol = client.meta.service_model.resolved_protocol
    if protocol == "json":
        body, content_type = json.dumps({"__type": code, "message": "injected"}).encode(), "application/x-amz-json-1.0"
    elif protocol == "smithy-rpc-v2-cbor":
        body, content_type = b"\xa0", "application/cbor"     # an empty CBOR map; the code is in the header
    else:
        pytest.fail(f"teach this test the {protocol} error shape")
    remaining = [times]

    def answer(request, **_):
        if remaining[0] == 0:
            return None
        remaining[0] -= 1
        headers = {"x-amzn-query-error": f"{code};Sender", "Content-Type": content_type}
        return AWSResponse(request.url, status, headers, _Body(body))

    client.meta.events.register_first("before-send.cloudwatch.GetMetricData", answer)


def by_key(section: dict) -> dict[tuple[str, str], dict]:
    return {(m["name"], ",".join(m["dimensions"].values())): m for m in section["metrics"]}


# -- the metric set ------------------------------------------------------------------

def test_metric_set_uses_the_dimensions_aurora_ecs_and_alb_file_metrics_under():
    specs = default_metric_set(TARGETS)
    dims = {(s.namespace, s.name, s.dimensions) for s in specs}
    assert ("AWS/RDS", "CPUUtilization", (("DBInstanceIdentifier", WRITER),)) in dims
    assert ("AWS/RDS", "ReadIOPS", (("DBInstanceIdentifier", READER),)) in dims
    assert ("AWS/RDS", "VolumeBytesUsed", (("DBClusterIdentifier", CLUSTER),)) in dims
    assert ("AWS/ECS", "MemoryUtilization", (("ClusterName", "umami-dev"), ("ServiceName", "umami-dev"))) in dims
    assert ("AWS/ApplicationELB", "TargetResponseTime",
            (("TargetGroup", TARGET_GROUP), ("LoadBalancer", LOAD_BALANCER))) in dims
    assert ("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", (("LoadBalancer", LOAD_BALANCER),)) in dims
    assert not any(s.name == "FreeStorageSpace" for s in specs)
    assert len(specs) == 2 * 8 + 1 + 2 + 4
    cluster_only = default_metric_set(Targets("eu-west-1", CLUSTER, (), None, None, None, None))
    assert {s.dimensions for s in cluster_only} == {(("DBClusterIdentifier", CLUSTER),)}
    assert default_metric_set(Targets("eu-west-1", None, (), "c", "s", None, None)) == []


# -- GetMetricData -------------------------------------------------------------------

def test_default_set_is_one_call_with_statistics_per_metric(cloudwatch):
    now = datetime.now(timezone.utc)
    end = now.replace(second=0, microsecond=0) - timedelta(minutes=1)
    put(cloudwatch, "AWS/RDS", "CPUUtilization", {"DBInstanceIdentifier": WRITER}, [10, 20, 30, 40], end)
    put(cloudwatch, "AWS/RDS", "CPUUtilization", {"DBClusterIdentifier": CLUSTER}, [99], end)   # not the instance
    put(cloudwatch, "AWS/RDS", "ServerlessDatabaseCapacity", {"DBInstanceIdentifier": READER}, [0.5, 1.0], end)
    put(cloudwatch, "AWS/RDS", "VolumeBytesUsed", {"DBClusterIdentifier": CLUSTER}, [1e9, 1e9], end)
    put(cloudwatch, "AWS/ApplicationELB", "RequestCount",
        {"TargetGroup": TARGET_GROUP, "LoadBalancer": LOAD_BALANCER}, [100, 50], end)
    seen = count_calls(cloudwatch)

    section = collect_cloudwatch(TARGETS, timedelta(hours=1), (), now, lambda service, region: cloudwatch,
                                 progress=lambda message: None)

    assert seen["calls"] == [2 * 8 + 1 + 2 + 4] and section["calls"] == 1
    assert section["status"] == "collected" and section["window"]["periodSeconds"] == 60
    metrics = by_key(section)
    cpu = metrics[("CPUUtilization", WRITER)]
    assert (cpu["points"], cpu["average"], cpu["maximum"], cpu["p95"]) == (4, 25.0, 40.0, 40.0)
    assert metrics[("CPUUtilization", READER)]["points"] == 0
    assert metrics[("CPUUtilization", READER)]["average"] is None
    assert ("ServerlessDatabaseCapacity", WRITER) not in metrics          # provisioned: left out
    assert metrics[("ServerlessDatabaseCapacity", READER)]["average"] == 0.75
    assert metrics[("VolumeBytesUsed", CLUSTER)]["average"] == 1e9
    requests = metrics[("RequestCount", f"{TARGET_GROUP},{LOAD_BALANCER}")]
    assert (requests["sum"], requests["perHour"]) == (150.0, 150.0)


def test_more_than_500_queries_go_in_batches_of_500(cloudwatch):
    many = Targets("eu-west-1", CLUSTER, tuple(f"db-{i}" for i in range(63)), None, None, None, None)
    seen = count_calls(cloudwatch)
    section = collect_cloudwatch(many, timedelta(hours=1), (), datetime.now(timezone.utc),
                                 lambda service, region: cloudwatch, progress=lambda message: None)
    assert seen["calls"] == [500, 63 * 8 + 1 - 500]
    assert section["calls"] == 2
    assert len(section["metrics"]) == 63 * 7 + 1      # every metric but the absent Serverless capacity


def test_throttling_is_retried(cloudwatch):
    now = datetime.now(timezone.utc)
    put(cloudwatch, "AWS/RDS", "CPUUtilization", {"DBInstanceIdentifier": WRITER}, [42],
        now.replace(second=0, microsecond=0) - timedelta(minutes=1))
    seen = count_calls(cloudwatch)
    fail_first_attempts(cloudwatch, "Throttling", 400)
    section = collect_cloudwatch(TARGETS, timedelta(hours=1), (), now, lambda service, region: cloudwatch,
                                 progress=lambda message: None)
    assert section["status"] == "collected"
    assert len(seen["calls"]) == 1 and len(seen["attempts"]) == 2
    assert by_key(section)[("CPUUtilization", WRITER)]["average"] == 42


def test_access_denied_skips_the_cloudwatch_part_with_the_reason(cloudwatch):
    fail_first_attempts(cloudwatch, "AccessDenied", 403)
    section = collect_cloudwatch(TARGETS, timedelta(hours=1), (), datetime.now(timezone.utc),
                                 lambda service, region: cloudwatch, progress=lambda message: None)
    assert section["status"] == "skipped" and section["metrics"] == []
    assert section["reason"].startswith("CloudWatch could not be reached: GetMetricData failed: AccessDenied")


def test_free_storage_space_asked_for_is_exit_2_with_the_reason(tmp_path, capsys):
    outputs = write_outputs(tmp_path / "outputs.json", SimpleNamespace(port=5432, dbname="appdb"),
                            auroraClusterIdentifier=CLUSTER)
    assert main(["snapshot", "--outputs", str(outputs), "--out", str(tmp_path / "s.json"),
                 "--metric", "FreeStorageSpace"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --metric FreeStorageSpace: FreeStorageSpace is not an Aurora metric: Aurora storage "
        "grows on its own; the cluster volume is VolumeBytesUsed, which is collected by default")


# -- database and CloudWatch together ------------------------------------------------

def test_check_judges_aurora_metrics_against_a_baseline(cloudwatch, aurora, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("UMAMI_ADMIN_DSN", aurora.admin_dsn())
    monkeypatch.delenv("UMAMI_DB_PASSWORD", raising=False)
    budget = {"poolSize": 1, "poolsPerTask": 1, "maxTasks": 1, "migrationConnections": 0, "opsHeadroom": 0,
              "total": 1}
    outputs = write_outputs(tmp_path / "outputs.json", aurora, auroraClusterIdentifier=CLUSTER,
                            auroraInstanceIdentifiers=[WRITER], dbConnectionBudget=budget)
    now = datetime.now(timezone.utc)
    baseline_end = now.replace(second=0, microsecond=0) - timedelta(hours=3)
    current_end = now.replace(second=0, microsecond=0) - timedelta(minutes=1)
    writer = {"DBInstanceIdentifier": WRITER}
    for values, end in (((20, 5, 100, 50), baseline_end), ((25, 7, 110, 56), current_end)):
        cpu, connections, read_iops, write_iops = values
        put(cloudwatch, "AWS/RDS", "CPUUtilization", writer, [cpu] * 10, end)
        put(cloudwatch, "AWS/RDS", "DatabaseConnections", writer, [connections] * 10, end)
        put(cloudwatch, "AWS/RDS", "ReadIOPS", writer, [read_iops] * 10, end)
        put(cloudwatch, "AWS/RDS", "WriteIOPS", writer, [write_iops] * 10, end)
    put(cloudwatch, "AWS/RDS", "VolumeBytesUsed", {"DBClusterIdentifier": CLUSTER}, [2e9] * 3, baseline_end)

    baseline = take_snapshot(SnapshotRequest(load_outputs_file(outputs), window=timedelta(hours=1),
                                             sampling=Sampling(2, 0)),
                             now=now - timedelta(hours=3), progress=lambda message: None)
    snapshot.write(baseline, tmp_path / "baseline.json")
    capsys.readouterr()
    code = main(["check", "--baseline", str(tmp_path / "baseline.json"), "--outputs", str(outputs),
                 "--require-cloudwatch", "--format", "json", "--plot", str(tmp_path / "check.png"),
                 "--out", str(tmp_path / "now.json")])
    report = json.loads(capsys.readouterr().out)
    rows = rows_by_key(report)

    def row(name: str) -> dict:
        return rows[f"cloudwatch.AWS/RDS {name} DBInstanceIdentifier={WRITER}"]

    assert code == 1
    assert (row("CPUUtilization")["before"], row("CPUUtilization")["after"]) == (20, 25)
    assert row("CPUUtilization")["verdict"] == "fail"             # exactly +5 points: not "less than 5"
    # +2: Aurora counts every session, so the application's 2 plus Umami's budget of 1.
    assert row("DatabaseConnections")["verdict"] == "pass"
    assert row("DatabaseConnections")["threshold"] == "increase <= 3"
    assert row("DatabaseConnections")["note"].startswith("2 for the application + Umami's budget 1 = 1x1x1+0+0")
    assert row("ReadIOPS")["verdict"] == "pass"                   # exactly +10 %
    assert row("WriteIOPS")["verdict"] == "fail"                  # +12 %
    assert row("ReadLatency")["verdict"] == "no-data"
    assert row("ReadLatency")["note"] == "no data points before and after"
    volume = rows[f"cloudwatch.AWS/RDS VolumeBytesUsed DBClusterIdentifier={CLUSTER}"]
    assert volume["before"] == 2e9 and volume["after"] is None and "no data points after" in volume["note"]
    assert sorted(report["summary"]["broken"]) == sorted([f"cloudwatch.AWS/RDS {m} DBInstanceIdentifier={WRITER}"
                                                          for m in ("CPUUtilization", "WriteIOPS")])
    assert report["after"]["cloudwatch"]["window"]["length"] == "1h"   # the baseline's window
    assert snapshot.load(tmp_path / "now.json")["cloudwatch"]["calls"] == 1
    width, height = png_size(tmp_path / "check.png")
    assert width == 1600 and height > 600

    capsys.readouterr()
    assert main(["diff", str(tmp_path / "baseline.json"), str(tmp_path / "now.json")]) == 1
    text = capsys.readouterr().out
    assert "\nAurora (CloudWatch)\n" in text
    assert "THRESHOLDS BROKEN: 2 of" in text
