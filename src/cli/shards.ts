// sous shards list | drain | resume
import type { Command } from 'commander';
import { clientOf } from './common.js';
import { printJson, printLine, printList, time, type Io } from './output.js';

interface ShardData {
  id: string;
  service: string;
  region: string | null;
  health: string;
  reason: string | null;
  capabilities: { name: string; version: number }[];
  inFlight: number;
  concurrency: number;
  lastHeartbeatAt: string;
  drainRequestedBy: string | null;
}

const SHARD_FIELDS = `id service region health reason capabilities { name version } inFlight concurrency
  lastHeartbeatAt drainRequestedBy`;

export function registerShardCommands(program: Command, io: Io): void {
  const shards = program.command('shards').description('the shard registry: the worker processes and their health');
  shards
    .command('list')
    .description('the live shards, by service')
    .option('--capability <name>', 'only shards serving this capability')
    .option('--region <region>', 'only shards of this region')
    .option('--json', 'print the shards as JSON')
    .action(async (options: { capability?: string; region?: string; json?: boolean }, self: Command) => {
      const data = await clientOf(self).request<{ shards: ShardData[] }>(
        `query($capability: String, $region: String) {
          shards(filter: { capability: $capability, region: $region }) { ${SHARD_FIELDS} } }`,
        { capability: options.capability ?? null, region: options.region ?? null },
      );
      printList(
        io,
        options.json,
        data.shards,
        ['SHARD', 'SERVICE', 'REGION', 'HEALTH', 'LOAD', 'CAPABILITIES', 'LAST HEARTBEAT'],
        (s) => [
          s.id,
          s.service,
          s.region ?? '-',
          s.health.toLowerCase() + (s.reason === null ? '' : ` (${s.reason})`),
          `${s.inFlight}/${s.concurrency}`,
          s.capabilities.map((c) => `${c.name}@${c.version}`).join(' '),
          time(s.lastHeartbeatAt),
        ],
      );
    });
  for (const [name, field, description] of [
    [
      'drain',
      'drainShard',
      'a shard takes no new commands and finishes its running ones; its queued work goes to the others',
    ],
    ['resume', 'resumeShard', 'a drained shard takes commands again'],
  ] as const) {
    shards
      .command(name)
      .description(description)
      .argument('<shard>', 'shard id (as "shards list" shows it)')
      .option('--json', 'print the shard as JSON')
      .action(async (id: string, options: { json?: boolean }, self: Command) => {
        const data = await clientOf(self).request<Record<string, ShardData>>(
          `mutation($id: ID!) { ${field}(id: $id) { ${SHARD_FIELDS} } }`,
          { id },
        );
        const shard = data[field];
        if (shard === undefined) return;
        if (options.json === true) printJson(io, shard);
        else printLine(io, `shard ${shard.id}: ${name} requested (now ${shard.health.toLowerCase()})`);
      });
  }
}
