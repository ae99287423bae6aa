// Umami's retention job: delete analytics rows older than a cut-off, in short batches, as the umami role.
//
//   DATABASE_URL=postgresql://...?schema=umami UMAMI_RETENTION_DAYS=365 node retention.mjs [--dry-run]
//
// UMAMI_RETENTION_DAYS: keep this many days (0: retention is off, nothing is touched);
// UMAMI_RETENTION_BATCH: rows per batch (default: the plan's); UMAMI_RETENTION_DRY_RUN=1 (or --dry-run):
// count what would go, delete nothing; UMAMI_RETENTION_PLAN: the plan's JSON (default: retention.json
// beside this file). In ECS (task family <base>-retention) Umami's own image runs this text as
//   node --input-type=module -e "$UMAMI_RETENTION_SCRIPT"
// in /app, with the plan in UMAMI_RETENTION_PLAN and node-postgres taken from Umami's install.
//
// Every statement comes from the plan (retention.json), which `python -m ops.retention` runs too. Each
// batch is one DELETE, so its own short transaction: far below the role's statement_timeout, and
// autovacuum keeps up. Output is logfmt: one line per table, then a summary line; a failure is one
// `retention error=...` line on stderr, exit 1 (2: bad settings).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

class SettingError extends Error {}

// Values exactly as PostgreSQL prints them (the session is in UTC): no rounding to milliseconds.
const RAW = { getTypeParser: () => (value) => value };

async function loadPg() {
  try {
    return (await import('pg')).default;
  } catch (error) {
    if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
  }
  // Umami's image installs with pnpm, which keeps pg beside @prisma/adapter-pg rather than in /app/node_modules.
  const fromWorkdir = createRequire(join(process.cwd(), 'retention.cjs'));
  return createRequire(fromWorkdir.resolve('@prisma/adapter-pg'))('pg');
}

function readPlan() {
  const text = process.env.UMAMI_RETENTION_PLAN || readFileSync(new URL('./retention.json', import.meta.url), 'utf8');
  return JSON.parse(text);
}

function wholeNumber(name, fallback, minimum) {
  const raw = (process.env[name] ?? '').trim();
  if (raw === '') {
    if (fallback === undefined) throw new SettingError(`${name} is not set`);
    return fallback;
  }
  if (!/^\d+$/.test(raw) || Number(raw) < minimum) {
    throw new SettingError(`${name}=${JSON.stringify(raw)} is not a whole number of at least ${minimum}`);
  }
  return Number(raw);
}

function flag(name) {
  const raw = (process.env[name] ?? '').trim().toLowerCase();
  if (['', '0', 'false'].includes(raw)) return false;
  if (['1', 'true'].includes(raw)) return true;
  throw new SettingError(`${name}=${JSON.stringify(process.env[name])} is not 1 or 0`);
}

function schemaOf(url, pattern) {
  let schema;
  try {
    schema = new URL(url).searchParams.get('schema');
  } catch {
    throw new SettingError('DATABASE_URL is not a URL');
  }
  if (!schema) throw new SettingError('DATABASE_URL has no schema= parameter');
  if (!new RegExp(pattern).test(schema)) throw new SettingError(`schema=${JSON.stringify(schema)} is not a plain identifier`);
  return schema;
}

const quote = (name) => `"${name.replaceAll('"', '""')}"`;

// A plan statement with its placeholders filled: {doomed} first (it names {schema} itself).
function fill(lines, schema, step) {
  let text = lines.join('\n');
  if (step) text = text.replaceAll('{doomed}', step.doomed.join('\n')).replaceAll('{table}', quote(step.table));
  return text.replaceAll('{schema}', quote(schema));
}

function logfmt(fields) {
  return Object.entries(fields)
    .map(([key, value]) => {
      const text = String(value ?? '');
      return `${key}=${text === '' || /[\s"=]/.test(text) ? JSON.stringify(text) : text}`;
    })
    .join(' ');
}

