// Connect exactly as Umami 3.1 builds its database client, and report what the session is.
//
//   DATABASE_URL=... [DATABASE_REPLICA_URL=...] node connect.mjs
//
// Umami: new PrismaPg({ connectionString }, { schema }) on DATABASE_URL, and a second one on
// DATABASE_REPLICA_URL when set. The TLS behaviour is node-postgres' own: the URL's sslmode,
// sslrootcert, sslcert, ... and the process' NODE_EXTRA_CA_CERTS. Prints one JSON line:
// {"ok":true,"primary":{"schema","user","ssl","clientDn"},"replica":{...}}; on failure {"ok":false,"error":...}
// and exit 1.
import { PrismaPg } from '@prisma/adapter-pg';

import { emit, fail, schemaOf } from './lib.mjs';

// clientDn: the client certificate the server received (null: none was sent).
const QUERY = `SELECT current_schema() AS schema, current_user AS "user", ssl, client_dn AS "clientDn"
  FROM pg_stat_ssl WHERE pid = pg_backend_pid()`;

async function probe(url) {
  const factory = new PrismaPg({ connectionString: url }, { schema: schemaOf(url) });
  const adapter = await factory.connect(); // what PrismaClient does on its first query
  try {
    const result = await adapter.queryRaw({ sql: QUERY, args: [], argTypes: [] });
    return Object.fromEntries(result.columnNames.map((name, i) => [name, result.rows[0][i]]));
  } finally {
    await adapter.dispose();
  }
}

const urls = [process.env.DATABASE_URL, process.env.DATABASE_REPLICA_URL];
try {
  if (!urls[0]) throw new Error('DATABASE_URL is not set');
  const result = { ok: true, primary: await probe(urls[0]) };
  if (urls[1]) result.replica = await probe(urls[1]);
  emit(result);
} catch (error) {
  fail(error, urls);
}
