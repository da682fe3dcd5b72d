// Outputs by reference without a stack: when a worker stores an output and replies with
// its reference, and how the control plane turns a reply's reference into the output.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { OUTPUT_UNAVAILABLE, parseReply, triggerOf } from '../../src/control-plane/apply-reply.js';
import { WorkerConfigError } from '../../src/worker/errors.js';
import { carriedOutput } from '../../src/worker/output-ref.js';
import { postgresPayloadStore, type PayloadStore } from '../../src/worker/payload-store.js';

const command = { executionId: randomUUID(), stepExecutionId: randomUUID() };

function memoryStore(maxInlineBytes?: number): PayloadStore & { stored: Map<string, string> } {
  const stored = new Map<string, string>();
  return {
    stored,
    ...(maxInlineBytes === undefined ? {} : { maxInlineBytes }),
    fetch: async (ref) => JSON.parse(stored.get(ref) ?? 'null') as unknown,
    store: async ({ json }) => {
      const ref = randomUUID();
      stored.set(ref, json);
      return ref;
    },
    close: async () => undefined,
  };
}

describe('a worker carrying its output', () => {
  it('keeps an output up to the limit inline, and undefined as null', async () => {
    const store = memoryStore(1024);
    assert.deepEqual(await carriedOutput(store, command, { a: 'x'.repeat(1000) }), { output: { a: 'x'.repeat(1000) } });
    assert.deepEqual(await carriedOutput(store, command, undefined), { output: null });
    assert.equal(store.stored.size, 0);
  });

  it('stores an output over the limit (64 KiB by default) and carries its reference and size', async () => {
    const store = memoryStore();
    const big = { blob: 'é'.repeat(40_000) }; // 80,000 bytes of UTF-8: bytes, not characters, count
    const carried = await carriedOutput(store, command, big);
    assert.ok('outputRef' in carried);
    assert.equal(carried.outputRef.bytes, Buffer.byteLength(JSON.stringify(big)));
    assert.deepEqual(await store.fetch(carried.outputRef.ref), big);
  });

  it('sends everything inline without a store able to store', async () => {
    const big = { blob: 'x'.repeat(100_000) };
    assert.deepEqual(await carriedOutput(undefined, command, big), { output: big });
    const readOnly: PayloadStore = { fetch: async () => null, close: async () => undefined };
    assert.deepEqual(await carriedOutput(readOnly, command, big), { output: big });
  });

  it('fails the attempt, retryable, when the store fails', async () => {
    const store: PayloadStore = {
      ...memoryStore(1024),
      store: () => Promise.reject(new Error('connection refused')),
    };
    const carried = await carriedOutput(store, command, { blob: 'x'.repeat(2000) });
    assert.ok('failure' in carried);
    assert.equal(carried.failure.code, 'output_not_stored');
    assert.equal(carried.failure.retryable, true);
    assert.match(carried.failure.message, /could not be stored by reference: connection refused/);
  });

  it('refuses bad payload store options, naming them', () => {
    assert.throws(
      () => postgresPayloadStore('postgres://nobody@127.0.0.1:1/none', { maxInlineBytes: 10 }),
      (error: unknown) =>
        error instanceof WorkerConfigError && /maxInlineBytes must be at least 1024/.test(error.message),
    );
  });
});

describe('the control plane reading a reply', () => {
  const reply = (extra: Record<string, unknown>) =>
    parseReply({
      kind: 'step.completed',
      messageId: randomUUID(),
      executionId: command.executionId,
      stepExecutionId: command.stepExecutionId,
      workerId: 'w',
      at: new Date().toISOString(),
      ...extra,
    });

  it('completes the step with the stored value of its output reference', () => {
    const ref = randomUUID();
    const trigger = triggerOf(reply({ outputRef: { ref: ref.toUpperCase(), bytes: 9 } }), new Map([[ref, { big: 1 }]]));
    assert.deepEqual(trigger, { kind: 'step.completed', stepExecutionId: command.stepExecutionId, output: { big: 1 } });
  });

  it('fails the attempt, retryable, when the reference names no payload', () => {
    const trigger = triggerOf(reply({ outputRef: { ref: randomUUID(), bytes: 9 } }), new Map());
    assert.equal(trigger.kind, 'step.failed');
    assert.equal(trigger.error.code, OUTPUT_UNAVAILABLE);
    assert.equal(trigger.error.retryable, true);
  });

  it('keeps an inline output as it is', () => {
    assert.deepEqual(triggerOf(reply({ output: [1, 2] })), {
      kind: 'step.completed',
      stepExecutionId: command.stepExecutionId,
      output: [1, 2],
    });
  });
});
