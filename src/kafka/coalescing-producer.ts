import type { RecordProducer, RecordToSend } from './producer.js';

/** Largest total of record values in one coalesced send (the broker's default message.max.bytes is 1 MiB). */
const DEFAULT_MAX_BATCH_BYTES = 512 * 1024;

interface Pending {
  readonly records: readonly RecordToSend[];
  readonly bytes: number;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/**
 * A producer that keeps one send in flight and sends everything queued meanwhile
 * together in the next one. kafkajs' idempotent producer lets one produce request per
 * broker be in flight, so records sent one by one from concurrent callers wait in line
 * for a round trip each; coalesced, they share it. Nothing waits for a batch to fill:
 * a send goes out as soon as the previous one returns (records queued in the same tick
 * as the first go with it). Order is kept: records queued earlier go in the same send
 * or an earlier one. Each caller's promise settles with the send that carried its
 * records, so a failure is reported to exactly the callers whose records it concerned.
 */
export function createCoalescingProducer(
  producer: RecordProducer,
  options: { readonly maxBatchBytes?: number } = {},
): RecordProducer {
  const maxBatchBytes = options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
  let queue: Pending[] = [];
  let pumping: Promise<void> | undefined;

  /** The next send: queued records in order, up to maxBatchBytes (always at least one caller's). */
  const takeBatch = (): Pending[] => {
    let bytes = 0;
    let count = 0;
    for (const pending of queue) {
      if (count > 0 && bytes + pending.bytes > maxBatchBytes) break;
      bytes += pending.bytes;
      count++;
    }
    const batch = queue.slice(0, count);
    queue = queue.slice(count);
    return batch;
  };

  const pump = async (): Promise<void> => {
    while (queue.length > 0) {
      const batch = takeBatch();
      try {
        await producer.send(batch.flatMap((p) => p.records));
        for (const p of batch) p.resolve();
      } catch (error) {
        for (const p of batch) p.reject(error);
      }
    }
    pumping = undefined;
  };

  return {
    send(records) {
      if (records.length === 0) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        queue.push({ records, bytes: records.reduce((n, r) => n + sizeOf(r), 0), resolve, reject });
        // A microtask, not a timer: what is queued in this same tick joins the first send.
        pumping ??= Promise.resolve().then(pump);
      });
    },
    async disconnect() {
      await pumping;
      await producer.disconnect();
    },
  };
}

function sizeOf(record: RecordToSend): number {
  const { value, key } = record;
  const length = (v: string | Buffer | null) =>
    v === null ? 0 : typeof v === 'string' ? Buffer.byteLength(v) : v.length;
  return length(value) + length(key);
}
