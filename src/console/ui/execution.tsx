import { useState } from 'react';
import { useQuery, useSubscription } from 'urql';
import { Link } from 'wouter';
import { can, describeError, type Session } from './api.js';
import { Json, Notice, seconds, StatusBadge, Time } from './common.js';
import { executionActions, stepActions, useActions, type ActionRequest } from './execution-actions.js';
import {
  EXECUTION,
  EXECUTION_UPDATED,
  RECIPE_PLANS,
  type ExecutionData,
  type ExecutionDetail,
  type RecipePlansData,
  type StepRow,
} from './queries.js';
import { RecipeGraph, type Plan } from './recipe-graph.js';

/** The step an event is about, when it is about one. */
const stepKeyOf = (data: unknown): string => {
  const key = (data as { stepKey?: unknown } | null)?.stepKey;
  return typeof key === 'string' ? key : '';
};

type PlanNode = { id: string; steps?: readonly PlanNode[]; branches?: readonly (readonly PlanNode[])[] };

/** The index of the top-level step of the plan that holds `stepId` (itself, or its parallel/forEach). */
function topLevelIndex(plan: Plan | undefined, stepId: string): number {
  const holds = (node: PlanNode): boolean =>
    node.id === stepId || (node.steps ?? []).some(holds) || (node.branches ?? []).some((branch) => branch.some(holds));
  return ((plan?.steps ?? []) as readonly PlanNode[]).findIndex(holds);
}

/**
 * Where a rerun for `stepId` starts: its top-level step, or an earlier one whose work was
 * compensated (the engine reruns only from before every compensated step).
 */
function rerunTarget(plan: Plan | undefined, steps: readonly StepRow[], stepId: string): string | undefined {
  const own = topLevelIndex(plan, stepId);
  if (own < 0) return undefined;
  const compensated = steps.filter((s) => s.compensation).map((s) => topLevelIndex(plan, s.stepId));
  const first = Math.min(own, ...compensated.filter((i) => i >= 0));
  return plan?.steps[first]?.id;
}

function ActionButtons({ actions, open }: { actions: ActionRequest[]; open: (r: ActionRequest) => void }) {
  if (actions.length === 0) return null;
  return (
    <div className="actions">
      {actions.map((a) => (
        <button
          key={a.title}
          type="button"
          className={a.danger === true ? 'danger' : undefined}
          onClick={() => open(a)}
        >
          {a.title}
        </button>
      ))}
    </div>
  );
}

