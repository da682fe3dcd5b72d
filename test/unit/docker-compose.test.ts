// docker-compose.yml cannot be run here (no Docker engine), so its structure is checked:
// every service has a healthcheck, the stack's images are the versions the Maven path
// resolves (connectors/pom.xml) and the PostgreSQL major the local stack is made for,
// and the control plane and API wait for what they need.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { POSTGRES_MAJOR } from '../../src/stack/config.js';

const root = join(import.meta.dirname, '..', '..');

interface Service {
  image?: string;
  build?: unknown;
  command?: unknown;
  depends_on?: Record<string, { condition: string }>;
  environment?: Record<string, unknown>;
  healthcheck?: { test?: unknown; disable?: boolean; interval?: string; retries?: number };
  ports?: string[];
}

const compose = parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
};
const services = compose.services;

function pomProperty(name: string): string {
  const pom = readFileSync(join(root, 'connectors', 'pom.xml'), 'utf8');
  const match = new RegExp(`<${name}>([^<]+)</${name}>`).exec(pom);
  assert.ok(match?.[1] !== undefined, `connectors/pom.xml has no <${name}>`);
  return match[1];
}

describe('docker-compose.yml', () => {
  it('runs the stack, the control plane and the API', () => {
    assert.deepEqual(Object.keys(services).sort(), ['api', 'connect', 'control-plane', 'kafka', 'postgres']);
  });

  it('gives every service a healthcheck that runs a command', () => {
    for (const [name, service] of Object.entries(services)) {
      const check = service.healthcheck;
      assert.ok(check !== undefined && check.disable !== true, `${name} has no healthcheck`);
      assert.ok(
        Array.isArray(check.test) && check.test.length >= 2,
        `${name}: healthcheck.test must be a command list`,
      );
      assert.ok(['CMD', 'CMD-SHELL'].includes(String(check.test[0])), `${name}: healthcheck.test starts with CMD`);
      assert.ok(typeof check.interval === 'string' && typeof check.retries === 'number', `${name}: interval, retries`);
    }
  });

  it('pins the versions the Maven path uses', () => {
    assert.equal(services.kafka?.image, `apache/kafka:${pomProperty('kafka.version')}`);
    assert.equal(services.connect?.image, `quay.io/debezium/connect:${pomProperty('debezium.version')}`);
    assert.equal(services.postgres?.image, `postgres:${POSTGRES_MAJOR}`);
    assert.equal(pomProperty('kafka.version'), '4.1.1');
    assert.equal(pomProperty('debezium.version'), '3.4.0.Final');
  });

  it('starts each part only after what it needs is healthy', () => {
    const healthy = (service: string) =>
      Object.entries(services[service]?.depends_on ?? {})
        .filter(([, d]) => d.condition === 'service_healthy')
        .map(([name]) => name)
        .sort();
    assert.deepEqual(healthy('connect'), ['kafka', 'postgres']);
    assert.deepEqual(healthy('control-plane'), ['connect', 'kafka', 'postgres']);
    assert.deepEqual(healthy('api'), ['control-plane']);
  });

  it('publishes the local stack default ports, so host tools reach it unchanged', () => {
    assert.deepEqual(services.postgres?.ports, ['127.0.0.1:15432:5432']);
    assert.deepEqual(services.kafka?.ports, ['127.0.0.1:19092:19092']);
    assert.deepEqual(services.connect?.ports, ['127.0.0.1:18083:8083']);
    assert.deepEqual(services.api?.ports, ['127.0.0.1:4000:4000']);
  });

  it('runs the control plane and API from the repository with the stack named as the compose network names it', () => {
    for (const name of ['control-plane', 'api']) {
      const env = services[name]?.environment ?? {};
      assert.equal(env.SOUS_DATABASE_URL, 'postgres://sous@postgres:5432/sous', name);
      assert.equal(env.SOUS_KAFKA_BROKERS, 'kafka:9092', name);
      assert.ok(services[name]?.build !== undefined, `${name} is built from the repository`);
    }
    const command = JSON.stringify(services['control-plane']?.command);
    // Migrations, then the connector, then the control plane: in that order.
    const order = ['stack.ts migrate', 'stack.ts register', 'scripts/control-plane.ts'].map((s) => command.indexOf(s));
    assert.ok(!order.includes(-1), command);
    assert.deepEqual(
      [...order].sort((a, b) => a - b),
      order,
      command,
    );
    for (const script of ['scripts/stack.ts', 'scripts/control-plane.ts', 'scripts/api.ts']) {
      assert.ok(readFileSync(join(root, script), 'utf8').length > 0, `${script} exists`);
    }
  });
});

describe('examples/docker-compose.regions.yml', () => {
  const regions = parse(readFileSync(join(root, 'examples', 'docker-compose.regions.yml'), 'utf8'), {
    merge: true,
  }) as { services: Record<string, Service> };
  const parts = ['postgres', 'kafka', 'connect', 'control-plane', 'api', 'relay'];

  it('runs a whole stack, a control plane, an API and a relay per region, each with a healthcheck', () => {
    const expected = ['us-east', 'eu-west'].flatMap((r) => parts.map((p) => `${p}-${r}`)).sort();
    assert.deepEqual(Object.keys(regions.services).sort(), expected);
    for (const [name, service] of Object.entries(regions.services)) {
      assert.ok(Array.isArray(service.healthcheck?.test), `${name} has a healthcheck`);
    }
  });

  it("links each region's control plane and relay to the other region, producing locally", () => {
    for (const [here, there] of [
      ['us-east', 'eu-west'],
      ['eu-west', 'us-east'],
    ] as const) {
      const cp = regions.services[`control-plane-${here}`]?.environment ?? {};
      assert.equal(cp.SOUS_REGION, here);
      assert.equal(cp.SOUS_REMOTE_REGIONS, there);
      assert.equal(cp.SOUS_KAFKA_BROKERS, `kafka-${here}:9092`);
      const relay = regions.services[`relay-${here}`]?.environment ?? {};
      assert.equal(relay.SOUS_KAFKA_BROKERS, `kafka-${here}:9092`, 'the relay produces into its own region');
      assert.equal(relay.SOUS_RELAY_SOURCES, `${there}=kafka-${there}:9092`, 'and consumes the other');
    }
  });
});
