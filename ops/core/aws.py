"""boto3 clients for ops: standard retry mode, short timeouts, errors as one line."""

from __future__ import annotations

import boto3
import botocore.exceptions
from botocore.config import Config

from ops.core.errors import OpsError

RETRY_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=20,
)


def client(service: str, region: str | None = None):
    """A boto3 client with standard retries (throttling is retried with backoff)."""
    try:
        return boto3.session.Session().client(service, region_name=region, config=RETRY_CONFIG)
    except (botocore.exceptions.NoRegionError, botocore.exceptions.ProfileNotFound) as exc:
        raise OpsError(f"cannot create an AWS {service} client: {exc}") from None


def describe_error(exc: Exception) -> str:
    """One line for a botocore error, e.g. 'AccessDeniedException: User ... is not authorized'."""
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message', '').splitlines()[0] if error.get('Message') else ''}".rstrip(": ")
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return "no AWS credentials found (set AWS_PROFILE or the AWS_* environment variables)"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
