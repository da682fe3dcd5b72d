import { useState, type FormEvent } from 'react';
import { useQuery, useSubscription } from 'urql';
import { Link } from 'wouter';
import { describeError } from './api.js';
import { isoOfLocal, Notice, StatusBadge, Time } from './common.js';
import { EXECUTIONS, EXECUTIONS_CHANGED, STATUSES, type ExecutionsData, type ExecutionStatus } from './queries.js';

const PAGE_SIZE = 25;

interface Filters {
  status: ExecutionStatus[];
  recipe: string;
  version: string;
  createdAfter: string;
  createdBefore: string;
  region: string;
  idempotencyKey: string;
}

const EMPTY: Filters = {
  status: [],
  recipe: '',
  version: '',
  createdAfter: '',
  createdBefore: '',
  region: '',
  idempotencyKey: '',
};

/** The filters as the API's ExecutionFilter (empty fields left out). */
function toFilter(f: Filters): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (f.status.length > 0) out.status = f.status;
  if (f.recipe.trim() !== '') out.recipe = f.recipe.trim();
  if (f.version.trim() !== '') out.version = Number(f.version);
  const after = isoOfLocal(f.createdAfter);
  if (after !== undefined) out.createdAfter = after;
  const before = isoOfLocal(f.createdBefore);
  if (before !== undefined) out.createdBefore = before;
  if (f.region.trim() !== '') out.region = f.region.trim();
  if (f.idempotencyKey.trim() !== '') out.idempotencyKey = f.idempotencyKey.trim();
  return out;
}

/**
 * Filters read from the page's address (the overview links to a status this way): the
 * hash router puts a link's `?query` in the address's search part, before the hash.
 */
function fromAddress(): Filters {
  const query = new URLSearchParams(window.location.search);
  const status = query.getAll('status').filter((s): s is ExecutionStatus => STATUSES.includes(s as ExecutionStatus));
  return { ...EMPTY, status, recipe: query.get('recipe') ?? '' };
}

function FilterForm({ initial, onApply }: { initial: Filters; onApply: (f: Filters) => void }) {
  const [draft, setDraft] = useState(initial);
  const set = (key: keyof Filters) => (e: { target: { value: string } }) =>
    setDraft({ ...draft, [key]: e.target.value });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    onApply(draft);
  };
  return (
    <form className="filters" onSubmit={submit} aria-label="Filter executions">
      <fieldset className="statuses">
        <legend>Status</legend>
        {STATUSES.map((s) => (
          <label key={s} className="check">
            <input
              type="checkbox"
              name="status"
              value={s}
              checked={draft.status.includes(s)}
              onChange={(e) =>
                setDraft({
                  ...draft,
                  status: e.target.checked ? [...draft.status, s] : draft.status.filter((x) => x !== s),
                })
              }
            />
            {s.toLowerCase().replace('_', ' ')}
          </label>
        ))}
      </fieldset>
      <label>
        Recipe
        <input name="recipe" value={draft.recipe} onChange={set('recipe')} />
      </label>
      <label>
        Version
        <input name="version" type="number" min={1} value={draft.version} onChange={set('version')} />
      </label>
      <label>
        Created after
        <input name="createdAfter" type="datetime-local" value={draft.createdAfter} onChange={set('createdAfter')} />
      </label>
      <label>
        Created before
        <input name="createdBefore" type="datetime-local" value={draft.createdBefore} onChange={set('createdBefore')} />
      </label>
      <label>
        Region
        <input name="region" value={draft.region} onChange={set('region')} />
      </label>
      <label>
        Idempotency key
        <input name="idempotencyKey" value={draft.idempotencyKey} onChange={set('idempotencyKey')} />
      </label>
      <div className="actions">
        <button type="submit" className="primary">
          Apply filters
        </button>
        <button
          type="button"
          onClick={() => {
            setDraft(EMPTY);
            onApply(EMPTY);
          }}
        >
          Clear
        </button>
      </div>
    </form>
  );
}

export function ExecutionsPage() {
  const [filters, setFilters] = useState<Filters>(fromAddress);
  // Cursors of the pages before this one: "previous" pops, "next" pushes.
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const after = cursors.at(-1) ?? null;
  const filter = toFilter(filters);
  const [result, refetch] = useQuery<ExecutionsData>({
    query: EXECUTIONS,
    variables: { filter, first: PAGE_SIZE, after },
  });
  // Live: any committed change of an execution this filter may show refreshes the page.
  const [live] = useSubscription(
    {
      query: EXECUTIONS_CHANGED,
      variables: {
        filter: {
          ...(filters.status.length > 0 ? { status: filters.status } : {}),
          ...(filters.recipe.trim() === '' ? {} : { recipe: filters.recipe.trim() }),
        },
      },
    },
    (count: number | undefined) => {
      refetch({ requestPolicy: 'network-only' });
      return (count ?? 0) + 1;
    },
  );
  const page = result.data?.executions;
  return (
    <>
      <h1>Executions</h1>
      <FilterForm
        initial={filters}
        onApply={(f) => {
          setFilters(f);
          setCursors([null]);
        }}
      />
      <p className="muted live" aria-live="polite">
        {live.error === undefined
          ? `Live: ${live.data ?? 0} change(s) seen`
          : `Live updates stopped: ${describeError(live.error)}`}
      </p>
      {result.error === undefined ? null : <Notice tone="error">{describeError(result.error)}</Notice>}
      <div className="table-wrap">
        <table aria-label="Executions" aria-busy={result.fetching}>
          <thead>
            <tr>
              <th scope="col">Execution</th>
              <th scope="col">Recipe</th>
              <th scope="col">Status</th>
              <th scope="col">Idempotency key</th>
              <th scope="col">Created</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {(page?.edges ?? []).map(({ node }) => (
              <tr key={node.id} data-execution={node.id}>
                <td>
                  <Link href={`/executions/${node.id}`} className="mono">
                    {node.id.slice(0, 8)}
                  </Link>
                </td>
                <td>
                  {node.recipe} <span className="muted">v{node.version}</span>
                </td>
                <td>
                  <StatusBadge status={node.status} />
                </td>
                <td className="mono">{node.idempotencyKey ?? ''}</td>
                <td>
                  <Time at={node.createdAt} />
                </td>
                <td>
                  <Time at={node.updatedAt} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {page !== undefined && page.edges.length === 0 ? <p>No execution matches these filters.</p> : null}
      <nav className="pager" aria-label="Pages of executions">
        <button type="button" disabled={cursors.length < 2} onClick={() => setCursors(cursors.slice(0, -1))}>
          Previous page
        </button>
        <span>Page {cursors.length}</span>
        <button
          type="button"
          disabled={page?.pageInfo.hasNextPage !== true}
          onClick={() => setCursors([...cursors, page?.pageInfo.endCursor ?? null])}
        >
          Next page
        </button>
      </nav>
    </>
  );
}
