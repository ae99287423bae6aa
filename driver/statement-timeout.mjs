// The statement_timeout a session opened as Umami opens it runs under.
//
//   DATABASE_URL=... node statement-timeout.mjs
//
// Umami's client (new PrismaPg({ connectionString }, { schema })); node-postgres passes the URL's
// `options` startup parameter, which the deploy step uses to lift the role's statement_timeout for
// its migration connection only. Prints {"ok":true,"statementTimeout":"30s"}; on failure
// {"ok":false,"error":...} and exit 1.
import { PrismaPg } from '@prisma/adapter-pg';

import { emit, fail, schemaOf } from './lib.mjs';

const url = process.env.DATABASE_URL;
try {
  if (!url) throw new Error('DATABASE_URL is not set');
  const adapter = await new PrismaPg({ connectionString: url }, { schema: schemaOf(url) }).connect();
  try {
    const result = await adapter.queryRaw({ sql: "SELECT current_setting('statement_timeout')", args: [], argTypes: [] });
    emit({ ok: true, statementTimeout: result.rows[0][0] });
  } finally {
    await adapter.dispose();
  }
} catch (error) {
  fail(error, [url]);
}
