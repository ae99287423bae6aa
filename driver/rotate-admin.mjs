// Replace Umami's default admin password with the stack's, and only the default one.
//
//   DATABASE_URL=... UMAMI_ADMIN_PASSWORD_HASH=<bcrypt> UMAMI_DEFAULT_ADMIN_HASH=<bcrypt> node rotate-admin.mjs
//
// The deploy task runs this text from its environment after the migrations
// (node --input-type=module -e "$UMAMI_ROTATE_ADMIN_SCRIPT", from /app), so it imports nothing
// of its own. Umami's first migration creates `admin` with a fixed hash of the password `umami`
// (facts.py, UMAMI_DEFAULT_ADMIN_PASSWORD_HASH, passed as UMAMI_DEFAULT_ADMIN_HASH). One UPDATE
// replaces the hash only while the row still holds that default, so a password the team set
// since is never overwritten and a second run changes nothing. Prints one line, "admin password
// replaced", "admin password already changed: left as is" or "no admin user"; any failure is one
// line on stderr and exit 1 (no password, hash or URL credential in it).
import { createRequire } from 'node:module';
import path from 'node:path';

const ADMIN = 'admin';
const BCRYPT_HASH = /^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/;

// node-postgres: the package itself when resolvable from the working directory, else the copy
// @prisma/adapter-pg depends on (Umami 3.x images install it under /app; pnpm keeps its `pg` beside it).
async function loadPg() {
  try {
    return (await import('pg')).default;
  } catch {
    const fromApp = createRequire(path.join(process.cwd(), 'package.json'));
    return createRequire(fromApp.resolve('@prisma/adapter-pg'))('pg');
  }
}

function setting(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function bcryptHash(name) {
  const value = setting(name);
  if (!BCRYPT_HASH.test(value)) throw new Error(`${name} is not a bcrypt hash`);
  return value;
}

// Umami's tables live in the URL's `schema` (Prisma's default: public), quoted as an identifier.
function userTable(url) {
  const schema = new URL(url).searchParams.get('schema') || 'public';
  return `"${schema.replaceAll('"', '""')}"."user"`;
}

// Messages never carry the URL's password or a hash (pg's own messages hold neither; this is a guard).
function redact(message, secrets) {
  let out = String(message).replace(/(\/\/[^:/@\s]*:)[^@\s]*@/g, '$1***@').replace(/\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}/g, '***');
  for (const secret of secrets.filter((s) => s && s.length >= 6)) out = out.split(secret).join('***');
  return out.split('\n').map((line) => line.trim()).filter(Boolean).join(' ');
}

async function rotate() {
  const url = setting('DATABASE_URL');
  const replacement = bcryptHash('UMAMI_ADMIN_PASSWORD_HASH');
  const defaultHash = bcryptHash('UMAMI_DEFAULT_ADMIN_HASH');
  const table = userTable(url);
  const pg = await loadPg();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const updated = await client.query(
      `UPDATE ${table} SET password = $1 WHERE username = $2 AND password = $3`, [replacement, ADMIN, defaultHash]);
    if (updated.rowCount > 0) return 'admin password replaced';
    const admin = await client.query(`SELECT 1 FROM ${table} WHERE username = $1`, [ADMIN]);
    return admin.rowCount > 0 ? 'admin password already changed: left as is' : 'no admin user';
  } finally {
    await client.end();
  }
}

try {
  process.stdout.write(`${await rotate()}\n`);
} catch (error) {
  let password = '';
  try {
    password = decodeURIComponent(new URL(process.env.DATABASE_URL).password);
  } catch {
    // no URL, nothing to hide
  }
  process.stderr.write(`admin password rotation failed: ${redact(error?.message ?? error, [password])}\n`);
  process.exit(1);
}
