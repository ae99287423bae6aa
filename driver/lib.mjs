// Helpers shared by the driver scripts: Umami's schema rule, one-line redacted errors, JSON output.

// Umami 3.1 (src/lib/prisma.ts getClient) passes the URL's `schema` parameter to PrismaPg.
export function schemaOf(url) {
  return new URL(url).searchParams.get('schema') ?? undefined;
}

// The password of every URL given, raw and percent-encoded, so no message can leak it
// (too short a string would garble every message and is no real password).
const MIN_SECRET = 6;

function secretsOf(urls) {
  const found = [];
  for (const url of urls.filter(Boolean)) {
    try {
      const password = new URL(url).password;
      if (password.length >= MIN_SECRET) found.push(password, decodeURIComponent(password));
    } catch {
      // not a URL: nothing to hide
    }
  }
  return found;
}

export function redact(text, urls) {
  let out = String(text).replace(/(:\/\/[^:/@\s]*:)[^@\s]*@/g, '$1***@');
  for (const secret of secretsOf(urls)) out = out.split(secret).join('***');
  return out;
}

// The driver's own message: the adapter wraps pg errors in DriverAdapterError, whose `cause`
// holds the original SQLSTATE/message (database errors) or the TLS reason.
export function describeError(error, urls) {
  const cause = error?.cause && typeof error.cause === 'object' ? error.cause : {};
  const where = cause.host ? ` (${cause.host}${cause.port ? `:${cause.port}` : ''})` : '';  // unreachable
  const message = cause.originalMessage ?? cause.reason ?? `${error?.message ?? String(error)}${where}`;
  return {
    message: redact(message.split('\n').map((l) => l.trim()).filter(Boolean).join(' '), urls),
    code: cause.originalCode ?? error?.code ?? null,
    kind: cause.kind ?? null,
  };
}

export function emit(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

// Print the error as JSON on stdout and one line on stderr, then exit 1.
export function fail(error, urls) {
  const info = describeError(error, urls);
  emit({ ok: false, error: info });
  const prefix = info.code && !info.message.startsWith(info.code) ? `${info.code}: ` : '';
  process.stderr.write(`${prefix}${info.message}\n`);
  process.exit(1);
}
