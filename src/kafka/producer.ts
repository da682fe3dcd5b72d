import type { IHeaders, Producer } from 'kafkajs';
import type { Kafka } from './kafka-client.js';

export interface RecordToSend {
  readonly topic: string;
  readonly key: string | Buffer | null;
  readonly value: string | Buffer | null;
  readonly headers?: IHeaders;
}

/** An idempotent producer that connects on first use. */
export interface RecordProducer {
  send(records: readonly RecordToSend[]): Promise<void>;
  disconnect(): Promise<void>;
}

export function createRecordProducer(kafka: Kafka): RecordProducer {
  let producer: Producer | undefined;
  let connecting: Promise<void> | undefined;
  const ready = async (): Promise<Producer> => {
    if (producer === undefined) {
      producer = kafka.producer({ idempotent: true, maxInFlightRequests: 5 });
      connecting = producer.connect();
    }
    await connecting;
    return producer;
  };
  return {
    async send(records) {
      if (records.length === 0) return;
      const p = await ready();
      const byTopic = new Map<string, RecordToSend[]>();
      for (const r of records) byTopic.set(r.topic, [...(byTopic.get(r.topic) ?? []), r]);
      await p.sendBatch({
        topicMessages: [...byTopic].map(([topic, rs]) => ({
          topic,
          messages: rs.map((r) => ({
            key: r.key,
            value: r.value,
            ...(r.headers === undefined ? {} : { headers: r.headers }),
          })),
        })),
      });
    },
    async disconnect() {
      if (producer !== undefined) {
        await connecting?.catch(() => undefined);
        await producer.disconnect();
        producer = undefined;
      }
    },
  };
}
