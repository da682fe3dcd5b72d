// sous dlt list | reprocess | discard | job | jobs
import { Option, type Command } from 'commander';
import type { ApiClient } from './client.js';
import { clientOf, integer, jsonValue, POLL_MS, sleep, usage } from './common.js';
import { CliError, EXIT } from './exit-codes.js';
import { brief, printJson, printLine, printList, span, table, time, type Io } from './output.js';
import { bar, ProgressLine } from './progress.js';

interface FilterOptions {
  capability?: string;
  errorCode?: string;
  topic?: string;
  execution?: string;
  all?: boolean;
}

interface DeadLetterJobData {
  id: string;
  state: 'QUEUED' | 'RUNNING' | 'COMPLETED';
  selection: unknown;
  total: number;
  done: number;
  failed: number;
  batchSize: number;
  createdBy: string;
  createdAt: string;
  startedAt: string | null;
  updatedAt: string;
  finishedAt: string | null;
  lastError: string | null;
  failures: { deadLetterId: string; errorCode: string | null; errorMessage: string | null }[];
}

const JOB_FIELDS = `id state selection total done failed batchSize createdBy createdAt startedAt updatedAt finishedAt
  lastError failures(first: 20) { deadLetterId errorCode errorMessage }`;

function withFilterOptions(command: Command): Command {
  return command
    .option('--capability <name>', 'only dead letters of this capability')
    .option('--error-code <code>', 'only this error code')
    .option('--topic <topic>', 'only this original topic')
    .option('--execution <id>', 'only dead letters of this execution');
}

function filterOf(options: FilterOptions): Record<string, string> {
  return {
    ...(options.capability === undefined ? {} : { capability: options.capability }),
    ...(options.errorCode === undefined ? {} : { errorCode: options.errorCode }),
    ...(options.topic === undefined ? {} : { originalTopic: options.topic }),
    ...(options.execution === undefined ? {} : { executionId: options.execution }),
  };
}

/**
 * The selection of an action: ids, or a filter. Nothing at all is refused rather than
 * read as "every pending dead letter": that takes --all.
 */
function selectionOf(ids: string[], options: FilterOptions): { ids?: string[]; filter?: Record<string, string> } {
  const filter = filterOf(options);
  const filtered = Object.keys(filter).length > 0 || options.all === true;
  if (ids.length > 0 && filtered) throw usage('give dead-letter ids or filters (--capability, --all...), not both');
  if (ids.length > 0) return { ids };
  if (!filtered) {
    throw usage('give dead-letter ids, a filter (--capability, --error-code, --topic, --execution), or --all');
  }
  return { filter };
}

const jobLine = (job: DeadLetterJobData): string =>
  `dead-letter job ${job.id}: ${bar(job.done + job.failed, job.total)} ${job.done + job.failed}/${job.total} ` +
  `(${job.done} reprocessed, ${job.failed} failed) ${job.state}${job.lastError === null ? '' : ` - retrying after: ${job.lastError}`}`;

async function fetchJob(client: ApiClient, id: string): Promise<DeadLetterJobData> {
  const data = await client.request<{ deadLetterJob: DeadLetterJobData | null }>(
    `query($id: ID!) { deadLetterJob(id: $id) { ${JOB_FIELDS} } }`,
    { id },
  );
  if (data.deadLetterJob === null) {
    throw new CliError(
      EXIT.refused,
      'SOUS_DEAD_LETTER_JOB_NOT_FOUND',
      `no dead-letter job ${id} (list them with "sous dlt jobs")`,
    );
  }
  return data.deadLetterJob;
}

/** Follows a job until it completes, with a progress line (plain lines when not a terminal). */
async function followJob(client: ApiClient, io: Io, first: DeadLetterJobData): Promise<DeadLetterJobData> {
  const progress = new ProgressLine(io);
  let job = first;
  while (job.state !== 'COMPLETED') {
    progress.update(jobLine(job));
    await sleep(POLL_MS);
    job = await fetchJob(client, job.id);
  }
  progress.finish(jobLine(job));
  return job;
}

