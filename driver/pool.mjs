// Fill one Umami-sized connection pool and hold it, to measure a connection budget.
//
//   DATABASE_URL=... node pool.mjs [--queries N] [--hold SECONDS]
//
// Umami 3.1 gives PrismaPg only the connection string, so its pg.Pool has node-postgres'
// default size (max 10). N concurrent `SELECT pg_sleep(hold)` through the adapter make the
// pool open min(N, max) connections. Prints two JSON lines: {"phase":"filled",...} once every
// connection attempt has succeeded or failed (the pool is then held for the rest of `hold`),
// and {"phase":"done","ok",...} at the end; exit 1 if any query failed (e.g. SQLSTATE 53300).
import { parseArgs } from 'node:util';

import { PrismaPg } from '@prisma/adapter-pg';

import { describeError, emit, fail, schemaOf } from './lib.mjs';

const { values } = parseArgs({ options: { queries: { type: 'string', default: '10' },
                                          hold: { type: 'string', default: '3' } } });
const queries = Number.parseInt(values.queries, 10);
const hold = Number(values.hold);
const url = process.env.DATABASE_URL;

try {
  if (!url) throw new Error('DATABASE_URL is not set');
  if (!(queries > 0) || !(hold >= 0)) throw new Error('--queries must be > 0 and --hold >= 0');
  const adapter = await new PrismaPg({ connectionString: url }, { schema: schemaOf(url) }).connect();
  const pool = adapter.underlyingDriver();
  const attempts = Math.min(queries, pool.options.max);
  let connected = 0;
  const errors = [];
  let filled = false;
  const report = (phase) => emit({ phase, poolMax: pool.options.max, queries, connected, errors });
  const settle = () => {
    if (!filled && connected + errors.length >= attempts) {
      filled = true;
      report('filled');
    }
  };
  pool.on('connect', () => { connected += 1; settle(); });
  const started = Date.now();
  await Promise.all(Array.from({ length: queries }, () =>
    adapter.queryRaw({ sql: `SELECT pg_sleep(${hold}) IS NULL AS slept`, args: [], argTypes: [] })
      .catch((error) => { errors.push(describeError(error, [url])); settle(); })));
  const seconds = (Date.now() - started) / 1000;
  await adapter.dispose();
  emit({ phase: 'done', ok: errors.length === 0, poolMax: pool.options.max, queries, connected, errors, seconds });
  for (const line of new Set(errors.map((e) => `${e.code ? `${e.code}: ` : ''}${e.message}`))) {
    process.stderr.write(`${line}\n`);
  }
  process.exit(errors.length === 0 ? 0 : 1);
} catch (error) {
  fail(error, [url]);
}
