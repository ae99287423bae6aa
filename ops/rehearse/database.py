"""Where the rehearsal runs: the throwaway Aurora-like cluster or the --dsn database, and its admin login."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ops.core.cli import progress
from ops.core.db import Target, redact, target_from_dsn
from ops.core.errors import OpsError
from ops.engine import pgcluster
from ops.rehearse.state import State

# -- where the rehearsal runs -------------------------------------------------------

@dataclass
class Database:
    """The database being rehearsed into and the admin login the provider will use."""

    admin: Target
    local: pgcluster.LocalCluster | None = None
    app_role: str | None = None


def local_database(state: State, base: Path) -> Database:
    """Start (creating on first use) the throwaway Aurora-like cluster of this stack."""
    cluster_state = state.data.get("cluster")
    cluster = pgcluster.LocalCluster(base / "cluster", port=cluster_state["port"] if cluster_state else None)
    if not cluster.initialized():
        progress(f"creating a throwaway Aurora-like PostgreSQL 15 in {cluster.base_dir}")
        superuser_password = pgcluster.new_password()
        cluster.init(superuser_password)
        cluster.start()
        admin, app = pgcluster.bootstrap_aurora_like(cluster, superuser_password)
        state.data["cluster"] = {"port": cluster.port, "superuser_password": superuser_password,
                                 "admin": [admin.user, admin.password], "app": [app.user, app.password]}
        state.save()
    else:
        if not cluster.ca_file.exists():
            raise OpsError(f"the throwaway cluster in {cluster.base_dir} was created without TLS; stop it "
                           f"(--stop) and delete {base} to create a TLS-only one")
        cluster.start()
    admin_user, admin_password = state.data["cluster"]["admin"]
    admin = Target(host="127.0.0.1", port=cluster.port, dbname=pgcluster.APP_DATABASE,
                   user=admin_user, password=admin_password, sslmode="verify-full",
                   sslrootcert=str(cluster.ca_file))
    return Database(admin=admin, local=cluster, app_role=state.data["cluster"]["app"][0])


def _pgpass_unescape(field_text: str) -> list[str]:
    fields, current, escaped = [], "", False
    for char in field_text:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            fields.append(current)
            current = ""
        else:
            current += char
    fields.append(current)
    return fields


def dsn_database(dsn: str) -> Database:
    """The --dsn admin; without a password in the DSN, libpq's: PGPASSWORD, then the passfile
    (the DSN's passfile, PGPASSFILE or ~/.pgpass; ignored, as libpq does, when group/world readable)."""
    target = target_from_dsn(dsn)
    if target.password:
        return Database(admin=target)
    if os.environ.get("PGPASSWORD"):
        return Database(admin=Target(**{**target.__dict__, "password": os.environ["PGPASSWORD"]}))
    passfile = Path(target.passfile or os.environ.get("PGPASSFILE") or Path.home() / ".pgpass").expanduser()
    if passfile.is_file():
        if passfile.stat().st_mode & 0o077:
            raise OpsError(f"--dsn has no password and the passfile {passfile} is readable by others "
                           "(libpq ignores it): chmod 0600 it, or set PGPASSWORD")
        for line in passfile.read_text().splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            fields = _pgpass_unescape(line)
            if len(fields) < 5:
                continue
            host, port, db, user, password = fields[0], fields[1], fields[2], fields[3], ":".join(fields[4:])
            wanted = (target.host, str(target.port), target.dbname, target.user)
            if all(pattern in ("*", value) for pattern, value in zip((host, port, db, user), wanted)):
                return Database(admin=Target(**{**target.__dict__, "password": password}))
    raise OpsError(f"--dsn {redact(dsn)!r} has no password, PGPASSWORD is unset and {passfile} has no entry "
                   f"for {target.describe()}")