function StepDetail(props: {
  rows: StepRow[];
  execution: ExecutionDetail;
  plan: Plan | undefined;
  operator: boolean;
  open: (r: ActionRequest) => void;
}) {
  return (
    <>
      {props.rows.map((row) => (
        <section key={row.key} className="step" aria-labelledby={`step-${row.key}`}>
          <h3 id={`step-${row.key}`}>
            {row.key} <StatusBadge status={row.status} />{' '}
            <span className="muted">
              {row.kind}
              {row.compensation ? ' (compensation)' : ''}
            </span>
          </h3>
          {row.waitingForShard === null ? null : (
            <Notice tone="error">
              Waiting for a shard ({row.waitingForShard.code}): {row.waitingForShard.reason}
            </Notice>
          )}
          {props.operator ? (
            <ActionButtons
              actions={stepActions(
                props.execution.id,
                props.execution.status,
                row,
                rerunTarget(props.plan, props.execution.steps, row.stepId),
              )}
              open={props.open}
            />
          ) : null}
          <dl className="facts">
            <dt>Output</dt>
            <dd>
              <Json value={row.output} label={`Output of ${row.key}`} />
            </dd>
            {row.error === null ? null : (
              <>
                <dt>Error</dt>
                <dd>
                  <Json value={row.error} label={`Error of ${row.key}`} />
                </dd>
              </>
            )}
          </dl>
          <div className="table-wrap">
            <table aria-label={`Attempts of ${row.key}`}>
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">Status</th>
                  <th scope="col">Capability</th>
                  <th scope="col">Shard</th>
                  <th scope="col">Scheduled</th>
                  <th scope="col">Waited</th>
                  <th scope="col">Ran</th>
                  <th scope="col">Input</th>
                  <th scope="col">Error</th>
                </tr>
              </thead>
              <tbody>
                {row.attempts.map((a) => (
                  <tr key={a.id}>
                    <td>{a.attempt}</td>
                    <td>
                      <StatusBadge status={a.status} />
                    </td>
                    <td className="mono">{a.capability}</td>
                    <td className="mono">
                      {a.shard?.id ?? a.workerId ?? '—'}
                      {a.region === null ? '' : ` (${a.region})`}
                    </td>
                    <td>
                      <Time at={a.scheduledAt} />
                    </td>
                    <td>{seconds(a.waitSeconds)}</td>
                    <td>{seconds(a.runSeconds)}</td>
                    <td>
                      <Json value={a.input} label={`Input of attempt ${a.attempt}`} />
                    </td>
                    <td>
                      <Json value={a.error} label={`Error of attempt ${a.attempt}`} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      ))}
    </>
  );
}

export function ExecutionPage({ id, session }: { id: string; session: Session }) {
  const [result, refetch] = useQuery<ExecutionData>({ query: EXECUTION, variables: { id } });
  const execution = result.data?.execution ?? undefined;
  const [plans] = useQuery<RecipePlansData>({
    query: RECIPE_PLANS,
    variables: { name: execution?.recipe ?? '' },
    pause: execution === undefined,
  });
  // Live: every committed change of this execution re-reads it.
  useSubscription({ query: EXECUTION_UPDATED, variables: { id } }, () => {
    refetch({ requestPolicy: 'network-only' });
    return null;
  });
  const [selected, setSelected] = useState<{ stepId: string; compensation: boolean } | undefined>();
  const actions = useActions(() => refetch({ requestPolicy: 'network-only' }));
  if (result.error !== undefined) return <Notice tone="error">{describeError(result.error)}</Notice>;
  if (execution === undefined) return <p>{result.fetching ? 'Loading…' : `No execution ${id}.`}</p>;
  const plan = plans.data?.recipe?.versions.find((v) => v.version === execution.version)?.plan as Plan | undefined;
  const operator = can(session, 'OPERATOR');
  const rows =
    selected === undefined
      ? []
      : execution.steps.filter((s) => s.stepId === selected.stepId && s.compensation === selected.compensation);
  return (
    <>
      <p>
        <Link href="/executions">← Executions</Link>
      </p>
      <h1>
        {execution.recipe} <span className="muted">v{execution.version}</span>{' '}
        <span className="execution-status" data-status={execution.status}>
          <StatusBadge status={execution.status} />
        </span>
      </h1>
      <p className="mono muted">{execution.id}</p>
      {actions.notice}
      {operator ? (
        <ActionButtons actions={executionActions(execution.id, execution.status)} open={actions.open} />
      ) : null}
      <dl className="facts">
        <dt>Created</dt>
        <dd>
          <Time at={execution.createdAt} />
        </dd>
        <dt>Finished</dt>
        <dd>
          <Time at={execution.finishedAt} />
        </dd>
        <dt>Idempotency key</dt>
        <dd className="mono">{execution.idempotencyKey ?? '—'}</dd>
        <dt>Input</dt>
        <dd>
          <Json value={execution.input} label="Execution input" />
        </dd>
        <dt>Output</dt>
        <dd>
          <Json value={execution.output} label="Execution output" />
        </dd>
        {execution.error === null ? null : (
          <>
            <dt>Error</dt>
            <dd>
              <Json value={execution.error} label="Execution error" />
            </dd>
          </>
        )}
      </dl>
      <div className="split">
        <section aria-labelledby="graph-title">
          <h2 id="graph-title">Recipe</h2>
          {plan === undefined ? (
            <p>Loading the plan…</p>
          ) : (
            <RecipeGraph
              plan={plan}
              steps={execution.steps}
              buckets={execution.buckets}
              selected={
                selected === undefined ? undefined : `${selected.compensation ? 'comp' : 'step'}:${selected.stepId}`
              }
              onSelect={(stepId, compensation) => setSelected({ stepId, compensation })}
            />
          )}
        </section>
        <section aria-labelledby="step-title" className="step-panel">
          <h2 id="step-title">Step</h2>
          {selected === undefined ? (
            <p className="muted">Select a step in the graph to see its attempts.</p>
          ) : rows.length === 0 ? (
            <p>Step {selected.stepId} has not begun.</p>
          ) : (
            <StepDetail rows={rows} execution={execution} plan={plan} operator={operator} open={actions.open} />
          )}
        </section>
      </div>
      <section aria-labelledby="events-title">
        <h2 id="events-title">Events</h2>
        <ol className="timeline" tabIndex={0} aria-label="Event log, oldest first">
          {execution.events.map((e) => (
            <li key={e.seq}>
              <span className="mono">#{e.seq}</span> <strong>{e.type}</strong>{' '}
              <span className="mono">{stepKeyOf(e.data)}</span> <Time at={e.at} />
              <details>
                <summary>data</summary>
                <Json value={e.data} label={`Event ${e.seq} data`} />
              </details>
            </li>
          ))}
        </ol>
      </section>
      {actions.dialog}
    </>
  );
}
