/*
 * Secrets never reach a log, an error message or a printed setting: connection strings
 * are shown with their password replaced, and the logger censors fields that hold one.
 */

const CENSORED = '***';

/**
 * A connection string (postgres://user:password@host/db?password=...) with its password
 * replaced by `***`; anything not a URL is returned as it is, minus a `:...@` credential.
 */
export function redactConnectionString(text: string): string {
  try {
    const url = new URL(text);
    if (url.password !== '') url.password = CENSORED;
    for (const key of [...url.searchParams.keys()]) {
      if (/^(password|sslpassword)$/i.test(key)) url.searchParams.set(key, CENSORED);
    }
    return url.toString();
  } catch {
    return text.replace(/(\/\/[^:/@\s]*:)[^@\s]*@/g, `$1${CENSORED}@`);
  }
}

/**
 * Paths pino censors in every entry (fast-redact syntax): passwords and private keys at
 * the top or up to two levels down, whatever logged them (a settings object, a kafkajs
 * entry, an error's cause).
 */
export const LOG_REDACT_PATHS: readonly string[] = [
  'password',
  '*.password',
  '*.*.password',
  'sasl',
  '*.sasl',
  '*.*.sasl',
  'ssl.key',
  '*.ssl.key',
  '*.*.ssl.key',
  'connectionString',
  '*.connectionString',
  'databaseUrl',
  '*.databaseUrl',
];

export { CENSORED };
