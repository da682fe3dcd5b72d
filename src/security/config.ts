import { readFileSync } from 'node:fs';
import { ConfigInvalidError } from '../errors.js';

/*
 * Secure connections of every sous process kind (control plane, API, relay, CLI, the
 * bundled worker runner), read once from the environment into plain data. Files are read
 * here, at start, so a missing or unreadable one stops the process before it connects,
 * with an error naming the variable. The data carries no kafkajs or pg types: src/kafka/ and
 * postgres-connection.ts (beside this file, so the worker SDK has it without src/db) turn it
 * into client options.
 */

/** TLS of the Kafka clients. */
export interface KafkaTlsOptions {
  /** PEM CA certificate(s) the brokers' certificates are checked against. @default Node's CA store */
  readonly ca?: string;
  /** PEM client certificate, for mutual TLS (with `key`). @default none */
  readonly cert?: string;
  /** PEM private key of `cert`. @default none */
  readonly key?: string;
  /** Refuse a broker whose certificate does not verify. @default true */
  readonly rejectUnauthorized?: boolean;
}

export type KafkaSaslMechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512';

/** SASL authentication of the Kafka clients. */
export interface KafkaSaslOptions {
  readonly mechanism: KafkaSaslMechanism;
  readonly username: string;
  readonly password: string;
}

/** How the Kafka clients of a process connect: TLS and/or SASL. @default plaintext, no authentication */
export interface KafkaSecurityOptions {
  /** `true`: TLS with Node's CA store; an object: TLS with these settings. @default none (plaintext) */
  readonly ssl?: boolean | KafkaTlsOptions;
  /** @default none */
  readonly sasl?: KafkaSaslOptions;
}

/**
 * `disable`: no TLS; `require`: TLS, the server's certificate not checked; `verify-ca`:
 * TLS, certificate checked against the CA; `verify-full`: that and the host name too (the
 * libpq meanings, which node-postgres only approximates in a connection string).
 */
export type PostgresSslMode = 'disable' | 'require' | 'verify-ca' | 'verify-full';

/** TLS of the PostgreSQL connections of a process (pools, LISTEN, graphile-worker). */
export interface PostgresTlsOptions {
  readonly mode: PostgresSslMode;
  /** PEM CA certificate(s) for verify-ca / verify-full. @default Node's CA store */
  readonly ca?: string;
  /** PEM client certificate (certificate authentication), with `key`. @default none */
  readonly cert?: string;
  readonly key?: string;
}

/** Everything a process needs to connect securely, parsed once by loadSecurityConfig. */
export interface SecurityConfig {
  /** From SOUS_KAFKA_SSL*, SOUS_KAFKA_SASL_*. */
  readonly kafka: KafkaSecurityOptions;
  /**
   * From SOUS_PG_SSL_*. Undefined: the connection string decides (its `sslmode`,
   * `sslrootcert`, `sslcert`, `sslkey`, which node-postgres honours).
   */
  readonly postgres: PostgresTlsOptions | undefined;
  /** SOUS_DATABASE_PASSWORD_FILE: PostgreSQL password kept out of the connection string. @default none */
  readonly postgresPassword: string | undefined;
}

const MECHANISMS: readonly KafkaSaslMechanism[] = ['plain', 'scram-sha-256', 'scram-sha-512'];
const SSL_MODES: readonly PostgresSslMode[] = ['disable', 'require', 'verify-ca', 'verify-full'];

/** Collects every problem so a person fixes them all at once (as src/env.ts does). */
class Problems {
  readonly list: string[] = [];
  add(variable: string, problem: string): undefined {
    this.list.push(`${variable}: ${problem}`);
    return undefined;
  }
}

function given(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

/** The file's text; a missing one is a problem naming the variable (the path is no secret, its content may be). */
function readVariableFile(env: NodeJS.ProcessEnv, name: string, problems: Problems): string | undefined {
  const path = given(env, name);
  if (path === undefined) return undefined;
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    return problems.add(name, `cannot read ${path} (${typeof code === 'string' ? code : 'unreadable'})`);
  }
}

function flag(env: NodeJS.ProcessEnv, name: string, problems: Problems): boolean | undefined {
  const value = given(env, name)?.toLowerCase();
  if (value === undefined) return undefined;
  if (value === 'true' || value === 'false') return value === 'true';
  return problems.add(name, 'must be true or false');
}

/** A secret from `<name>` or `<name>_FILE` (one, not both); a file's trailing newline is dropped. */
function secret(env: NodeJS.ProcessEnv, name: string, problems: Problems): string | undefined {
  const inline = env[name];
  const file = readVariableFile(env, `${name}_FILE`, problems);
  if (inline !== undefined && inline !== '' && given(env, `${name}_FILE`) !== undefined) {
    return problems.add(name, `set ${name} or ${name}_FILE, not both`);
  }
  return inline !== undefined && inline !== '' ? inline : file?.replace(/\r?\n$/, '');
}

