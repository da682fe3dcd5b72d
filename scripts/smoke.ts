// npm run smoke: writes one outbox row in a transaction and prints it as consumed from Kafka.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createDatabase,
  createKafka,
  ensureTopics,
  runOutboxConsumer,
  writeOutbox,
  type OutboxConsumer,
  type OutboxRecord,
} from '../src/index.js';
import { databaseUrl, kafkaBrokers, loadStackConfig } from '../src/stack/config.js';

const config = loadStackConfig();
const db = createDatabase({ connectionString: databaseUrl(config), applicationName: 'sous-smoke' });
const kafka = createKafka({ brokers: kafkaBrokers(config), clientId: 'sous-smoke' });
const run = randomUUID().slice(0, 8);
const topic = `sous.smoke.${run}`;

await ensureTopics(kafka, [topic]);
let consumer: OutboxConsumer | undefined;
const received = new Promise<OutboxRecord>((resolve, reject) => {
  runOutboxConsumer({
    kafka,
    groupId: `sous-smoke-${run}`,
    topics: [topic],
    fromBeginning: true,
    handle: async (record) => resolve(record),
    onMalformed: async (error) => reject(error),
  }).then((c) => (consumer = c), reject);
});
try {
  const started = performance.now();
  const [id] = await db.transaction().execute((trx) =>
    writeOutbox(trx, [
      {
        topic,
        key: `order-${run}`,
        aggregateType: 'smoke',
        eventType: 'smoke.hello',
        payload: { hello: 'from the outbox', at: new Date().toISOString() },
        correlationId: `smoke-${run}`,
      },
    ]),
  );
  console.log(`[smoke] committed outbox row ${id} for topic ${topic}`);
  const record = await Promise.race([
    received,
    sleep(30_000).then(() =>
      Promise.reject(new Error('no record arrived within 30 s: is the connector running? (npm run stack:status)')),
    ),
  ]);
  console.log(`[smoke] consumed after ${Math.round(performance.now() - started)} ms:`);
  console.log(JSON.stringify(record, null, 2));
} finally {
  await consumer?.stop();
  await db.destroy();
}
