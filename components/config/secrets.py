"""The secrets section: names and encryption of the Secrets Manager secrets."""

from __future__ import annotations

import re
from dataclasses import dataclass

from components.config.reader import Reader

KMS_KEY = re.compile(
    r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key/[0-9a-f-]{36}|alias/[A-Za-z0-9/_-]+)"
    r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|alias/[A-Za-z0-9/_-]+)$"
)
SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")


@dataclass(frozen=True)
class SecretsConfig:
    """Names and encryption of the Secrets Manager secrets."""

    db_secret_name: str
    app_secret_name: str
    kms_key_id: str | None
    recovery_window_days: int


def kms_key_problem(value: str) -> str | None:
    return None if KMS_KEY.match(value) else "is not a KMS key id, key ARN or alias"


def secret_name_problem(value: str) -> str | None:
    if value.startswith("arn:"):
        return "is an ARN; use a secret name such as observability/umami-db-credentials"
    return None if SECRET_NAME.match(value) else "is not a valid secret name; use letters, digits and /_+=.@-"


def read_secrets(reader: Reader) -> SecretsConfig:
    db_name = reader.string("secretName", "observability/umami-db-credentials", check=secret_name_problem)
    app_name = reader.string("appSecretName", "observability/umami-app-secret", check=secret_name_problem)
    if db_name == app_name:
        reader.fail("appSecretName", app_name, f"equals {reader.key('secretName')}; the two secrets need distinct names")
    window = reader.integer("secretRecoveryWindowDays", 7, 0, 30, " days")
    if 0 < window < 7:
        reader.fail("secretRecoveryWindowDays", window, "is not allowed; use 0 (delete at once) or 7-30 days")
    return SecretsConfig(
        db_secret_name=db_name,
        app_secret_name=app_name,
        kms_key_id=reader.string("kmsKeyId", check=kms_key_problem),
        recovery_window_days=window,
    )
