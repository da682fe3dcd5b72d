// sous schedule create | list | show | pause | resume | delete (docs/schedules.md)
import { Option, type Command } from 'commander';
import { clientOf, integer, jsonValue } from './common.js';
import { CliError, EXIT } from './exit-codes.js';
import { brief, printJson, printLine, printList, table, time, type Io } from './output.js';

const RUN_FIELDS = 'fireTime outcome catchUp executionId error decidedAt';
const FIELDS = `id name recipe version cron timeZone input overlap missedRuns paused nextRunAt queuedRunAt
  createdBy createdAt lastRun { ${RUN_FIELDS} }`;

interface RunData {
  fireTime: string;
  outcome: string;
  catchUp: boolean;
  executionId: string | null;
  error: unknown;
  decidedAt: string;
}

interface ScheduleData {
  id: string;
  name: string;
  recipe: string;
  version: number | null;
  cron: string;
  timeZone: string;
  input: unknown;
  overlap: string;
  missedRuns: string;
  paused: boolean;
  nextRunAt: string | null;
  queuedRunAt: string | null;
  createdBy: string;
  createdAt: string;
  lastRun: RunData | null;
  runs?: RunData[];
}

interface CreateOptions {
  recipe: string;
  cron: string;
  version?: number;
  tz?: string;
  input?: unknown;
  overlap?: string;
  missedRuns?: string;
  json?: boolean;
}

const lastRun = (s: ScheduleData) => (s.lastRun === null ? '-' : `${time(s.lastRun.fireTime)} ${s.lastRun.outcome}`);

function printSchedule(io: Io, s: ScheduleData): void {
  const fields: [string, string][] = [
    ['id', s.id],
    ['name', s.name],
    ['recipe', s.version === null ? `${s.recipe} (latest)` : `${s.recipe} v${s.version}`],
    ['cron', `${s.cron} (${s.timeZone})`],
    ['input', brief(s.input, 200)],
    ['overlap', s.overlap],
    ['missed runs', s.missedRuns],
    ['state', s.paused ? 'paused' : 'active'],
    ['next run', time(s.nextRunAt)],
    ...(s.queuedRunAt === null ? [] : ([['queued run', time(s.queuedRunAt)]] as [string, string][])),
    ['created', `${time(s.createdAt)} by ${s.createdBy}`],
  ];
  for (const [label, value] of fields) printLine(io, `${`${label}:`.padEnd(13)}${value}`);
  if (s.runs === undefined || s.runs.length === 0) return;
  printLine(io);
  const rows = s.runs.map((r) => [
    time(r.fireTime),
    r.outcome + (r.catchUp ? ' (catch-up)' : ''),
    r.executionId ?? '-',
    brief(r.error),
  ]);
  printLine(io, table(['fire time', 'outcome', 'execution', 'error'], rows));
}

