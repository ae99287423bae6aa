"""The Aurora master user the postgresql provider connects as, resolved only in an update.

A preview (`pulumi preview`, the preview phase of `pulumi up`, `ops.preview plan`) reads no secret
value, so whoever previews needs no secretsmanager:GetSecretValue (docs/preview-role-policy.json):

- the user name is config: `umami:adminUsername` (with `umami:adminSecretArn` it defaults to
  `postgres`, and an update refuses a secret whose user differs), so the schema's owner and the
  default privileges show their real values in a preview;
- the password is PREVIEW_PASSWORD, and in a preview the provider ignores changes to `password`:
  the engine keeps the password of the last update in the provider's inputs (pulumi/pulumi,
  step_generator.go: ignored properties are set back to their old values before any diff), so a
  preview shows no provider change and the placeholder reaches the plugin only before the first
  update. It never reaches a server: terraform-provider-postgresql's providerConfigure only builds
  a client (config.go `NewClient`) and connects in a resource's create/read/update/delete
  (helpers.go `PGResourceFunc` -> `Client.Connect`), none of which a preview runs; it has no
  CustomizeDiff that would connect while planning.

Were the placeholder ever compared with a real password, pulumi-terraform-bridge's DiffConfig
(pkg/tfbridge/provider.go, configDiffer) would call it an update of the provider, not a replacement
that replaces every resource: pulumi-postgresql marks no config key ForcesProviderReplace.

An unknown password would also never be sent (the engine skips Configure when a provider input is
unknown, provider_plugin.go), but then every postgresql resource previews as "diff unavailable",
an update with a warning: no review could tell a real change from that.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from components.config import DEFAULT_ADMIN_USERNAME, NAMESPACE, DatabaseConfig, show
from components.database import AdminCredentials
from facts import DEFAULT_ROLE

PROVIDER_TYPE = "pulumi:providers:postgresql"
# The provider's password in a preview: a placeholder that is no one's password.
PREVIEW_PASSWORD = "no-secret-is-read-in-a-preview"


def admin_credentials(db: DatabaseConfig) -> AdminCredentials:
    """The admin login: in a preview the configured user and the placeholder; in an update the user
    and the password of `adminSecretArn` (e.g. the RDS-managed master secret, JSON
    `{username, password}`) or of `adminUsername`/`adminPassword`."""
    if pulumi.runtime.is_dry_run():
        keep_deployed_password_in_previews()
        return AdminCredentials(username=db.admin_username, password=pulumi.Output.secret(PREVIEW_PASSWORD))
    if db.admin_secret_arn is None:
        return AdminCredentials(username=db.admin_username, password=db.admin_password)
    return AdminCredentials(username=db.admin_username, password=password_from_secret(db, db.admin_secret_arn))


def keep_deployed_password_in_previews() -> None:
    """Every postgresql provider declared from now on ignores changes to `password` (previews only:
    an update must pass a rotated master password on)."""
    def keep_password(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        if args.type_ != PROVIDER_TYPE:
            return None
        ignore = pulumi.ResourceOptions(ignore_changes=["password"])
        return pulumi.ResourceTransformationResult(args.props, pulumi.ResourceOptions.merge(args.opts, ignore))

    pulumi.runtime.register_stack_transformation(keep_password)


def password_from_secret(db: DatabaseConfig, arn: str) -> pulumi.Output[str]:
    """The secret's password, once its user is the configured admin; else a one-line RunError, and
    the provider (which waits for the password) is never declared."""
    secret_string = aws.secretsmanager.get_secret_version_output(secret_id=arn).secret_string
    return pulumi.Output.secret(secret_string.apply(lambda text: _checked_password(text, db, arn)))


def _checked_password(secret_string: str, db: DatabaseConfig, arn: str) -> str:
    username = _field(secret_string, "username", arn)
    source = f"{NAMESPACE}:adminSecretArn {arn}"
    if username == db.role:  # the provider would create, and on destroy drop, the admin itself
        raise pulumi.RunError(f"{NAMESPACE}:roleName={show(db.role)} is the admin user of {source}; "
                              f"use a dedicated role such as {DEFAULT_ROLE}")
    if username != db.admin_username:  # a preview showed the configured user as owner: never another
        raise pulumi.RunError(f"{source} is the login of {show(username)}, not of {NAMESPACE}:adminUsername="
                              f"{show(db.admin_username)} ({DEFAULT_ADMIN_USERNAME} unless set); set "
                              f"{NAMESPACE}:adminUsername={show(username)}")
    return _field(secret_string, "password", arn)


def _field(secret_string: str, key: str, arn: str) -> str:
    try:
        value = json.loads(secret_string)[key]
    except (ValueError, KeyError, TypeError):
        raise pulumi.RunError(f"admin secret {arn} has no '{key}' field; expected the RDS master secret JSON") from None
    if not isinstance(value, str) or not value:
        raise pulumi.RunError(f"admin secret {arn} field '{key}' is empty")
    return value
