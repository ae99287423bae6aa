"""What UmamiService (components/service.py) composes: the container definition, task IAM roles,
security groups, the load balancer, autoscaling and service discovery."""
