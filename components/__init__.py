"""Pulumi ComponentResources for Umami on AWS: database, secrets, service, monitoring."""
