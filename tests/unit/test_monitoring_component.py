"""UmamiMonitoring under mocks: alarms with the right metrics, dimensions and thresholds, SNS, dashboard."""

import json

import pytest

from tests.stack import run_dev

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
AURORA = {"auroraClusterIdentifier": "app-aurora", "maxConnections": "1000"}


@pytest.fixture(scope="module")
def run():
    return run_dev(AURORA)


def alarms(run):
    return {r.inputs["name"]: r for r in run.by_type(ALARM)}


def alarm(run, key):
    return alarms(run)[f"umami-dev-{key}"].inputs


def suffixes(run):
    return {"LoadBalancer": run.one("aws:lb/loadBalancer:LoadBalancer").state["arnSuffix"],
            "TargetGroup": run.one("aws:lb/targetGroup:TargetGroup").state["arnSuffix"]}


ECS_DIMENSIONS = {"ClusterName": "umami-dev", "ServiceName": "umami-dev"}


@pytest.mark.parametrize("key, namespace, metric, statistic, comparison, threshold", [
    ("ecs-cpu-high", "AWS/ECS", "CPUUtilization", "Average", "GreaterThanThreshold", 85),
    ("ecs-memory-high", "AWS/ECS", "MemoryUtilization", "Average", "GreaterThanThreshold", 85),
    ("ecs-running-tasks-low", "ECS/ContainerInsights", "RunningTaskCount", "Minimum", "LessThanThreshold", 1),
])
def test_ecs_alarms(run, key, namespace, metric, statistic, comparison, threshold):
    inputs = alarm(run, key)
    assert (inputs["namespace"], inputs["metricName"], inputs["statistic"]) == (namespace, metric, statistic)
    assert (inputs["comparisonOperator"], inputs["threshold"]) == (comparison, threshold)
    assert inputs["dimensions"] == ECS_DIMENSIONS


def test_no_running_task_data_counts_as_an_outage(run):
    assert alarm(run, "ecs-running-tasks-low")["treatMissingData"] == "breaching"


