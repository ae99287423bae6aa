"""python -m ops.drill: the recovery drill, one running task stopped and its replacement timed.

Modules: `__main__` (the command line), `service` (the ECS service and its target group:
DescribeServices, ListTasks, DescribeTasks, StopTask, DescribeTargetHealth), `heartbeat`
(GET /api/heartbeat through the load balancer), `preflight` (refuse unless the service is whole
and settled; choose the task), `drill` (stop, poll, timeline) and `report` (text/json).
"""
