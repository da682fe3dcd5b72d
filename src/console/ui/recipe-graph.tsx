import dagre, { type EdgeLabel, type GraphLabel, type NodeLabel } from '@dagrejs/dagre';
import type { Bucket, StepRow } from './queries.js';

/*
 * The recipe drawn as a graph: its plan becomes nodes and edges (sequence, parallel
 * branches with their join, forEach bodies with per-step item counts, compensations,
 * onFailure/finally), dagre places them, and the SVG colours each node by the state of
 * the execution's steps for it. Nodes are buttons: selecting one shows its attempts.
 */

interface PlanStep {
  readonly id: string;
  readonly type: string;
  readonly capability?: string;
  readonly branches?: readonly (readonly PlanStep[])[];
  readonly steps?: readonly PlanStep[];
  readonly compensate?: { readonly capability: string };
  readonly recipe?: string;
  readonly signal?: string;
}

export interface Plan {
  readonly name: string;
  readonly steps: readonly PlanStep[];
  readonly onFailure?: readonly PlanStep[];
  readonly finally?: readonly PlanStep[];
}

export interface GraphNode {
  readonly id: string;
  /** The plan step id it stands for; undefined for start, end and joins. */
  readonly stepId?: string;
  readonly compensation: boolean;
  readonly title: string;
  readonly detail: string;
  readonly state: string;
  /** forEach body steps: "done/items", with in flight and failed. */
  readonly counts?: string;
}

interface Edge {
  readonly from: string;
  readonly to: string;
  readonly dashed: boolean;
}

/** The state of a plan step from the execution's steps for it (all items of a forEach body). */
function stateOf(rows: readonly StepRow[]): string {
  if (rows.length === 0) return 'pending';
  const has = (s: string) => rows.some((r) => r.status === s);
  for (const s of [
    'dead_lettered',
    'failed',
    'running',
    'scheduled',
    'retry_wait',
    'retry_ready',
    'open',
    'cancelled',
  ]) {
    if (has(s)) return s;
  }
  if (rows.every((r) => r.status === 'skipped')) return 'skipped';
  return 'completed';
}

function countsOf(rows: readonly StepRow[], items: number | undefined): string {
  const done = rows.filter((r) => r.status === 'completed' || r.status === 'skipped').length;
  const running = rows.filter((r) => ['running', 'scheduled', 'retry_wait', 'retry_ready'].includes(r.status)).length;
  const failed = rows.filter((r) => r.status === 'failed' || r.status === 'dead_lettered').length;
  return `${done}/${items ?? rows.length} done · ${running} running · ${failed} failed`;
}

export function buildGraph(plan: Plan, steps: readonly StepRow[], buckets: readonly Bucket[]) {
  const nodes: GraphNode[] = [];
  const edges: Edge[] = [];
  const rowsOf = (stepId: string, compensation: boolean) =>
    steps.filter((s) => s.stepId === stepId && s.compensation === compensation);
  const add = (node: GraphNode) => {
    nodes.push(node);
    return node.id;
  };
  const stepNode = (step: PlanStep, items?: number): string => {
    const rows = rowsOf(step.id, false);
    const detail = step.capability ?? step.recipe ?? step.signal ?? step.type;
    const id = add({
      id: `step:${step.id}`,
      stepId: step.id,
      compensation: false,
      title: step.id,
      detail: step.type === 'task' ? detail : `${step.type}: ${detail}`,
      state: stateOf(rows),
      ...(items === undefined ? {} : { counts: countsOf(rows, items) }),
    });
    if (step.compensate !== undefined) {
      const comp = add({
        id: `comp:${step.id}`,
        stepId: step.id,
        compensation: true,
        title: `undo ${step.id}`,
        detail: step.compensate.capability,
        state: stateOf(rowsOf(step.id, true)),
      });
      edges.push({ from: id, to: comp, dashed: true });
    }
    return id;
  };
  /** Draws a sequence after `from`; returns the last node. */
  const sequence = (list: readonly PlanStep[], from: string): string => {
    let last = from;
    for (const step of list) {
      if (step.type === 'parallel') {
        const fork = add({
          id: `step:${step.id}`,
          stepId: step.id,
          compensation: false,
          title: step.id,
          detail: `parallel: ${step.branches?.length ?? 0} branches`,
          state: stateOf(rowsOf(step.id, false)),
        });
        edges.push({ from: last, to: fork, dashed: false });
        const join = add({ id: `join:${step.id}`, compensation: false, title: 'join', detail: step.id, state: 'join' });
        for (const branch of step.branches ?? []) edges.push({ from: sequence(branch, fork), to: join, dashed: false });
        last = join;
      } else if (step.type === 'forEach') {
        const bucket = buckets.find((b) => b.stepKey === step.id);
        const loop = add({
          id: `step:${step.id}`,
          stepId: step.id,
          compensation: false,
          title: step.id,
          detail: bucket === undefined ? 'forEach' : `forEach: ${bucket.done}/${bucket.items} items done`,
          state: stateOf(rowsOf(step.id, false)),
        });
        edges.push({ from: last, to: loop, dashed: false });
        let inner = loop;
        for (const body of step.steps ?? []) {
          const next = stepNode(body, bucket?.items);
          edges.push({ from: inner, to: next, dashed: false });
          inner = next;
        }
        last = inner;
      } else {
        const next = stepNode(step);
        edges.push({ from: last, to: next, dashed: false });
        last = next;
      }
    }
    return last;
  };
  const start = add({ id: 'start', compensation: false, title: 'start', detail: plan.name, state: 'join' });
  const last = sequence(plan.steps, start);
  const end = add({ id: 'end', compensation: false, title: 'end', detail: '', state: 'join' });
  edges.push({ from: last, to: end, dashed: false });
  for (const [label, list] of [
    ['onFailure', plan.onFailure],
    ['finally', plan.finally],
  ] as const) {
    if (list === undefined || list.length === 0) continue;
    const head = add({ id: `head:${label}`, compensation: false, title: label, detail: '', state: 'join' });
    edges.push({ from: end, to: head, dashed: true });
    sequence(list, head);
  }
  return { nodes, edges };
}