def test_unhealthy_hosts_at_least_one(run):
    inputs = alarm(run, "alb-unhealthy-hosts")
    assert (inputs["namespace"], inputs["metricName"]) == ("AWS/ApplicationELB", "UnHealthyHostCount")
    assert (inputs["comparisonOperator"], inputs["threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
    assert inputs["dimensions"] == suffixes(run)


def test_5xx_alarm_counts_the_targets_errors_not_the_load_balancers(run):
    inputs = alarm(run, "target-5xx")
    assert inputs["metricName"] == "HTTPCode_Target_5XX_Count"
    assert (inputs["statistic"], inputs["comparisonOperator"], inputs["threshold"]) == (
        "Sum", "GreaterThanOrEqualToThreshold", 10)
    assert inputs["dimensions"] == suffixes(run)
    assert alarm(run_dev({"target5xxAlarmCount": "25"}), "target-5xx")["threshold"] == 25


def test_response_time_alarm_on_p95(run):
    inputs = alarm(run, "target-response-time")
    assert inputs["metricName"] == "TargetResponseTime" and inputs["dimensions"] == suffixes(run)
    assert inputs["extendedStatistic"] == "p95" and "statistic" not in inputs
    assert inputs["threshold"] == 2 and inputs["evaluateLowSampleCountPercentiles"] == "ignore"
    assert alarm(run_dev({"responseTimeAlarmMs": "1500"}), "target-response-time")["threshold"] == 1.5


def test_aurora_alarms_use_the_storys_thresholds_on_the_writer(run):
    writer = {"DBClusterIdentifier": "app-aurora", "Role": "WRITER"}
    cpu = alarm(run, "aurora-cpu-high-writer")
    assert (cpu["namespace"], cpu["metricName"], cpu["dimensions"]) == ("AWS/RDS", "CPUUtilization", writer)
    assert (cpu["comparisonOperator"], cpu["threshold"]) == ("GreaterThanThreshold", 70)
    connections = alarm(run, "aurora-connections-high-writer")
    assert (connections["metricName"], connections["dimensions"]) == ("DatabaseConnections", writer)
    assert (connections["comparisonOperator"], connections["threshold"]) == ("GreaterThanThreshold", 800)


def test_connection_threshold_follows_max_connections():
    run = run_dev({**AURORA, "maxConnections": "405"})
    assert alarm(run, "aurora-connections-high-writer")["threshold"] == 324


def test_aurora_alarms_per_instance_when_instances_are_listed():
    run = run_dev({**AURORA, "auroraInstanceIdentifiers": ["app-aurora-1", "app-aurora-2"]})
    for instance in ("app-aurora-1", "app-aurora-2"):
        assert alarm(run, f"aurora-cpu-high-{instance}")["dimensions"] == {"DBInstanceIdentifier": instance}
        assert alarm(run, f"aurora-connections-high-{instance}")["threshold"] == 800
    assert "umami-dev-aurora-cpu-high-writer" not in alarms(run)


def test_no_aurora_alarms_without_identifiers():
    run = run_dev({"dbHost": "db.internal.example.com"})  # not a cluster endpoint: nothing to derive
    assert not [name for name in alarms(run) if "aurora" in name]
    assert len(alarms(run)) == 6


def test_every_alarm_notifies_the_topic_and_is_tagged(run):
    topic = run.one("aws:sns/topic:Topic")
    assert topic.inputs["name"] == "umami-dev-alarms"
    assert run.outputs["alarmTopicArn"] == topic.state["arn"]
    assert len(alarms(run)) == 8
    for name, resource in alarms(run).items():
        inputs = resource.inputs
        assert inputs["alarmActions"] == [topic.state["arn"]] and inputs["okActions"] == [topic.state["arn"]], name
        assert inputs["tags"]["Component"] == "monitoring" and inputs["tags"]["Project"] == "UserMetrics", name
        # CloudWatch takes either a statistic or a percentile, never both.
        assert ("statistic" in inputs) != ("extendedStatistic" in inputs), name
        assert inputs["evaluationPeriods"] >= 1 and inputs["datapointsToAlarm"] <= inputs["evaluationPeriods"]
        assert inputs["period"] % 60 == 0
    assert topic.inputs["tags"]["Component"] == "monitoring"


def test_alarm_names_output_lists_every_alarm(run):
    names = run.outputs["alarmNames"]
    assert len(names) == len(set(names)) == len(run.by_type(ALARM))
    assert set(names) == set(alarms(run))


def test_email_subscription_only_when_configured(run):
    assert run.by_type("aws:sns/topicSubscription:TopicSubscription") == []
    with_email = run_dev({"alarmEmail": "ops@example.com"})
    subscription = with_email.one("aws:sns/topicSubscription:TopicSubscription").inputs
    assert subscription == {"topic": with_email.one("aws:sns/topic:Topic").state["arn"],
                            "protocol": "email", "endpoint": "ops@example.com"}


def metric_of(line):
    """(namespace, metric, dimensions) of a dashboard metric line [ns, metric, name, value, ..., {options}]."""
    names_values = line[2:-1]
    return line[0], line[1], dict(zip(names_values[::2], names_values[1::2]))


def test_dashboard_graphs_every_alarmed_metric_with_its_threshold(run):
    dashboard = run.one("aws:cloudwatch/dashboard:Dashboard").inputs
    assert dashboard["dashboardName"] == "umami-dev" == run.outputs["dashboardName"]
    body = json.loads(dashboard["dashboardBody"])
    graphs = [w["properties"] for w in body["widgets"] if w["type"] == "metric"]
    assert all(g["region"] == "eu-west-1" for g in graphs)
    for name, resource in alarms(run).items():
        inputs = resource.inputs
        expected = (inputs["namespace"], inputs["metricName"], inputs["dimensions"])
        graph = next((g for g in graphs if expected in [metric_of(line) for line in g["metrics"]]), None)
        assert graph is not None, f"no graph for {name}"
        line = next(line for line in graph["metrics"] if metric_of(line) == expected)
        assert line[-1]["stat"] == inputs.get("statistic", inputs.get("extendedStatistic")), name
        assert line[-1]["period"] == inputs["period"], name
        assert inputs["threshold"] in [a["value"] for a in graph["annotations"]["horizontal"]], name
    status = next(w["properties"] for w in body["widgets"] if w["type"] == "alarm")
    assert sorted(status["alarms"]) == sorted(r.state["arn"] for r in run.by_type(ALARM))


def test_dashboard_shows_traffic_of_this_load_balancer(run):
    body = json.loads(run.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    lines = [line for w in body["widgets"] if w["type"] == "metric" for line in w["properties"]["metrics"]]
    request_lines = [line for line in lines if line[1] == "RequestCount"]
    assert request_lines and request_lines[0][3] == suffixes(run)["LoadBalancer"]


def test_monitoring_resources_are_children_of_the_component(run):
    component = next(r for r in run.resources if r.type == "umami:monitoring:UmamiMonitoring")
    owned = [r for r in run.resources if r.type.startswith(("aws:cloudwatch/metricAlarm", "aws:cloudwatch/dashboard",
                                                            "aws:sns/"))]
    assert owned and all(r.parent == component.urn for r in owned)
