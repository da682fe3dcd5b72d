// npm run chaos: the full chaos run on the local stack (started if needed). Prints the fault
// schedule, the figures and every invariant; exits 1 when one does not hold. Sizes come from
// the environment (README, "Chaos").
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { parseEnvironment } from '../src/env.js';
import { loadStackConfig } from '../src/stack/config.js';
import { stackUp } from '../src/stack/stack.js';
import { ALL_FAULTS, runChaos } from './chaos.js';

const count = (name: string, fallback: number) =>
  z.coerce
    .number({ error: `${name} must be a positive whole number` })
    .int()
    .positive()
    .default(fallback);
const env = parseEnvironment(
  z.object({
    CHAOS_EXECUTIONS: count('CHAOS_EXECUTIONS', 2000),
    CHAOS_FAULTS: count('CHAOS_FAULTS', 50),
    CHAOS_FAULT_KINDS: z
      .string()
      .default(ALL_FAULTS.join(','))
      .transform((text) => text.split(',').map((f) => f.trim()))
      .pipe(
        z.array(z.enum(ALL_FAULTS, { error: `CHAOS_FAULT_KINDS lists kinds among ${ALL_FAULTS.join(', ')}` })).min(1),
      ),
    CHAOS_IN_FLIGHT: count('CHAOS_IN_FLIGHT', 200),
    CHAOS_ITEMS: count('CHAOS_ITEMS', 20),
    CHAOS_CONTROL_PLANES: count('CHAOS_CONTROL_PLANES', 2),
    CHAOS_WORKERS: count('CHAOS_WORKERS', 2),
    CHAOS_TIMEOUT_MS: count('CHAOS_TIMEOUT_MS', 900_000),
  }),
  process.env,
  'invalid chaos setting',
  (message) => new Error(message),
);
const config = loadStackConfig();
await stackUp(config, (line) => process.stdout.write(`[stack] ${line}\n`));
const report = await runChaos({
  stack: config,
  executions: env.CHAOS_EXECUTIONS,
  faults: env.CHAOS_FAULTS,
  faultKinds: env.CHAOS_FAULT_KINDS,
  inFlight: env.CHAOS_IN_FLIGHT,
  forEachItems: env.CHAOS_ITEMS,
  controlPlanes: env.CHAOS_CONTROL_PLANES,
  workers: env.CHAOS_WORKERS,
  timeoutMs: env.CHAOS_TIMEOUT_MS,
});
const out = join(config.stackDir, '..', 'chaos');
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
const write = (line: string) => process.stdout.write(`${line}\n`);
const row = (name: string, value: unknown, good: boolean) =>
  write(`  ${good ? '✓' : '✗'} ${name.padEnd(36)} ${String(value)}`);

write(
  `\nchaos run: ${report.executions} executions, ${report.faults.length} faults, ${(report.durationMs / 1000).toFixed(1)} s`,
);
write('fault schedule:');
for (const f of [...report.faults].sort((a, b) => a.atMs - b.atMs)) {
  write(
    `  ${(f.atMs / 1000).toFixed(1).padStart(7)} s  ${f.fault.padEnd(14)} ${f.target.padEnd(16)} down ${(f.downMs / 1000).toFixed(1)} s`,
  );
}
const byKind = new Map<string, number>();
for (const f of report.faults) byKind.set(f.fault, (byKind.get(f.fault) ?? 0) + 1);
write(`faults by kind: ${[...byKind].map(([k, n]) => `${k} ${n}`).join(', ')}`);
write(
  `load: ${report.effectsPerSecond.toFixed(0)} side effects/s over the run, at most ${report.peakOpen} executions running at once`,
);
write('executions by recipe and final status:');
for (const [kind, statuses] of Object.entries(report.statuses))
  write(`  ${kind.padEnd(10)} ${JSON.stringify(statuses)}`);
row(
  'executions ended as their recipe must',
  `${report.executions - report.wrongEnd} / ${report.executions}`,
  report.wrongEnd === 0,
);
row('side effects applied twice', report.duplicatedEffects, report.duplicatedEffects === 0);
row('side effects', `${report.effects} / ${report.expectedEffects}`, report.effects === report.expectedEffects);
row('executions with wrong effects', report.executionsWithWrongEffects, report.executionsWithWrongEffects === 0);
row('outbox rows left', report.outboxRows, report.outboxRows === 0);
row('replication slot lag (bytes)', report.slotLagBytes ?? 'no slot', (report.slotLagBytes ?? 0) < 1024 * 1024);
row('event log vs state tables', `${report.disagreements} disagreements`, report.disagreements === 0);
row('dead letters', report.deadLetters, report.deadLetters === 0);
for (const p of report.problems) write(`  ! ${p}`);
write(`report: ${join(out, 'report.json')}`);
process.exit(report.ok ? 0 : 1);
