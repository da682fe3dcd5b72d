// The services behind the order saga, written only against the worker SDK.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { defineCapability, terminalError } from 'sous/worker';

export const reserve = defineCapability({
  name: 'inventory.reserve',
  input: z.object({ sku: z.string(), quantity: z.number().int().positive() }),
  output: z.object({ reservationId: z.string(), unitPrice: z.number() }),
  handler: async ({ sku }) => {
    await sleep(20);
    return { reservationId: `res-${sku}-${randomUUID().slice(0, 6)}`, unitPrice: 19.5 };
  },
});

export const release = defineCapability({
  name: 'inventory.release',
  input: z.object({ reservationId: z.string() }),
  output: z.object({ released: z.string() }),
  handler: async ({ reservationId }) => ({ released: reservationId }),
});

export const charge = defineCapability({
  name: 'payments.charge',
  input: z.object({ orderId: z.string(), amount: z.number().positive(), card: z.string() }),
  output: z.object({ chargeId: z.string() }),
  handler: async ({ orderId, card }, ctx) => {
    await sleep(30);
    if (card === '4000-0000-0000-0002') throw terminalError('card_declined', `card of order ${orderId} was declined`);
    return { chargeId: `ch-${ctx.idempotencyKey.slice(0, 8)}` };
  },
});

export const refund = defineCapability({
  name: 'payments.refund',
  input: z.object({ chargeId: z.string() }),
  output: z.object({ refunded: z.string() }),
  handler: async ({ chargeId }) => ({ refunded: chargeId }),
});

/** Tells the customer their order failed: the order saga's onFailure step, once it was compensated. */
export const notify = defineCapability({
  name: 'customers.notify',
  input: z.object({ orderId: z.string(), reason: z.string(), message: z.string() }),
  output: z.object({ notified: z.string() }),
  handler: async ({ orderId }) => ({ notified: orderId }),
});

export const ship = defineCapability({
  name: 'shipping.ship',
  input: z.object({ orderId: z.string(), reservationId: z.string() }),
  output: z.object({ trackingNumber: z.string() }),
  handler: async ({ orderId }) => ({ trackingNumber: `TRK-${orderId}` }),
});
