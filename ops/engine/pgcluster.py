"""A throwaway local PostgreSQL 15 cluster shaped like Aurora.

Aurora's master user is not a superuser: it has CREATEROLE and CREATEDB and is a
member of `rds_superuser`, while the real superuser `rdsadmin` belongs to AWS.
`LocalCluster` reproduces that: `rdsadmin` is the bootstrap superuser (used
only to build the fixture), `postgres` is the Aurora-like admin, and every TCP
login uses scram-sha-256 with a real password.

Like RDS, the cluster speaks TLS only: at init it gets its own private CA (the
public half is `ca_file`; the CA's key is discarded once the server certificate
is signed) and a server certificate for `localhost` and `127.0.0.1`; plain-text
connections are refused by pg_hba. `tls=False` builds a plain cluster instead,
for tests of what clients do against a server without TLS.

When running as root, the server runs as the `postgres` OS user, because
PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pwd
import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
import psycopg
from psycopg import sql

from ops.core.errors import OpsError

PG_BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin",)
SUPERUSER = "rdsadmin"
ADMIN = "postgres"
APP_DATABASE = "appdb"
APP_SCHEMA = "app"
APP_ROLE = "app_user"
SERVER_NAMES = ("localhost", "127.0.0.1")
CERT_DAYS = 3650  # the cluster may be kept for a long time under .rehearsal/


def find_pg_bin() -> Path:
    """The directory holding PostgreSQL 15's initdb and pg_ctl."""
    override = os.environ.get("PG_BIN")
    for candidate in ([override] if override else []) + list(PG_BIN_CANDIDATES):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    raise OpsError(
        "PostgreSQL 15 server binaries not found in /usr/lib/postgresql/15/bin "
        "(install postgresql-15 or set PG_BIN)"
    )


def server_os_user() -> str | None:
    """PostgreSQL refuses to run as root; as root, run it as the `postgres` OS user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise OpsError("running as root needs the 'postgres' OS user to run PostgreSQL "
                       "(apt-get install postgresql-15 creates it)") from None
    return "postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Credentials:
    user: str
    password: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def issue_certificates(names: tuple[str, ...], common_name: str = "umami-rehearsal") -> tuple[bytes, bytes, bytes]:
    """A fresh private CA and a server certificate it signs for `names` (DNS names or IPs).

    Returns (CA certificate PEM, server certificate PEM, server key PEM). The CA's
    key never leaves this function: nothing else can be signed with it.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=CERT_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{common_name} CA {secrets.token_hex(4)}")  # unique: no two clusters' CAs look alike
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0])).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return (
        ca_cert.public_bytes(serialization.Encoding.PEM),
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()),
    )


class LocalCluster:
    """A PostgreSQL 15 cluster in `base_dir`, listening on 127.0.0.1 only.

    `tls` (default) makes it TLS-only with a certificate for `server_names`;
    `tls=False` makes a plain-text cluster.
    """

    def __init__(self, base_dir: Path, port: int | None = None, *, tls: bool = True,
                 server_names: tuple[str, ...] = SERVER_NAMES):
        self.base_dir = Path(base_dir)
        self.data_dir = self.base_dir / "pgdata"
        self.socket_dir = self.base_dir / "sock"
        self.port = port or free_port()
        self.tls = tls
        self.server_names = server_names
        self.bin = find_pg_bin()
        self._os_user = server_os_user()

    @property
    def ca_file(self) -> Path | None:
        """The PEM of the CA that signed the server certificate (public; None without TLS)."""
        return self.base_dir / "ca.pem" if self.tls else None

    # -- lifecycle -------------------------------------------------------
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self, superuser_password: str) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        pwfile = self.base_dir / "initdb.pw"
        pwfile.write_text(superuser_password + "\n")
        self._hand_to_server_user(self.base_dir, pwfile, self.socket_dir)
        try:
            self._run(
                "initdb", "-D", str(self.data_dir), "-U", SUPERUSER,
                "--pwfile", str(pwfile), "--auth=scram-sha-256",
                "--encoding=UTF8", "--locale=C", "--no-sync",
            )
        finally:
            pwfile.unlink()
        if self.tls:
            self._write_tls_files()
            hba = ("hostssl all all 127.0.0.1/32 scram-sha-256\n"
                   "hostnossl all all 0.0.0.0/0 reject\n")  # as RDS with rds.force_ssl=1
        else:
            hba = "host all all 127.0.0.1/32 scram-sha-256\n"
        (self.data_dir / "pg_hba.conf").write_text(hba)  # TCP only: nothing uses the socket
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(
                "\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 100\nshared_buffers = 32MB\n"
                "password_encryption = 'scram-sha-256'\n"
                f"ssl = {'on' if self.tls else 'off'}\n"  # server.crt / server.key in the data dir
            )

    def _write_tls_files(self) -> None:
        ca_pem, cert_pem, key_pem = issue_certificates(self.server_names)
        self.ca_file.write_bytes(ca_pem)
        self.ca_file.chmod(0o644)
        (self.data_dir / "server.crt").write_bytes(cert_pem)
        key_file = self.data_dir / "server.key"
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key_pem)
        # The server refuses a key readable by others or owned by another user.
        self._hand_to_server_user(self.data_dir / "server.crt", key_file)

    def start(self) -> None:
        if self.is_running():
            return
        self.socket_dir.mkdir(exist_ok=True)
        self._hand_to_server_user(self.socket_dir)
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.base_dir / "server.log"),
            "-o", f"-p {self.port} -k {self.socket_dir}", "-w", "-t", "30", "start",
        )

    def stop(self) -> None:
        if self.is_running():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def is_running(self) -> bool:
        pidfile = self.data_dir / "postmaster.pid"
        if not pidfile.exists():
            return False
        try:
            os.kill(int(pidfile.read_text().split()[0]), 0)
        except (ProcessLookupError, ValueError):
            return False
        except PermissionError:
            return True
        return True

    # -- connections -----------------------------------------------------
    def conninfo(self, user: str, password: str, dbname: str = "postgres") -> str:
        """libpq conninfo: verified TLS (CA and host name) or, on a plain cluster, no TLS."""
        tls = dict(sslmode="verify-full", sslrootcert=str(self.ca_file)) if self.tls else dict(sslmode="disable")
        return psycopg.conninfo.make_conninfo(
            host="127.0.0.1", port=self.port, user=user, password=password,
            dbname=dbname, connect_timeout=10, **tls,
        )

    def connect(self, user: str, password: str, dbname: str = "postgres", **kw) -> psycopg.Connection:
        return psycopg.connect(self.conninfo(user, password, dbname), **kw)

    # -- helpers ---------------------------------------------------------
    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run(
            [str(self.bin / tool), *args], capture_output=True, text=True, cwd="/",
            user=self._os_user, group=self._os_user,  # None: run as ourselves
            env={**os.environ, "LC_ALL": "C"},
        )
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise OpsError(f"{tool} failed: {detail[-1] if detail else 'exit ' + str(result.returncode)}")

    def _hand_to_server_user(self, *paths: Path) -> None:
        if not self._os_user:
            return
        entry = pwd.getpwnam(self._os_user)
        for path in paths:
            os.chown(path, entry.pw_uid, entry.pw_gid)
        # The server user must be able to reach base_dir through its parents.
        for parent in self.base_dir.resolve().parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                os.chmod(parent, mode | 0o001)
        os.chmod(self.base_dir, 0o700)