function kafkaSecurity(env: NodeJS.ProcessEnv, problems: Problems): KafkaSecurityOptions {
  const enabled = flag(env, 'SOUS_KAFKA_SSL', problems);
  const ca = readVariableFile(env, 'SOUS_KAFKA_SSL_CA_FILE', problems);
  const cert = readVariableFile(env, 'SOUS_KAFKA_SSL_CERT_FILE', problems);
  const key = readVariableFile(env, 'SOUS_KAFKA_SSL_KEY_FILE', problems);
  const rejectUnauthorized = flag(env, 'SOUS_KAFKA_SSL_REJECT_UNAUTHORIZED', problems);
  const tlsSettings = ['SOUS_KAFKA_SSL_CA_FILE', 'SOUS_KAFKA_SSL_CERT_FILE', 'SOUS_KAFKA_SSL_KEY_FILE'].filter(
    (name) => given(env, name) !== undefined,
  );
  if (enabled === false && tlsSettings.length > 0) {
    problems.add('SOUS_KAFKA_SSL', `is false but ${tlsSettings.join(', ')} set: set SOUS_KAFKA_SSL=true or unset them`);
  }
  if (
    (given(env, 'SOUS_KAFKA_SSL_CERT_FILE') === undefined) !==
    (given(env, 'SOUS_KAFKA_SSL_KEY_FILE') === undefined)
  ) {
    problems.add(
      'SOUS_KAFKA_SSL_CERT_FILE',
      'mutual TLS needs both SOUS_KAFKA_SSL_CERT_FILE and SOUS_KAFKA_SSL_KEY_FILE',
    );
  }
  const useTls = enabled === true || (enabled === undefined && tlsSettings.length > 0);
  const ssl: KafkaTlsOptions | undefined = useTls
    ? {
        ...(ca === undefined ? {} : { ca }),
        ...(cert === undefined ? {} : { cert }),
        ...(key === undefined ? {} : { key }),
        rejectUnauthorized: rejectUnauthorized ?? true,
      }
    : undefined;

  const mechanismText = given(env, 'SOUS_KAFKA_SASL_MECHANISM')?.toLowerCase();
  const username = given(env, 'SOUS_KAFKA_SASL_USERNAME');
  const password = secret(env, 'SOUS_KAFKA_SASL_PASSWORD', problems);
  let sasl: KafkaSaslOptions | undefined;
  if (mechanismText === undefined) {
    if (username !== undefined || password !== undefined) {
      problems.add(
        'SOUS_KAFKA_SASL_MECHANISM',
        `is required with a SASL username or password (${MECHANISMS.join(', ')})`,
      );
    }
  } else if (!(MECHANISMS as readonly string[]).includes(mechanismText)) {
    problems.add(
      'SOUS_KAFKA_SASL_MECHANISM',
      `must be one of ${MECHANISMS.join(', ')} (got ${JSON.stringify(mechanismText)})`,
    );
  } else if (username === undefined) {
    problems.add('SOUS_KAFKA_SASL_USERNAME', `is required with SOUS_KAFKA_SASL_MECHANISM=${mechanismText}`);
  } else if (password === undefined) {
    problems.add(
      'SOUS_KAFKA_SASL_PASSWORD',
      `is required with SOUS_KAFKA_SASL_USERNAME (or SOUS_KAFKA_SASL_PASSWORD_FILE)`,
    );
  } else {
    sasl = { mechanism: mechanismText as KafkaSaslMechanism, username, password };
  }
  return { ...(ssl === undefined ? {} : { ssl }), ...(sasl === undefined ? {} : { sasl }) };
}

function postgresTls(env: NodeJS.ProcessEnv, problems: Problems): PostgresTlsOptions | undefined {
  const modeText = given(env, 'SOUS_PG_SSL_MODE')?.toLowerCase();
  const ca = readVariableFile(env, 'SOUS_PG_SSL_CA_FILE', problems);
  const cert = readVariableFile(env, 'SOUS_PG_SSL_CERT_FILE', problems);
  const key = readVariableFile(env, 'SOUS_PG_SSL_KEY_FILE', problems);
  if ((given(env, 'SOUS_PG_SSL_CERT_FILE') === undefined) !== (given(env, 'SOUS_PG_SSL_KEY_FILE') === undefined)) {
    problems.add(
      'SOUS_PG_SSL_CERT_FILE',
      'a client certificate needs both SOUS_PG_SSL_CERT_FILE and SOUS_PG_SSL_KEY_FILE',
    );
  }
  const files = ['SOUS_PG_SSL_CA_FILE', 'SOUS_PG_SSL_CERT_FILE', 'SOUS_PG_SSL_KEY_FILE'].filter(
    (name) => given(env, name) !== undefined,
  );
  if (modeText === undefined) {
    if (files.length > 0)
      problems.add('SOUS_PG_SSL_MODE', `is required with ${files.join(', ')} (${SSL_MODES.join(', ')})`);
    return undefined;
  }
  if (!(SSL_MODES as readonly string[]).includes(modeText)) {
    return problems.add('SOUS_PG_SSL_MODE', `must be one of ${SSL_MODES.join(', ')} (got ${JSON.stringify(modeText)})`);
  }
  const mode = modeText as PostgresSslMode;
  if (mode === 'disable' && files.length > 0)
    problems.add('SOUS_PG_SSL_MODE', `is disable but ${files.join(', ')} set`);
  return {
    mode,
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
  };
}

/**
 * Reads the secure-connection variables (README, "Secure connections"). Every bad one is
 * named in one ConfigInvalidError; no secret value is ever part of its message.
 */
export function loadSecurityConfig(env: NodeJS.ProcessEnv = process.env): SecurityConfig {
  const problems = new Problems();
  const kafka = kafkaSecurity(env, problems);
  const postgres = postgresTls(env, problems);
  const postgresPassword = readVariableFile(env, 'SOUS_DATABASE_PASSWORD_FILE', problems)?.replace(/\r?\n$/, '');
  if (problems.list.length > 0) {
    throw new ConfigInvalidError(`invalid secure-connection setting: ${problems.list.join('; ')}`);
  }
  return { kafka, postgres, postgresPassword };
}