const WIDTH = 230;
const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);
const HEIGHT = 58;

export function RecipeGraph(props: {
  plan: Plan;
  steps: readonly StepRow[];
  buckets: readonly Bucket[];
  selected: string | undefined;
  onSelect: (stepId: string, compensation: boolean) => void;
}) {
  const { nodes, edges } = buildGraph(props.plan, props.steps, props.buckets);
  const g = new dagre.graphlib.Graph<GraphLabel, NodeLabel, EdgeLabel>();
  g.setGraph({ rankdir: 'TB', nodesep: 24, ranksep: 36, marginx: 8, marginy: 8 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) g.setNode(n.id, { width: WIDTH, height: n.state === 'join' ? 30 : HEIGHT });
  for (const e of edges) g.setEdge(e.from, e.to, {});
  dagre.layout(g);
  const size = g.graph();
  return (
    <div className="graph-wrap">
      <svg
        className="graph"
        width={size.width ?? 0}
        height={size.height ?? 0}
        role="group"
        aria-label={`Recipe ${props.plan.name} as a graph`}
      >
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto">
            <path d="M 0 0 L 10 5 L 0 10 z" className="arrow" />
          </marker>
        </defs>
        {edges.map((e) => {
          const points = g.edge(e.from, e.to).points ?? [];
          const d = points.map((p, i) => `${i === 0 ? 'M' : 'L'} ${p.x} ${p.y}`).join(' ');
          return (
            <path
              key={`${e.from}-${e.to}`}
              d={d}
              className={e.dashed ? 'edge dashed' : 'edge'}
              markerEnd="url(#arrow)"
            />
          );
        })}
        {nodes.map((n) => {
          const placed = g.node(n.id);
          const x = (placed.x ?? 0) - placed.width / 2;
          const y = (placed.y ?? 0) - placed.height / 2;
          const stepId = n.stepId;
          if (stepId === undefined) {
            return (
              <g key={n.id} transform={`translate(${x},${y})`} className="node marker-node" aria-hidden="true">
                <rect width={placed.width} height={placed.height} rx={15} />
                <text x={placed.width / 2} y={19} textAnchor="middle">
                  {n.title}
                </text>
              </g>
            );
          }
          const selected = props.selected === n.id;
          const select = () => props.onSelect(stepId, n.compensation);
          return (
            <g
              key={n.id}
              transform={`translate(${x},${y})`}
              className={`node state-${n.state}${n.compensation ? ' compensation' : ''}${selected ? ' selected' : ''}`}
              role="button"
              tabIndex={0}
              data-node={n.id}
              aria-pressed={selected}
              aria-label={`${n.title}, ${n.detail}, ${n.state.replaceAll('_', ' ')}${n.counts === undefined ? '' : `, ${n.counts}`}`}
              onClick={select}
              onKeyDown={(e) => {
                if (e.key === 'Enter' || e.key === ' ') {
                  e.preventDefault();
                  select();
                }
              }}
            >
              <title>{`${n.title}: ${n.counts ?? n.detail} (${n.state.replaceAll('_', ' ')})`}</title>
              <rect width={placed.width} height={placed.height} rx={6} />
              <text x={10} y={18} className="title">
                {clip(n.title, 30)}
              </text>
              <text x={10} y={34} className="detail">
                {clip(n.counts ?? n.detail, 34)}
              </text>
              <text x={10} y={50} className="detail">
                {n.state.replaceAll('_', ' ')}
              </text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}
