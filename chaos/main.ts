// npm run chaos: the full chaos run on the local stack (started if needed). Prints what
// was injected and every invariant; exits 1 when one does not hold.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { loadStackConfig } from '../src/stack/config.js';
import { stackUp } from '../src/stack/stack.js';
import { runChaos } from './chaos.js';

const env = z
  .object({
    CHAOS_EXECUTIONS: z.coerce.number().int().positive().default(500),
    CHAOS_STEPS: z.coerce.number().int().positive().default(3),
    CHAOS_TIMEOUT_MS: z.coerce.number().int().positive().default(900_000),
  })
  .parse(process.env);
const config = loadStackConfig();
await stackUp(config, (line) => process.stdout.write(`[stack] ${line}\n`));
const report = await runChaos({
  stack: config,
  executions: env.CHAOS_EXECUTIONS,
  steps: env.CHAOS_STEPS,
  timeoutMs: env.CHAOS_TIMEOUT_MS,
});
const out = join(config.stackDir, '..', 'chaos');
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
const row = (name: string, value: unknown, good: boolean) =>
  process.stdout.write(`  ${good ? '✓' : '✗'} ${name.padEnd(34)} ${String(value)}\n`);
process.stdout.write(`\nchaos run: ${report.executions} executions, ${(report.durationMs / 1000).toFixed(1)} s\n`);
for (const f of report.faults) {
  process.stdout.write(
    `  fault ${f.fault.padEnd(14)} at ${(f.atMs / 1000).toFixed(1)} s, down ${(f.downMs / 1000).toFixed(1)} s\n`,
  );
}
row('executions completed', `${report.completed} / ${report.executions}`, report.completed === report.executions);
row('side effects applied twice', report.duplicatedEffects, report.duplicatedEffects === 0);
row('side effects', `${report.effects} / ${report.expectedEffects}`, report.effects === report.expectedEffects);
row('outbox rows left', report.outboxRows, report.outboxRows === 0);
row('replication slot lag (bytes)', report.slotLagBytes ?? 'no slot', (report.slotLagBytes ?? 0) < 1024 * 1024);
row('event log vs state tables', `${report.disagreements} disagreements`, report.disagreements === 0);
for (const p of report.problems) process.stdout.write(`  ! ${p}\n`);
process.stdout.write(`report: ${join(out, 'report.json')}\n`);
process.exit(report.ok ? 0 : 1);
