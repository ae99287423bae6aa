"""The CloudWatch dashboard body: the alarmed metrics, with their thresholds drawn in.

Built from the same alarm specs as the alarms, so every alarm has a graph and the
graph shows the line that fires it.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from components.monitoring_parts.alarms import AlarmSpec

WIDTH = 12
HEIGHT = 6


def metric_line(spec: AlarmSpec, dimensions: dict[str, str], label: str) -> list[Any]:
    line: list[Any] = [spec.namespace, spec.metric]
    for name, value in dimensions.items():
        line += [name, value]
    return line + [{"stat": spec.statistic, "period": spec.period, "label": label}]


def metric_widget(title: str, region: str, lines: list[list[Any]], thresholds: Sequence[tuple[str, float]]) -> dict[str, Any]:
    properties: dict[str, Any] = {"title": title, "view": "timeSeries", "region": region, "metrics": lines}
    if thresholds:
        properties["annotations"] = {"horizontal": [{"label": label, "value": value} for label, value in thresholds]}
    return {"type": "metric", "width": WIDTH, "height": HEIGHT, "properties": properties}


def traffic_widget(region: str, load_balancer: str) -> dict[str, Any]:
    """Requests and the load balancer's own 5xx (no target reached), for context next to the alarms."""
    lines = [
        ["AWS/ApplicationELB", "RequestCount", "LoadBalancer", load_balancer, {"stat": "Sum", "period": 300, "label": "requests"}],
        ["AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", "LoadBalancer", load_balancer,
         {"stat": "Sum", "period": 300, "label": "load balancer 5xx"}],
    ]
    return metric_widget("Traffic through the load balancer (per 5 minutes)", region, lines, [])


def dashboard_body(*, specs: Sequence[AlarmSpec], resolved_dimensions: Sequence[dict[str, str]],
                   alarm_arns: Sequence[str], region: str, title: str, load_balancer: str) -> str:
    """Traffic, then one graph per alarm with its threshold, then the alarms' states.

    `resolved_dimensions[i]` holds the plain values of `specs[i].dimensions`.
    """
    widgets: list[dict[str, Any]] = [
        {"type": "text", "width": 24, "height": 1, "properties": {"markdown": f"# {title}"}},
        traffic_widget(region, load_balancer),
    ]
    for spec, dimensions in zip(specs, resolved_dimensions):
        label = f"{spec.metric} ({spec.statistic})"
        widgets.append(metric_widget(spec.title, region, [metric_line(spec, dimensions, label)],
                                     [(f"alarm: {spec.key}", spec.threshold)]))
    widgets.append({
        "type": "alarm", "width": 24, "height": 4,
        "properties": {"title": "Alarms", "alarms": list(alarm_arns), "sortBy": "stateUpdatedTimestamp"},
    })
    return json.dumps({"widgets": widgets}, sort_keys=True)
