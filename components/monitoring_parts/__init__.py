"""What UmamiMonitoring (components/monitoring.py) composes: the alarm specifications and the dashboard."""
