// sous start | executions list | executions show | executions compensation-plan
import type { Command } from 'commander';
import { clientOf, integer, jsonValue, POLL_MS, readJsonFile, sleep, usage } from './common.js';
import { CliError, EXIT } from './exit-codes.js';
import { brief, printJson, printLine, span, table, time, type Io } from './output.js';
import { ProgressLine } from './progress.js';

export interface AttemptData {
  attempt: number;
  capability: string;
  status: string;
  workerId: string | null;
  region: string | null;
  error: unknown;
  scheduledAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface StepData {
  key: string;
  kind: string;
  status: string;
  attemptCount: number;
  output: unknown;
  error: unknown;
  createdAt: string;
  finishedAt: string | null;
  attempts: AttemptData[];
}

export interface ExecutionData {
  id: string;
  recipe: string;
  version: number;
  status: string;
  input: unknown;
  output: unknown;
  error: unknown;
  idempotencyKey: string | null;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  steps: StepData[];
  events?: { seq: number; type: string; at: string; data: unknown }[];
}

export const EXECUTION_FIELDS = `id recipe version status input output error idempotencyKey createdAt updatedAt finishedAt
  steps { key kind status attemptCount output error createdAt finishedAt
    attempts { attempt capability status workerId region error scheduledAt startedAt finishedAt } }`;

const TERMINAL = ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'];

const errorText = (error: unknown): string =>
  error !== null && typeof error === 'object' && 'message' in error ? brief(error.message, 50) : brief(error, 50);

/** The step table: one row per step with its status, attempts and timings. */
export function stepTable(steps: readonly StepData[], now = Date.now()): string {
  return table(
    ['STEP', 'KIND', 'STATUS', 'ATTEMPTS', 'STARTED', 'DURATION', 'LAST ATTEMPT', 'WORKER', 'ERROR'],
    steps.map((s) => {
      const last = s.attempts.at(-1);
      return [
        s.key,
        s.kind,
        s.status,
        String(s.attemptCount),
        time(s.createdAt),
        span(s.createdAt, s.finishedAt, now),
        last === undefined
          ? '-'
          : last.startedAt === null
            ? `${last.status} (not started)`
            : span(last.startedAt, last.finishedAt, now),
        last?.workerId ?? '-',
        s.error === null || s.error === undefined
          ? last?.error == null
            ? ''
            : errorText(last.error)
          : errorText(s.error),
      ];
    }),
  );
}

export function printExecution(io: Io, e: ExecutionData): void {
  const lines: [string, string][] = [
    ['execution', e.id],
    ['recipe', `${e.recipe} v${e.version}`],
    ['status', e.status],
    ['created', time(e.createdAt)],
    ['finished', e.finishedAt === null ? '-' : `${time(e.finishedAt)} (took ${span(e.createdAt, e.finishedAt)})`],
  ];
  if (e.idempotencyKey !== null) lines.push(['key', e.idempotencyKey]);
  lines.push(['input', brief(e.input, 200)]);
  if (e.output !== null) lines.push(['output', brief(e.output, 200)]);
  if (e.error !== null) lines.push(['error', brief(e.error, 200)]);
  for (const [k, v] of lines) printLine(io, `${k.padEnd(10)}${v}`);
  printLine(io);
  printLine(io, e.steps.length === 0 ? '(no steps yet)' : stepTable(e.steps));
  if (e.events !== undefined) {
    printLine(io);
    printLine(
      io,
      table(
        ['SEQ', 'EVENT', 'AT', 'DATA'],
        e.events.map((ev) => [String(ev.seq), ev.type, time(ev.at), brief(ev.data, 80)]),
      ),
    );
  }
}

async function fetchExecution(command: Command, id: string, events = false): Promise<ExecutionData> {
  const data = await clientOf(command).request<{ execution: ExecutionData | null }>(
    `query($id: ID!) { execution(id: $id) { ${EXECUTION_FIELDS} ${events ? 'events(first: 1000) { seq type at data }' : ''} } }`,
    { id },
  );
  if (data.execution === null) {
    throw new CliError(
      EXIT.refused,
      'SOUS_EXECUTION_NOT_FOUND',
      `no execution ${id} (list them with "sous executions list")`,
    );
  }
  return data.execution;
}

/** Follows an execution until it ends, with a progress line; exit 1 unless it completed. */
async function follow(command: Command, io: Io, id: string): Promise<ExecutionData> {
  const progress = new ProgressLine(io);
  for (;;) {
    const e = await fetchExecution(command, id);
    const finished = e.steps.filter((s) => ['completed', 'skipped'].includes(s.status)).length;
    const active = e.steps.filter((s) => !['completed', 'skipped', 'failed'].includes(s.status));
    const text = `execution ${e.id}: ${e.status}, ${finished}/${e.steps.length} steps done${
      active.length === 0 ? '' : ` (${active.map((s) => `${s.key} ${s.status}`).join(', ')})`
    }`;
    if (TERMINAL.includes(e.status)) {
      progress.finish(text);
      return e;
    }
    progress.update(text);
    await sleep(POLL_MS);
  }
}

interface StartOptions {
  input?: unknown;
  inputFile?: string;
  version?: number;
  idempotencyKey?: string;
  deadline?: string;
  wait?: boolean;
  json?: boolean;
}

interface ListOptions {
  status?: string;
  recipe?: string;
  version?: number;
  first: number;
  after?: string;
  json?: boolean;
}

const STATUSES = ['RUNNING', 'PAUSED', 'COMPENSATING', 'COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'];

export function registerExecutionCommands(program: Command, io: Io): void {
  program
    .command('start')
    .description('start an execution of a recipe (the latest version unless --version)')
    .argument('<recipe>', 'recipe name')
    .option('--input <json>', 'the input, as JSON', jsonValue)
    .option('--input-file <path>', 'read the input from a JSON file ("-": stdin)')
    .option('--version <n>', 'recipe version', integer(1))
    .option('--idempotency-key <key>', 'starting again with the same key returns the same execution')
    .option('--deadline <duration>', "this execution's deadline (e.g. 2h) instead of the recipe's")
    .option('--wait', 'follow the execution until it ends (exit 1 unless it completes)')
    .option('--json', 'print the execution as JSON')
    .action(async (recipe: string, options: StartOptions, command: Command) => {
      if (options.input !== undefined && options.inputFile !== undefined) {
        throw usage('give the input with --input or --input-file, not both');
      }
      const input = options.inputFile !== undefined ? readJsonFile(options.inputFile) : (options.input ?? {});
      const data = await clientOf(command).request<{ startRecipe: { created: boolean; execution: ExecutionData } }>(
        `mutation($recipe: String!, $version: Int, $input: JSON, $key: String, $deadline: String) {
          startRecipe(recipe: $recipe, version: $version, input: $input, idempotencyKey: $key, deadline: $deadline) {
            created execution { ${EXECUTION_FIELDS} } } }`,
        {
          recipe,
          version: options.version ?? null,
          input,
          key: options.idempotencyKey ?? null,
          deadline: options.deadline ?? null,
        },
      );
      let execution = data.startRecipe.execution;
      if (options.json !== true) {
        printLine(
          io,
          data.startRecipe.created
            ? `started execution ${execution.id} (${execution.recipe} v${execution.version})`
            : `execution ${execution.id} exists for this idempotency key (${execution.status})`,
        );
      }
      if (options.wait === true) execution = await follow(command, io, execution.id);
      if (options.json === true) printJson(io, { created: data.startRecipe.created, execution });
      if (options.wait === true && execution.status !== 'COMPLETED') {
        throw new CliError(
          EXIT.refused,
          'SOUS_EXECUTION_' + execution.status,
          `execution ${execution.id} ended ${execution.status}: see "sous executions show ${execution.id}"`,
        );
      }
    });

  const executions = program.command('executions').description('list and inspect executions');
  executions
    .command('list')
    .description('executions, newest first')
    .option('--status <list>', `comma-separated statuses (${STATUSES.join(', ')})`)
    .option('--recipe <name>', 'only this recipe')
    .option('--version <n>', 'only this recipe version', integer(1))
    .option('--first <n>', 'page size', integer(1, 500), 50)
    .option('--after <cursor>', 'the next page, after the cursor the previous page printed')
    .option('--json', 'print the page as JSON')
    .action(async (options: ListOptions, command: Command) => {
      const status = options.status?.split(',').map((s) => s.trim().toUpperCase());
      const unknown = status?.filter((s) => !STATUSES.includes(s)) ?? [];
      if (unknown.length > 0) throw usage(`--status: unknown ${unknown.join(', ')} (use ${STATUSES.join(', ')})`);
      const data = await clientOf(command).request<{
        executions: {
          edges: { cursor: string; node: Omit<ExecutionData, 'steps' | 'input' | 'output' | 'error'> }[];
          pageInfo: { hasNextPage: boolean; endCursor: string | null };
        };
      }>(
        `query($filter: ExecutionFilter, $first: Int, $after: String) {
          executions(filter: $filter, first: $first, after: $after) {
            edges { cursor node { id recipe version status idempotencyKey createdAt updatedAt finishedAt } }
            pageInfo { hasNextPage endCursor } } }`,
        {
          filter: {
            ...(status === undefined ? {} : { status }),
            ...(options.recipe === undefined ? {} : { recipe: options.recipe }),
            ...(options.version === undefined ? {} : { version: options.version }),
          },
          first: options.first,
          after: options.after ?? null,
        },
      );
      const page = data.executions;
      if (options.json === true) {
        printJson(io, { executions: page.edges.map((e) => e.node), pageInfo: page.pageInfo });
        return;
      }
      printLine(
        io,
        table(
          ['ID', 'RECIPE', 'STATUS', 'CREATED', 'DURATION'],
          page.edges.map(({ node: n }) => [
            n.id,
            `${n.recipe} v${n.version}`,
            n.status,
            time(n.createdAt),
            span(n.createdAt, n.finishedAt),
          ]),
        ),
      );
      if (page.pageInfo.hasNextPage && page.pageInfo.endCursor !== null) {
        io.err.write(`more: sous executions list --after ${page.pageInfo.endCursor}\n`);
      }
    });

  executions
    .command('show')
    .description('one execution with its step table (status, attempts, timings)')
    .argument('<id>', 'execution id')
    .option('--events', 'also print the event log')
    .option('--json', 'print the execution as JSON')
    .action(async (id: string, options: { events?: boolean; json?: boolean }, command: Command) => {
      const e = await fetchExecution(command, id, options.events === true);
      if (options.json === true) printJson(io, e);
      else printExecution(io, e);
    });

  executions
    .command('compensation-plan')
    .description('the compensations the execution would run if it failed now, in order, with their inputs')
    .argument('<id>', 'execution id')
    .option('--json', 'print the plan as JSON')
    .action(async (id: string, options: { json?: boolean }, command: Command) => {
      const data = await clientOf(command).request<{ compensationPlan: CompensationPlanData | null }>(
        `query($id: ID!) { compensationPlan(execution: $id) { executionId status
          compensations { order stepKey compensationKey stepId itemIndex capability input inputError status } } }`,
        { id },
      );
      const plan = data.compensationPlan;
      if (plan === null) {
        throw new CliError(
          EXIT.refused,
          'SOUS_EXECUTION_NOT_FOUND',
          `no execution ${id} (list them with "sous executions list")`,
        );
      }
      if (options.json === true) {
        printJson(io, plan);
        return;
      }
      if (plan.compensations.length === 0) {
        printLine(io, `execution ${plan.executionId} (${plan.status}) would run no compensation if it failed now`);
        return;
      }
      printLine(
        io,
        table(
          ['ORDER', 'STEP', 'CAPABILITY', 'STATUS', 'INPUT'],
          plan.compensations.map((c) => [
            String(c.order),
            c.stepKey,
            c.capability,
            c.status,
            c.inputError === null ? brief(c.input, 80) : `(fails: ${errorText(c.inputError)})`,
          ]),
        ),
      );
    });
}

interface CompensationPlanData {
  executionId: string;
  status: string;
  compensations: {
    order: number;
    stepKey: string;
    capability: string;
    status: string;
    input: unknown;
    inputError: unknown;
  }[];
}
