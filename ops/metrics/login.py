"""Who a snapshot connects as: an admin when one is available, else the umami role.

An admin (UMAMI_ADMIN_DSN, or the admin secret named in the outputs) is the
better observer; the umami role still sees every number of the snapshot except
the state of other roles' sessions, and the snapshot records which one it was.
"""

from __future__ import annotations

from dataclasses import dataclass

from ops.core import credentials
from ops.core.db import Target
from ops.core.errors import OpsError
from ops.core.outputs import StackOutputs

AUTO = "auto"
ADMIN = "admin"
UMAMI = "umami"
CHOICES = (AUTO, ADMIN, UMAMI)


@dataclass(frozen=True)
class Login:
    """A connection target, where its password came from, and why this role was chosen."""

    target: Target
    source: str
    kind: str            # ADMIN or UMAMI
    note: str | None     # set when `auto` fell back to the umami role


def choose_login(outputs: StackOutputs, mode: str = AUTO, *, host: str | None = None,
                 port: int | None = None) -> Login:
    """The login for `mode` (auto, admin or umami); admin credentials that fail to load
    are an error in `admin` mode and a recorded fallback in `auto` mode."""
    if mode not in CHOICES:
        raise OpsError(f"--db-user={mode!r}; use one of {', '.join(CHOICES)}")
    note = None
    if mode in (AUTO, ADMIN):
        try:
            admin = credentials.admin_target(outputs, host=host, port=port)
        except OpsError as exc:
            if mode == ADMIN:
                raise
            admin, note = None, f"admin credentials unavailable ({exc}); connected as the umami role"
        if admin is not None:
            target, source = admin
            return Login(target, source, ADMIN, None)
        if mode == ADMIN:
            raise OpsError(f"no admin credentials: set {credentials.ENV_ADMIN_DSN} or the stack's adminSecretArn")
        note = note or (f"no admin credentials ({credentials.ENV_ADMIN_DSN} unset, no adminSecretArn); "
                        "connected as the umami role, which cannot see other roles' session states")
    target, source = credentials.umami_target(outputs, host=host, port=port)
    return Login(target, source, UMAMI, note)
