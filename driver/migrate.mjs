// `prisma migrate deploy` with Prisma's own migration engine, over Umami's runtime driver.
//
//   DATABASE_URL=... node migrate.mjs MIGRATIONS_DIR
//
// The engine is @prisma/schema-engine-wasm (the build matching prisma@7.6.0); it reaches the
// database through @prisma/adapter-pg wrapped by bindMigrationAwareSqlAdapterFactory, so the
// TLS rules are node-postgres'. The call sequence follows Prisma's CLI (packages/internals
// WasmSchemaEngineLoader.loadSchemaEngine, packages/migrate Migrate.applyMigrations and
// utils/listMigrations): instantiate the wasm module against its JS glue, SchemaEngine.new,
// then applyMigrations with the folder's contents. The engine creates `_prisma_migrations` in
// the URL's schema, holds its advisory lock while applying, and skips what is already applied.
// Prints {"ok":true,"applied":[names]} or {"ok":false,"error":...} (exit 1).
import { readFile, readdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

import { PrismaPg } from '@prisma/adapter-pg';
import { bindMigrationAwareSqlAdapterFactory } from '@prisma/driver-adapter-utils';

import { emit, fail, schemaOf } from './lib.mjs';

const LOCKFILE = 'migration_lock.toml';
const MIGRATION_FILE = 'migration.sql';

// What the engine is given for `prisma migrate deploy`: every sub-directory, sorted by name.
async function migrationsList(baseDir) {
  const lockContent = await readFile(path.join(baseDir, LOCKFILE), 'utf8').catch(() => null);
  const entries = await readdir(baseDir, { withFileTypes: true });
  const names = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
  const migrationDirectories = await Promise.all(names.map(async (name) => ({
    path: name,
    migrationFile: {
      path: MIGRATION_FILE,
      content: await readFile(path.join(baseDir, name, MIGRATION_FILE), 'utf8')
        .then((value) => ({ tag: 'ok', value }), (error) => ({ tag: 'error', value: error.message })),
    },
  })));
  return { baseDir, lockfile: { path: LOCKFILE, content: lockContent }, shadowDbInitScript: '',
           migrationDirectories };
}

// The package's entry imports the .wasm as an ES module (a bundler feature); instantiate it by hand.
async function loadSchemaEngine() {
  const glue = await import('@prisma/schema-engine-wasm/schema_engine_bg');
  const wasmPath = createRequire(import.meta.url).resolve('@prisma/schema-engine-wasm/schema_engine_bg')
    .replace(/\.js$/, '.wasm');
  const module = new WebAssembly.Module(await readFile(wasmPath));
  const instance = new WebAssembly.Instance(module, { './schema_engine_bg.js': glue });
  glue.__wbg_set_wasm(instance.exports);
  instance.exports.__wbindgen_start();
  return glue.SchemaEngine;
}

const url = process.env.DATABASE_URL;
const dir = process.argv[2];
try {
  if (!url) throw new Error('DATABASE_URL is not set');
  if (!dir) throw new Error('usage: node migrate.mjs MIGRATIONS_DIR');
  const list = await migrationsList(path.resolve(dir));
  const adapter = bindMigrationAwareSqlAdapterFactory(new PrismaPg({ connectionString: url }, { schema: schemaOf(url) }));
  const SchemaEngine = await loadSchemaEngine();
  const log = process.env.MIGRATE_DEBUG ? (line) => process.stderr.write(`${line}\n`) : () => {};
  let engine;
  try {
    engine = await SchemaEngine.new({ datamodels: undefined }, log, adapter);
    const result = await engine.applyMigrations({ migrationsList: list,
                                                  filters: { externalTables: [], externalEnums: [] } });
    emit({ ok: true, applied: result.appliedMigrationNames });
  } catch (error) {
    // A JS error of the driver crosses the wasm boundary as "External error id#N", N being its
    // key in the adapter's error registry (driver-adapter-utils wrapAsync): report the original.
    const id = /External error id#(\d+)/.exec(error?.message ?? '')?.[1];
    throw (id !== undefined && adapter.errorRegistry.consumeError(Number(id))?.error) || error;
  } finally {
    engine?.free();
  }
  process.exit(0);  // the engine keeps the pool open
} catch (error) {
  fail(error, [url]);
}
