// Operator actions on one execution: signal, cancel, pause, resume, retry-step, skip-step, rerun-from.
import type { Command } from 'commander';
import { clientOf, jsonValue } from './common.js';
import { EXECUTION_FIELDS, type ExecutionData } from './executions.js';
import { printJson, printLine, type Io } from './output.js';

interface Action {
  readonly name: string;
  readonly description: string;
  readonly args: readonly [string, string][];
  readonly options?: readonly [flags: string, description: string, parse?: (value: string) => unknown][];
  readonly mutation: string;
  /** The mutation's variables from the positional arguments and options. */
  readonly variables: (args: string[], options: Record<string, unknown>) => Record<string, unknown>;
}

const ACTIONS: readonly Action[] = [
  {
    name: 'signal',
    description: 'deliver a named signal to a waitForSignal step (now or when it begins)',
    args: [
      ['<execution>', 'execution id'],
      ['<name>', 'signal name'],
    ],
    options: [['--payload <json>', 'the signal payload, as JSON', jsonValue]],
    mutation: 'signal(executionId: $id, name: $name, payload: $payload)',
    variables: ([id, name], o) => ({ id, name, payload: o.payload ?? null }),
  },
  {
    name: 'cancel',
    description: 'cancel an execution: nothing more is dispatched; late replies are ignored',
    args: [['<execution>', 'execution id']],
    options: [['--reason <text>', 'why (kept in the event log)']],
    mutation: 'cancelExecution(id: $id, reason: $reason)',
    variables: ([id], o) => ({ id, reason: o.reason ?? null }),
  },
  {
    name: 'pause',
    description: 'pause an execution: nothing new is dispatched; steps in flight finish',
    args: [['<execution>', 'execution id']],
    mutation: 'pauseExecution(id: $id)',
    variables: ([id]) => ({ id }),
  },
  {
    name: 'resume',
    description: 'resume a paused execution',
    args: [['<execution>', 'execution id']],
    mutation: 'resumeExecution(id: $id)',
    variables: ([id]) => ({ id }),
  },
  {
    name: 'retry-step',
    description: 'a new attempt of a task step now (dead-lettered, waiting to retry, or in flight)',
    args: [
      ['<execution>', 'execution id'],
      ['<step-key>', 'step key (as "executions show" lists it)'],
    ],
    mutation: 'retryStep(executionId: $id, stepKey: $stepKey)',
    variables: ([id, stepKey]) => ({ id, stepKey }),
  },
  {
    name: 'skip-step',
    description: 'count a step as completed with --output; later steps see it',
    args: [
      ['<execution>', 'execution id'],
      ['<step-key>', 'step key (as "executions show" lists it)'],
    ],
    options: [['--output <json>', 'the output later steps see, as JSON', jsonValue]],
    mutation: 'skipStep(executionId: $id, stepKey: $stepKey, output: $output)',
    variables: ([id, stepKey], o) => ({ id, stepKey, output: o.output ?? null }),
  },
  {
    name: 'rerun-from',
    description: 'forget a top-level step and all after it, and run again from there',
    args: [
      ['<execution>', 'execution id'],
      ['<step-id>', 'top-level step id'],
    ],
    mutation: 'rerunFromStep(executionId: $id, stepId: $stepId)',
    variables: ([id, stepId]) => ({ id, stepId }),
  },
];

const VARIABLE_TYPES: Record<string, string> = {
  id: 'ID!',
  name: 'String!',
  payload: 'JSON',
  reason: 'String',
  stepKey: 'String!',
  output: 'JSON',
  stepId: 'String!',
};

export function registerActionCommands(program: Command, io: Io): void {
  for (const action of ACTIONS) {
    const command = program.command(action.name).description(action.description);
    for (const [name, description] of action.args) command.argument(name, description);
    for (const [flags, description, parse] of action.options ?? []) {
      if (parse === undefined) command.option(flags, description);
      else command.option(flags, description, parse);
    }
    command.option('--json', 'print the execution as JSON');
    command.action(async (...params: unknown[]) => {
      const self = params.at(-1) as Command;
      const options = params.at(-2) as Record<string, unknown>;
      const args = params.slice(0, action.args.length) as string[];
      const variables = action.variables(args, options);
      const declared = Object.keys(variables)
        .map((v) => `$${v}: ${VARIABLE_TYPES[v] ?? 'String'}`)
        .join(', ');
      const field = action.mutation.replace(/\(.*$/, '');
      const data = await clientOf(self).request<Record<string, ExecutionData>>(
        `mutation(${declared}) { ${action.mutation} { ${EXECUTION_FIELDS} } }`,
        variables,
      );
      const execution = data[field];
      if (execution === undefined) return;
      if (options.json === true) printJson(io, execution);
      else printLine(io, `execution ${execution.id}: ${execution.status}`);
    });
  }
}