// `retention table=... deleted=...` per table, `retention summary ...` at the end.
function log(fields, summary = false) {
  process.stdout.write(`retention ${summary ? 'summary ' : ''}${logfmt(fields)}\n`);
}

async function forecast(client, plan, schema, step, cutoff) {
  const { rows } = await client.query({ text: fill(plan.count, schema, step), values: [cutoff], types: RAW });
  const found = rows[0];
  log({
    table: `${schema}.${step.table}`, would_delete: found.rows, oldest: found.oldest, newest: found.newest,
    table_rows: found.table_rows, frees_bytes: found.frees_bytes, cutoff,
  });
  return Number(found.rows);
}

async function purge(client, plan, schema, step, cutoff, batch) {
  const text = fill(plan.delete, schema, step);
  let deleted = 0;
  let batches = 0;
  for (;;) {
    const { rowCount } = await client.query({ text, values: [cutoff, batch], types: RAW });
    if (rowCount > 0) {
      deleted += rowCount;
      batches += 1;
    }
    if (rowCount < batch) break;
  }
  log({ table: `${schema}.${step.table}`, deleted, batches, cutoff });
  return deleted;
}

async function main() {
  const started = Date.now();
  const plan = readPlan();
  const days = wholeNumber('UMAMI_RETENTION_DAYS', undefined, 0);
  const batch = wholeNumber('UMAMI_RETENTION_BATCH', plan.batch, 1);
  const dryRun = process.argv.slice(2).includes('--dry-run') || flag('UMAMI_RETENTION_DRY_RUN');
  if (days === 0) {
    log({ days, off: true, deleted: 0 }, true);
    return;
  }
  const url = process.env.DATABASE_URL;
  if (!url) throw new SettingError('DATABASE_URL is not set');
  const schema = schemaOf(url, plan.identifier);
  const pg = await loadPg();
  const client = new pg.Client({ connectionString: url, application_name: 'umami-retention' });
  await client.connect();
  try {
    for (const lines of plan.session) await client.query(fill(lines, schema));
    const tables = plan.steps.map((step) => step.table);
    const missing = await client.query({ text: fill(plan.missing, schema), values: [schema, tables], types: RAW });
    if (missing.rows.length > 0) {
      const names = missing.rows.map((row) => `${schema}.${row.name}`).join(', ');
      throw new Error(`${names} missing: the plan is for Umami 3.1's tables (are its migrations applied?)`);
    }
    const cutoffQuery = { text: fill(plan.cutoff, schema), values: [days], types: RAW };
    const { cutoff } = (await client.query(cutoffQuery)).rows[0];
    let total = 0;
    for (const step of plan.steps) {
      total += dryRun
        ? await forecast(client, plan, schema, step, cutoff)
        : await purge(client, plan, schema, step, cutoff, batch);
    }
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const counted = dryRun ? 'would_delete' : 'deleted';
    log({ [counted]: total, tables: tables.length, days, batch, cutoff, dry_run: dryRun, seconds }, true);
  } finally {
    await client.end();
  }
}

// One line, never the password of DATABASE_URL (node-postgres may echo parts of the URL).
function describe(error) {
  let text = String(error?.message ?? error).split('\n').map((line) => line.trim()).filter(Boolean).join(' ');
  text = text.replace(/(:\/\/[^:/@\s]*:)[^@\s]*@/g, '$1***@');
  try {
    const password = new URL(process.env.DATABASE_URL ?? '').password;
    if (password) text = text.split(password).join('***').split(decodeURIComponent(password)).join('***');
  } catch {
    // no URL, nothing to hide
  }
  return text || 'unknown error';
}

main().catch((error) => {
  const fields = { error: describe(error), ...(error?.code ? { code: error.code } : {}) };
  process.stderr.write(`retention ${logfmt(fields)}\n`);
  process.exitCode = error instanceof SettingError ? 2 : 1;
});
