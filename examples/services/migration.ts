// The services behind the data migration, written only against the worker SDK.
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { defineCapability } from 'sous/worker';

export const precheck = defineCapability({
  name: 'migration.precheck',
  input: z.object({ table: z.string() }),
  output: z.object({ partitions: z.array(z.string()) }),
  handler: async ({ table }) => ({ partitions: Array.from({ length: 8 }, (_, i) => `${table}_p${i}`) }),
});

export const snapshot = defineCapability({
  name: 'migration.snapshot',
  input: z.object({ table: z.string() }),
  output: z.object({ snapshot: z.string() }),
  handler: async ({ table }) => ({ snapshot: `${table}@${new Date().toISOString()}` }),
});

export const copyPartition = defineCapability({
  name: 'migration.copy-partition',
  input: z.object({ table: z.string(), partition: z.string() }),
  output: z.object({ rows: z.number() }),
  handler: async ({ partition }, ctx) => {
    // Copying is quick...
    await sleep(40);
    await ctx.heartbeat({ partition, phase: 'copied' });
    return { rows: 1000 + partition.length * 10 };
  },
});

export const verifyPartition = defineCapability({
  name: 'migration.verify-partition',
  input: z.object({ partition: z.string(), rows: z.number() }),
  output: z.object({ partition: z.string(), rows: z.number() }),
  handler: async ({ partition, rows }) => {
    // ...verifying is slow: its bucket fills while copying goes on.
    await sleep(150);
    return { partition, rows };
  },
});

export const validate = defineCapability({
  name: 'migration.validate',
  input: z.object({ table: z.string(), rows: z.number() }),
  output: z.object({ rows: z.number() }),
  handler: async ({ rows }) => ({ rows }),
});