export function registerScheduleCommands(program: Command, io: Io): void {
  const schedule = program.command('schedule').description('start recipes on a cron schedule');

  schedule
    .command('create')
    .description('create a schedule (the same definition under the same name again returns the first)')
    .argument('<name>', 'schedule name (letters, digits, ".", "_", "-")')
    .requiredOption('--recipe <name>', 'the recipe it starts')
    .requiredOption(
      '--cron <expression>',
      'five fields: minute hour day-of-month month day-of-week, e.g. "0 9 * * 1-5"',
    )
    .option('--version <n>', 'a version of the recipe (default: the latest at each start)', integer(1))
    .option('--tz <zone>', 'IANA time zone of the expression (default: UTC)')
    .option('--input <json>', 'input of every execution it starts (default: {})', jsonValue)
    .addOption(
      new Option('--overlap <policy>', 'while its last execution runs (default: skip)').choices([
        'skip',
        'queue_one',
        'allow',
      ]),
    )
    .addOption(
      new Option('--missed-runs <policy>', 'fires missed during downtime (default: run_once)').choices([
        'skip',
        'run_once',
      ]),
    )
    .option('--json', 'print the schedule as JSON')
    .action(async (name: string, o: CreateOptions, command: Command) => {
      const data = await clientOf(command).request<{ createSchedule: { created: boolean; schedule: ScheduleData } }>(
        `mutation($s: ScheduleInput!) { createSchedule(schedule: $s) { created schedule { ${FIELDS} } } }`,
        {
          s: {
            name,
            recipe: o.recipe,
            cron: o.cron,
            ...(o.version === undefined ? {} : { version: o.version }),
            ...(o.tz === undefined ? {} : { timeZone: o.tz }),
            ...(o.input === undefined ? {} : { input: o.input }),
            ...(o.overlap === undefined ? {} : { overlap: o.overlap.toUpperCase() }),
            ...(o.missedRuns === undefined ? {} : { missedRuns: o.missedRuns.toUpperCase() }),
          },
        },
      );
      const { created, schedule: s } = data.createSchedule;
      if (o.json === true) printJson(io, data.createSchedule);
      else printLine(io, `${created ? 'created' : 'exists'} ${s.name} ${s.id}: next run ${time(s.nextRunAt)}`);
    });

  schedule
    .command('list')
    .description('list schedules with their next and last runs')
    .option('--first <n>', 'at most this many (1 to 1000)', integer(1, 1000), 100)
    .option('--json', 'print them as JSON')
    .action(async (o: { first: number; json?: boolean }, command: Command) => {
      const data = await clientOf(command).request<{ schedules: ScheduleData[] }>(
        `query($first: Int) { schedules(first: $first) { ${FIELDS} } }`,
        { first: o.first },
      );
      printList(io, o.json, data.schedules, ['name', 'id', 'recipe', 'cron', 'state', 'next run', 'last run'], (s) => [
        s.name,
        s.id,
        s.recipe,
        `${s.cron} ${s.timeZone}`,
        s.paused ? 'paused' : 'active',
        time(s.nextRunAt),
        lastRun(s),
      ]);
    });

  schedule
    .command('show')
    .description('one schedule with its latest runs')
    .argument('<id>', 'schedule id')
    .option('--runs <n>', 'latest runs shown (1 to 1000)', integer(1, 1000), 20)
    .option('--json', 'print it as JSON')
    .action(async (id: string, o: { runs: number; json?: boolean }, command: Command) => {
      const data = await clientOf(command).request<{ schedule: ScheduleData | null }>(
        `query($id: ID!, $runs: Int) { schedule(id: $id) { ${FIELDS} runs(first: $runs) { ${RUN_FIELDS} } } }`,
        { id, runs: o.runs },
      );
      if (data.schedule === null) {
        throw new CliError(
          EXIT.refused,
          'SOUS_SCHEDULE_NOT_FOUND',
          `no schedule ${id} (list them with "sous schedule list")`,
        );
      }
      if (o.json === true) printJson(io, data.schedule);
      else printSchedule(io, data.schedule);
    });

  for (const [verb, mutation, description] of [
    ['pause', 'pauseSchedule', 'start nothing more until resumed'],
    ['resume', 'resumeSchedule', 'run again from the next fire (fires while paused are not run)'],
  ] as const) {
    schedule
      .command(verb)
      .description(description)
      .argument('<id>', 'schedule id')
      .option('--json', 'print the schedule as JSON')
      .action(async (id: string, o: { json?: boolean }, command: Command) => {
        const data = await clientOf(command).request<Record<string, ScheduleData>>(
          `mutation($id: ID!) { ${mutation}(id: $id) { ${FIELDS} } }`,
          { id },
        );
        const s = data[mutation];
        if (s === undefined) throw new Error(`${mutation} gave no schedule`);
        if (o.json === true) printJson(io, s);
        else printLine(io, `${s.name} ${s.paused ? 'paused' : `active: next run ${time(s.nextRunAt)}`}`);
      });
  }

  schedule
    .command('delete')
    .description('delete a schedule and its run history (the executions it started stay)')
    .argument('<id>', 'schedule id')
    .option('--json', 'print {id, deleted} as JSON')
    .action(async (id: string, o: { json?: boolean }, command: Command) => {
      const data = await clientOf(command).request<{ deleteSchedule: boolean }>(
        `mutation($id: ID!) { deleteSchedule(id: $id) }`,
        { id },
      );
      if (o.json === true) printJson(io, { id, deleted: data.deleteSchedule });
      else if (data.deleteSchedule) printLine(io, `deleted ${id}`);
      if (!data.deleteSchedule) throw new CliError(EXIT.refused, 'SOUS_SCHEDULE_NOT_FOUND', `no schedule ${id}`);
    });
}
