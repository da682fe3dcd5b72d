import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { builtOutboxRow } from '../outbox/write-outbox.js';
import { SHARD_CONTROL_TOPIC, type ShardControl } from '../protocol/shards.js';
import type { LiveShard } from '../shards/registry-view.js';
import { auditedTransaction, type AuditHook } from '../store/audit.js';
import { insertOutboxRows } from '../store/outbox.js';
import { recordDrainRequest } from '../store/shards.js';
import { newId } from '../uuid.js';
import { ShardNotFoundError } from './errors.js';

export interface ShardControlRequested {
  readonly shardId: string;
  readonly kind: 'drain' | 'resume';
  /** The request's message id (the outbox row's). */
  readonly messageId: string;
}

/**
 * Asks a live shard to drain (take no new commands, finish its running ones) or to take
 * commands again. The request reaches the shard through the outbox, like every message
 * of the control plane, and names the shard's incarnation, so a process restarted under
 * the same id ignores it. The mirror records who asked; the shard's own announcement
 * (`draining`, then nothing in flight) says when it is done. Asking twice is harmless.
 */
export async function requestShardControl(
  db: Kysely<Database>,
  shard: LiveShard | undefined,
  shardId: string,
  kind: 'drain' | 'resume',
  requestedBy: string | null,
  audit?: AuditHook,
): Promise<ShardControlRequested> {
  if (shard === undefined) {
    throw new ShardNotFoundError(
      `no live shard ${JSON.stringify(shardId)}: it never announced itself, said goodbye, or fell silent`,
    );
  }
  const messageId = newId();
  const body: ShardControl = {
    kind: kind === 'drain' ? 'shard.drain' : 'shard.resume',
    messageId,
    shardId,
    incarnation: shard.incarnation,
    ...(requestedBy === null ? {} : { requestedBy }),
  };
  await auditedTransaction(db, audit, async (trx) => {
    await insertOutboxRows<Database>(trx, [
      builtOutboxRow({
        id: messageId,
        topic: SHARD_CONTROL_TOPIC,
        key: shardId,
        aggregateType: 'shard',
        eventType: body.kind,
        payload: JSON.stringify(body),
      }),
    ]);
    await recordDrainRequest(trx, shardId, requestedBy, kind === 'drain');
  });
  return { shardId, kind, messageId };
}
