"""`UmamiMonitoring`: alarms on the service, the load balancer and Aurora, an SNS topic, a dashboard.

    SNS topic (optional e-mail subscription) <── every alarm (ALARM and OK transitions)
    dashboard: traffic, one graph per alarm with its threshold, the alarms' states
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.monitoring_parts.alarms import AlarmSpec, Watched, alarm_specs, aurora_targets
from components.config import DatabaseConfig, MonitoringConfig
from components.monitoring_parts.dashboard import dashboard_body
from facts import resource_base_name


class UmamiMonitoring(pulumi.ComponentResource):
    """CloudWatch alarms, their SNS topic and a dashboard for one Umami stack.

    Args:
        name: logical name of the component.
        environment: the stack's environment; names the topic, the alarms and the dashboard.
        monitoring: thresholds and the alarm e-mail address.
        database: Aurora identifiers and max_connections (the Aurora alarms need them).
        watched: ECS cluster and service names, ALB and target group ARN suffixes.
        tags: tags for the topic and the alarms (dashboards take no tags).
    """

    def __init__(self, name: str, *, environment: str, monitoring: MonitoringConfig, database: DatabaseConfig,
                 watched: Watched, tags: dict[str, str], opts: pulumi.ResourceOptions | None = None):
        super().__init__("umami:monitoring:UmamiMonitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        prefix = resource_base_name(environment)

        self.topic = aws.sns.Topic(
            f"{name}-alarms",
            name=f"{prefix}-alarms",
            display_name=f"Umami {environment} alarms",
            tags=tags,
            opts=child,
        )
        if monitoring.alarm_email:
            # AWS sends a confirmation mail; alarms reach the inbox once it is confirmed.
            aws.sns.TopicSubscription(
                f"{name}-alarm-email",
                topic=self.topic.arn,
                protocol="email",
                endpoint=monitoring.alarm_email,
                opts=child,
            )
        if not aurora_targets(database):
            pulumi.log.warn("neither umami:auroraClusterIdentifier nor umami:auroraInstanceIdentifiers is set: "
                            "the Aurora CPU and connection alarms are not created", resource=self)

        specs = alarm_specs(watched, monitoring, database)
        alarms = [self.alarm(name, prefix, spec, tags, child) for spec in specs]
        self.alarm_names = [f"{prefix}-{spec.key}" for spec in specs]

        region = aws.get_region_output().region
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=prefix,
            dashboard_body=pulumi.Output.all(
                region, watched.load_balancer, [alarm.arn for alarm in alarms],
                [pulumi.Output.from_input(dict(spec.dimensions)) for spec in specs],
            ).apply(lambda v: dashboard_body(
                specs=specs, region=v[0], load_balancer=v[1], alarm_arns=v[2], resolved_dimensions=v[3],
                title=f"Umami {environment}",
            )),
            opts=child,
        )

        self.alarm_topic_arn = self.topic.arn
        self.dashboard_name = self.dashboard.dashboard_name
        self.register_outputs({
            "alarmNames": self.alarm_names,
            "alarmTopicArn": self.topic.arn,
            "dashboardName": self.dashboard.dashboard_name,
        })

    def alarm(self, name: str, prefix: str, spec: AlarmSpec, tags: dict[str, str],
              opts: pulumi.ResourceOptions) -> aws.cloudwatch.MetricAlarm:
        """One metric alarm notifying the topic on ALARM and on recovery."""
        return aws.cloudwatch.MetricAlarm(
            f"{name}-{spec.key}",
            name=f"{prefix}-{spec.key}",
            alarm_description=spec.description,
            namespace=spec.namespace,
            metric_name=spec.metric,
            dimensions=dict(spec.dimensions),
            statistic=None if spec.is_percentile else spec.statistic,
            extended_statistic=spec.statistic if spec.is_percentile else None,
            # A handful of requests must not decide a percentile alarm.
            evaluate_low_sample_count_percentiles="ignore" if spec.is_percentile else None,
            comparison_operator=spec.comparison,
            threshold=spec.threshold,
            period=spec.period,
            evaluation_periods=spec.evaluation_periods,
            datapoints_to_alarm=spec.evaluation_periods,
            treat_missing_data=spec.treat_missing_data,
            alarm_actions=[self.topic.arn],
            ok_actions=[self.topic.arn],
            tags=tags,
            opts=opts,
        )
