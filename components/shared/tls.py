"""TLS to the database: the modes the stack supports, the CA it trusts, and the URL parameters
that make each of Umami's two PostgreSQL clients honour the mode.

Umami 3.1 parses one DATABASE_URL twice, with different rules:
- at runtime node-postgres (pg-connection-string 2.12.0 `parse()`): `prefer|require|verify-ca|
  verify-full` all mean verify-full (CA and host name) unless `uselibpqcompat=true` restores libpq's
  meaning; `sslrootcert` is the CA file; `sslcert` is read as a client certificate;
- at start `prisma migrate deploy`, Prisma's native schema engine (prisma-engines
  quaint/src/connector/postgres/url.rs `PostgresNativeUrl::parse_query_params`): `sslmode` knows
  only disable|prefer|require (anything else is prefer); `sslaccept=strict|accept_invalid_certs`
  (default: accept invalid); `sslcert` is a CA to trust; other parameters are ignored.

The CA is `rds` (Amazon RDS's bundle for the stack's region, components/shared/rds_ca/<region>.pem) or a
PEM file. In the container it is written to CONTAINER_CA_PATH before node starts (components/service_parts/container.py).
"""

from __future__ import annotations

import re
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from facts import STACK_SSL_MODES as SSL_MODES
from facts import VERIFYING_SSL_MODES as VERIFYING_MODES  # noqa: F401  (re-exported)

RDS = "rds"
RDS_CA_DIR = Path(__file__).resolve().parent / "rds_ca"
CONTAINER_CA_PATH = "/tmp/umami-db-ca.pem"  # /tmp: writable by the image's non-root user
PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+?-----END CERTIFICATE-----")
CA_ALLOWED = f"use {RDS} (Amazon RDS's CA for aws:region) or the path of a PEM file with the database's CA"


def url_parameters(sslmode: str, ca_path: str = CONTAINER_CA_PATH) -> list[tuple[str, str]]:
    """DATABASE_URL query parameters (after `schema`) for `sslmode`, right for both of Umami's parsers."""
    if sslmode == "verify-full":
        # node: CA from sslrootcert plus host name. Prisma: sslmode unknown -> prefer, but strict with
        # sslcert as its trusted CA, so a TLS session it opens is verified (CA and host name).
        return [("sslmode", "verify-full"), ("sslrootcert", ca_path), ("sslaccept", "strict"), ("sslcert", ca_path)]
    if sslmode == "verify-ca":
        # node: libpq's verify-ca, i.e. CA but not host name. Prisma: prefer, not verified.
        return [("sslmode", "verify-ca"), ("uselibpqcompat", "true"), ("sslrootcert", ca_path)]
    if sslmode == "require":
        # node: libpq's require (encrypted, nothing checked); without uselibpqcompat it would verify
        # against Node's own CA list, which lacks RDS. Prisma: require, not verified.
        return [("sslmode", "require"), ("uselibpqcompat", "true")]
    if sslmode == "disable":
        return [("sslmode", "disable")]
    raise ValueError(f"unknown sslmode {sslmode!r}; use one of {', '.join(SSL_MODES)}")


def url_query(sslmode: str, ca_path: str = CONTAINER_CA_PATH) -> str:
    """`url_parameters` as a query string fragment (no leading `&`)."""
    return "&".join(f"{key}={quote(value, safe='/')}" for key, value in url_parameters(sslmode, ca_path))


def uses_ca(sslmode: str) -> bool:
    """Every mode but disable has a CA: verify-* check with it; require still hands it to Umami and ops."""
    return sslmode != "disable"


@dataclass(frozen=True)
class CaBundle:
    """The CA the stack trusts: its certificates as PEM text, and the local file they came from."""

    pem: str   # only the certificate blocks of the file, "\n"-terminated
    path: str  # absolute path on the deployer's machine (the postgresql provider's sslrootcert)


class CaProblem(ValueError):
    """Why a dbCaCertificate value cannot be used: what is allowed, for the one-line config message."""


def rds_bundle_path(region: str) -> Path:
    return RDS_CA_DIR / f"{region}.pem"


def certificates(text: str) -> list[str]:
    """The PEM certificate blocks in `text`, line endings normalised."""
    return [block.replace("\r\n", "\n") for block in PEM_CERTIFICATE.findall(text)]


def read_bundle(path: Path) -> CaBundle:
    """A PEM file as a CaBundle: at least one certificate, all parsable, not all expired."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError:
        raise CaProblem(f"is not a readable file; {CA_ALLOWED}") from None
    blocks = certificates(text)
    if not blocks:
        raise CaProblem(f"holds no PEM certificate; {CA_ALLOWED}")
    pem = "\n".join(blocks) + "\n"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cadata=pem)
    except ssl.SSLError:
        raise CaProblem(f"holds a certificate that does not parse; {CA_ALLOWED}") from None
    expiries = [ssl.cert_time_to_seconds(cert["notAfter"]) for cert in context.get_ca_certs()]
    if expiries and max(expiries) < time.time():
        raise CaProblem(f"holds only expired certificates; {CA_ALLOWED}")
    return CaBundle(pem=pem, path=str(path.resolve()))


def resolve_ca(value: str, region: str | None, base: Path | None = None) -> CaBundle:
    """`umami:dbCaCertificate` (`rds` or a PEM path, relative to `base` or the working directory)."""
    if value == RDS:
        if not region:
            raise CaProblem("needs aws:region to pick Amazon RDS's regional CA; set aws:region "
                            "or give the path of a PEM file with the database's CA")
        path = rds_bundle_path(region)
        if not path.is_file():
            raise CaProblem(f"has no Amazon RDS CA bundle for aws:region={region} (components/shared/rds_ca); "
                            "give the path of a PEM file with the database's CA")
        return read_bundle(path)
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    return read_bundle(path)
