// Secure-connection settings: parsed once, every bad variable named, no secret in a message;
// connection strings printed without their password; the logger censors secrets.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger } from '../../src/logger.js';
import { loadSecurityConfig } from '../../src/security/config.js';
import { redactConnectionString } from '../../src/security/redact.js';

const dir = mkdtempSync(join(tmpdir(), 'sous-security-'));
const ca = join(dir, 'ca.pem');
writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n');
writeFileSync(join(dir, 'password'), 's3cret-from-file\n');

describe('loadSecurityConfig', () => {
  it('is plaintext with nothing set', () => {
    assert.deepEqual(loadSecurityConfig({}), { kafka: {}, postgres: undefined, postgresPassword: undefined });
  });

  it('reads TLS and SASL, the password from a file', () => {
    const c = loadSecurityConfig({
      SOUS_KAFKA_SSL_CA_FILE: ca,
      SOUS_KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
      SOUS_KAFKA_SASL_USERNAME: 'sous',
      SOUS_KAFKA_SASL_PASSWORD_FILE: join(dir, 'password'),
      SOUS_PG_SSL_MODE: 'verify-full',
      SOUS_PG_SSL_CA_FILE: ca,
      SOUS_DATABASE_PASSWORD_FILE: join(dir, 'password'),
    });
    assert.equal(typeof c.kafka.ssl === 'object' && c.kafka.ssl.rejectUnauthorized, true);
    assert.deepEqual(c.kafka.sasl, { mechanism: 'scram-sha-512', username: 'sous', password: 's3cret-from-file' });
    assert.equal(c.postgres?.mode, 'verify-full');
    assert.equal(c.postgresPassword, 's3cret-from-file');
  });

  it('names every bad variable in one coded error, without the secrets', () => {
    assert.throws(
      () =>
        loadSecurityConfig({
          SOUS_KAFKA_SASL_MECHANISM: 'gssapi',
          SOUS_KAFKA_SASL_USERNAME: 'sous',
          SOUS_KAFKA_SASL_PASSWORD: 'hunter2',
          SOUS_KAFKA_SSL_CA_FILE: join(dir, 'missing.pem'),
          SOUS_PG_SSL_MODE: 'sometimes',
        }),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, 'SOUS_CONFIG_INVALID');
        assert.match(error.message, /SOUS_KAFKA_SASL_MECHANISM: must be one of plain, scram-sha-256, scram-sha-512/);
        assert.match(error.message, /SOUS_KAFKA_SSL_CA_FILE: cannot read .*missing\.pem \(ENOENT\)/);
        assert.match(error.message, /SOUS_PG_SSL_MODE: must be one of/);
        assert.doesNotMatch(error.message, /hunter2/);
        return true;
      },
    );
  });

  it('refuses a username without a password, and a half client certificate', () => {
    assert.throws(
      () =>
        loadSecurityConfig({
          SOUS_KAFKA_SASL_MECHANISM: 'plain',
          SOUS_KAFKA_SASL_USERNAME: 'sous',
          SOUS_PG_SSL_MODE: 'require',
          SOUS_PG_SSL_CERT_FILE: ca,
        }),
      /SOUS_KAFKA_SASL_PASSWORD: is required.*SOUS_PG_SSL_CERT_FILE: a client certificate needs both/,
    );
  });
});

describe('secrets in output', () => {
  it('connection strings lose their password', () => {
    assert.equal(
      redactConnectionString('postgres://sous:hunter2@db:5432/sous?sslmode=verify-full'),
      'postgres://sous:***@db:5432/sous?sslmode=verify-full',
    );
    assert.equal(redactConnectionString('postgres://sous@db/sous'), 'postgres://sous@db/sous');
  });

  it('the logger censors password, SASL and key fields', () => {
    let text = '';
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        text += chunk.toString('utf8');
        done();
      },
    });
    const log = createLogger({ format: 'json', destination });
    log.info({ password: 'hunter2', kafka: { sasl: { password: 'hunter3' }, ssl: { key: 'PRIVATE' } } }, 'settings');
    assert.doesNotMatch(text, /hunter2|hunter3|PRIVATE/);
    assert.match(text, /\*\*\*/);
  });
});