function printJob(io: Io, job: DeadLetterJobData): void {
  const rows: [string, string][] = [
    ['job', job.id],
    ['state', job.state],
    ['progress', `${job.done + job.failed}/${job.total} (${job.done} reprocessed, ${job.failed} failed)`],
    ['selection', brief(job.selection, 200)],
    ['batch', String(job.batchSize)],
    ['by', job.createdBy],
    ['created', time(job.createdAt)],
    ['took', span(job.startedAt ?? job.createdAt, job.finishedAt)],
  ];
  if (job.lastError !== null) rows.push(['error', job.lastError]);
  for (const [k, v] of rows) printLine(io, `${k.padEnd(10)}${v}`);
  if (job.failures.length > 0) {
    printLine(io);
    printLine(
      io,
      table(
        ['FAILED DEAD LETTER', 'CODE', 'WHY'],
        job.failures.map((f) => [f.deadLetterId, f.errorCode ?? '-', f.errorMessage ?? '-']),
      ),
    );
  }
}

/** Exit 1 when the job could not reprocess some letters. */
function failIfFailures(job: DeadLetterJobData): void {
  if (job.state === 'COMPLETED' && job.failed > 0) {
    throw new CliError(
      EXIT.refused,
      'SOUS_DEAD_LETTER_JOB_FAILURES',
      `${job.failed} of ${job.total} dead letters could not be reprocessed: see "sous dlt job ${job.id}"`,
    );
  }
}

