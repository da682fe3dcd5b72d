// npm run api: an API-only process (GraphQL over HTTP and websockets). It consumes no
// replies: control-plane processes (npm run control-plane) do; run several of either.
import {
  buildApi,
  createControlPlane,
  loadSecurityConfig,
  serveApi,
  SousError,
  startTracing,
  type SecurityConfig,
  type Tracing,
} from 'sous';
import { z } from 'zod';

const env = z
  .object({
    SOUS_DATABASE_URL: z.string().min(1, 'SOUS_DATABASE_URL must be a PostgreSQL connection string'),
    SOUS_KAFKA_BROKERS: z.string().min(1, 'SOUS_KAFKA_BROKERS must list host:port brokers'),
    // Executions started here reply where the control-plane processes consume.
    SOUS_REPLY_TOPIC: z.string().min(1).default('sous.replies'),
    SOUS_API_HOST: z.string().default('127.0.0.1'),
    SOUS_API_PORT: z.coerce.number().int().min(1).max(65535).default(4000),
    SOUS_API_GRAPHIQL: z.enum(['true', 'false']).default('false'),
  })
  .safeParse(process.env);
if (!env.success) {
  process.stderr.write(`sous api: ${env.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}\n`);
  process.exit(2);
}
const config = env.data;
// SOUS_KAFKA_SSL*, SOUS_KAFKA_SASL_*, SOUS_PG_SSL_*, SOUS_DATABASE_PASSWORD_FILE (README, "Secure connections").
let security: SecurityConfig;
try {
  security = loadSecurityConfig();
} catch (error) {
  process.stderr.write(`sous api: ${error instanceof SousError ? `${error.code}: ${error.message}` : String(error)}\n`);
  process.exit(2);
}
const databaseTls = security.postgres === undefined ? {} : { databaseTls: security.postgres };
const databasePassword = security.postgresPassword === undefined ? {} : { databasePassword: security.postgresPassword };
// Tracing: the standard OTEL_* variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_EXPORTER, ...).
let tracing: Tracing;
try {
  tracing = startTracing({ serviceName: 'sous-api' });
} catch (error) {
  process.stderr.write(`sous api: ${error instanceof SousError ? `${error.code}: ${error.message}` : String(error)}\n`);
  process.exit(2);
}
process.stdout.write(`sous api ${tracing.description}\n`);
const controlPlane = createControlPlane({
  databaseUrl: config.SOUS_DATABASE_URL,
  brokers: config.SOUS_KAFKA_BROKERS.split(','),
  replyTopic: config.SOUS_REPLY_TOPIC,
  consume: false,
  kafkaSecurity: security.kafka,
  ...databaseTls,
  ...databasePassword,
});
try {
  await controlPlane.start();
} catch (error) {
  // A refused login or certificate: its code and message (which hold no secret), not a stack.
  process.stderr.write(`sous api: ${error instanceof SousError ? `${error.code}: ${error.message}` : String(error)}\n`);
  await controlPlane.stop().catch(() => undefined);
  process.exit(1);
}
const app = await buildApi({
  controlPlane,
  databaseUrl: config.SOUS_DATABASE_URL,
  ...databaseTls,
  ...databasePassword,
  graphiql: config.SOUS_API_GRAPHIQL === 'true',
});
const url = await serveApi(app, { host: config.SOUS_API_HOST, port: config.SOUS_API_PORT });
process.stdout.write(`sous api listening at ${url}\n`);
const base = url.replace(/\/graphql$/, '');
process.stdout.write(`sous api console at ${base}/console\n`);
process.stdout.write(`sous api metrics at ${base}/metrics, health at ${base}/healthz and ${base}/readyz\n`);
const stop = async () => {
  await app.close();
  await controlPlane.stop();
  await tracing.shutdown();
};
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());