def new_password() -> str:
    return secrets.token_urlsafe(24)


DB_OWNER = "app_owner"


def bootstrap_aurora_like(cluster: LocalCluster, superuser_password: str, *,
                          db_owner: str | None = None) -> tuple[Credentials, Credentials]:
    """Create the Aurora-like admin and a small application with data.

    Returns the admin's and the application role's credentials. The
    application lives in database `appdb`: schema `app` with tables, a view,
    a sequence and rows, owned by `app_user`, plus a table in `public`.

    `db_owner` (e.g. DB_OWNER): `appdb` is owned by that (NOLOGIN) role instead of the
    admin, and the admin is not a member of it, as when an application team created its
    database: the admin then has no CREATE on the database (the provider's schema create
    grants itself the owner's role for the statement, withRolesGranted).
    """
    admin = Credentials(ADMIN, new_password())
    app = Credentials(APP_ROLE, new_password())
    with cluster.connect(SUPERUSER, superuser_password, autocommit=True) as conn:
        conn.execute("CREATE ROLE rds_superuser NOLOGIN")
        conn.execute("GRANT pg_monitor TO rds_superuser")  # as on RDS: it sees every session
        conn.execute(
            sql.SQL(
                "CREATE ROLE {} LOGIN PASSWORD {} NOSUPERUSER CREATEROLE CREATEDB "
                "IN ROLE rds_superuser"
            ).format(sql.Identifier(admin.user), sql.Literal(admin.password))
        )
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(app.user), sql.Literal(app.password)
            )
        )
        if db_owner:
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(db_owner)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(APP_DATABASE), sql.Identifier(db_owner or admin.user)
            )
        )
    if db_owner:
        # The application's objects, made by the superuser: the admin has no say in this database.
        with cluster.connect(SUPERUSER, superuser_password, APP_DATABASE, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
                sql.Identifier(APP_SCHEMA), sql.Identifier(app.user)))
            conn.execute(sql.SQL("GRANT CREATE, USAGE ON SCHEMA public TO {}").format(sql.Identifier(app.user)))
    else:
        with cluster.connect(admin.user, admin.password, APP_DATABASE, autocommit=True) as conn:
            # Like most RDS databases, public is owned by the admin (PG15 default: pg_database_owner).
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(app.user), sql.Identifier(admin.user)))
            conn.execute(
                sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
                    sql.Identifier(APP_SCHEMA), sql.Identifier(app.user)
                )
            )
            conn.execute(sql.SQL("GRANT CREATE, USAGE ON SCHEMA public TO {}").format(sql.Identifier(app.user)))
            conn.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(app.user), sql.Identifier(admin.user)))
    with cluster.connect(app.user, app.password, APP_DATABASE, autocommit=True) as conn:
        conn.execute(APP_FIXTURE_SQL)
    return admin, app


APP_FIXTURE_SQL = """
CREATE TABLE app.customers (id bigserial PRIMARY KEY, email text NOT NULL, created_at timestamptz DEFAULT now());
CREATE TABLE app.orders (id bigserial PRIMARY KEY, customer_id bigint REFERENCES app.customers(id), total numeric(10,2));
CREATE VIEW app.order_totals AS SELECT customer_id, sum(total) AS total FROM app.orders GROUP BY customer_id;
CREATE SEQUENCE app.invoice_numbers;
INSERT INTO app.customers (email) SELECT 'user' || g || '@example.com' FROM generate_series(1, 50) g;
INSERT INTO app.orders (customer_id, total) SELECT 1 + g % 50, g * 1.5 FROM generate_series(1, 200) g;
CREATE TABLE public.settings (key text PRIMARY KEY, value text);
INSERT INTO public.settings VALUES ('theme', 'dark'), ('plan', 'pro');
"""