export function registerDeadLetterCommands(program: Command, io: Io): void {
  const dlt = program.command('dlt').description('dead letters: list, reprocess (as a background job), discard');

  withFilterOptions(
    dlt
      .command('list')
      .description('dead letters, newest first (pending unless --status)')
      .addOption(new Option('--status <status>', 'which ones').choices(['pending', 'reprocessed', 'discarded'])),
  )
    .option('--first <n>', 'how many', integer(1, 1000), 100)
    .option('--json', 'print the dead letters as JSON')
    .action(async (options: FilterOptions & { status?: string; first: number; json?: boolean }, command: Command) => {
      const data = await clientOf(command).request<{
        deadLetters: {
          id: string;
          status: string;
          capability: string | null;
          originalTopic: string;
          errorCode: string;
          errorMessage: string;
          executionId: string | null;
          stepKey: string | null;
          ingestedAt: string;
        }[];
      }>(
        `query($filter: DeadLetterFilter, $first: Int) { deadLetters(filter: $filter, first: $first) {
          id status capability originalTopic errorCode errorMessage executionId stepKey ingestedAt
          key payload payloadText errorClass attempts consumerGroup resolvedAt resolvedBy reprocessCount outcome } }`,
        {
          filter: {
            ...filterOf(options),
            ...(options.status === undefined ? {} : { status: options.status.toUpperCase() }),
          },
          first: options.first,
        },
      );
      printList(
        io,
        options.json,
        data.deadLetters,
        ['ID', 'STATUS', 'CAPABILITY', 'ERROR', 'EXECUTION', 'STEP', 'INGESTED', 'MESSAGE'],
        (d) => [
          d.id,
          d.status.toLowerCase(),
          d.capability ?? d.originalTopic,
          d.errorCode,
          d.executionId ?? '-',
          d.stepKey ?? '-',
          time(d.ingestedAt),
          brief(d.errorMessage, 60),
        ],
      );
    });

  withFilterOptions(
    dlt
      .command('reprocess')
      .description(
        'publish dead letters again (original topic, key and idempotency key) as a DLT reprocessing job, following its progress',
      )
      .argument('[ids...]', 'dead-letter ids (or use filters)'),
  )
    .option('--all', 'every pending dead letter')
    .option('--batch-size <n>', 'dead letters per job run', integer(1, 10_000), 100)
    .option(
      '--payload <json>',
      'replace the value of the one dead letter given by id (reprocessed at once, no job)',
      jsonValue,
    )
    .option('--detach', 'start the job, print its id, and do not wait')
    .option('--json', 'print the job (or the outcome) as JSON')
    .action(
      async (
        ids: string[],
        options: FilterOptions & { batchSize: number; payload?: unknown; detach?: boolean; json?: boolean },
        command: Command,
      ) => {
        const client = clientOf(command);
        const selection = selectionOf(ids, options);
        if (options.payload !== undefined) {
          if (selection.ids?.length !== 1)
            throw usage('--payload replaces the value of one dead letter: give exactly one id');
          const data = await client.request<{
            reprocessDeadLetters: { deadLetterId: string; messageId: string; stepRequeued: boolean }[];
          }>(
            `mutation($ids: [ID!], $payload: JSON) { reprocessDeadLetters(ids: $ids, payload: $payload) { deadLetterId messageId stepRequeued } }`,
            { ids: selection.ids, payload: options.payload },
          );
          if (options.json === true) printJson(io, data.reprocessDeadLetters);
          else
            for (const o of data.reprocessDeadLetters) {
              printLine(
                io,
                `reprocessed ${o.deadLetterId} as message ${o.messageId}${o.stepRequeued ? ' (step in flight again)' : ''}`,
              );
            }
          return;
        }
        const data = await client.request<{ startDeadLetterJob: DeadLetterJobData }>(
          `mutation($ids: [ID!], $filter: DeadLetterFilter, $batchSize: Int) {
            startDeadLetterJob(ids: $ids, filter: $filter, batchSize: $batchSize) { ${JOB_FIELDS} } }`,
          { ids: selection.ids ?? null, filter: selection.filter ?? null, batchSize: options.batchSize },
        );
        let job = data.startDeadLetterJob;
        if (options.detach === true) {
          if (options.json === true) printJson(io, job);
          else
            printLine(
              io,
              `started dead-letter job ${job.id} over ${job.total} dead letters: follow it with "sous dlt job ${job.id} --follow"`,
            );
          return;
        }
        job = await followJob(client, io, job);
        if (options.json === true) printJson(io, job);
        else printLine(io, `reprocessed ${job.done} of ${job.total} dead letters (job ${job.id})`);
        failIfFailures(job);
      },
    );

  withFilterOptions(
    dlt
      .command('discard')
      .description('mark dead letters as dealt with, publishing nothing')
      .argument('[ids...]', 'dead-letter ids (or use filters)'),
  )
    .option('--all', 'every pending dead letter')
    .option('--json', 'print the discarded ids as JSON')
    .action(async (ids: string[], options: FilterOptions & { json?: boolean }, command: Command) => {
      const selection = selectionOf(ids, options);
      const data = await clientOf(command).request<{ discardDeadLetters: string[] }>(
        `mutation($ids: [ID!], $filter: DeadLetterFilter) { discardDeadLetters(ids: $ids, filter: $filter) }`,
        { ids: selection.ids ?? null, filter: selection.filter ?? null },
      );
      if (options.json === true) printJson(io, data.discardDeadLetters);
      else printLine(io, `discarded ${data.discardDeadLetters.length} dead letter(s)`);
    });

  dlt
    .command('job')
    .description('a DLT reprocessing job: progress, and the dead letters that failed')
    .argument('<id>', 'job id')
    .option('--follow', 'follow its progress until it completes')
    .option('--json', 'print the job as JSON')
    .action(async (id: string, options: { follow?: boolean; json?: boolean }, command: Command) => {
      const client = clientOf(command);
      let job = await fetchJob(client, id);
      if (options.follow === true) job = await followJob(client, io, job);
      if (options.json === true) printJson(io, job);
      else printJob(io, job);
      if (options.follow === true) failIfFailures(job);
    });

  dlt
    .command('jobs')
    .description('DLT reprocessing jobs, newest first')
    .option('--first <n>', 'how many', integer(1, 1000), 20)
    .option('--json', 'print the jobs as JSON')
    .action(async (options: { first: number; json?: boolean }, command: Command) => {
      const data = await clientOf(command).request<{ deadLetterJobs: Omit<DeadLetterJobData, 'failures'>[] }>(
        `query($first: Int) { deadLetterJobs(first: $first) {
          id state selection total done failed batchSize createdBy createdAt startedAt updatedAt finishedAt lastError } }`,
        { first: options.first },
      );
      printList(
        io,
        options.json,
        data.deadLetterJobs,
        ['ID', 'STATE', 'DONE', 'FAILED', 'TOTAL', 'BY', 'CREATED', 'TOOK'],
        (j) => [
          j.id,
          j.state,
          String(j.done),
          String(j.failed),
          String(j.total),
          j.createdBy,
          time(j.createdAt),
          span(j.startedAt ?? j.createdAt, j.finishedAt),
        ],
      );
    });
}
