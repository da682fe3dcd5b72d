import { useState, type FormEvent } from 'react';
import { useClient, useQuery } from 'urql';
import { Link } from 'wouter';
import { can, describeError, type Session } from './api.js';
import { Confirm, isoOfLocal, Json, Notice, parseJson, Time } from './common.js';
import {
  DEAD_LETTERS,
  DISCARD,
  REPROCESS,
  type DeadLetter,
  type DeadLettersData,
  type ReprocessData,
} from './queries.js';

interface Filters {
  status: string;
  capability: string;
  errorCode: string;
  after: string;
  before: string;
}

interface Outcome {
  readonly id: string;
  readonly ok: boolean;
  readonly text: string;
}

type Pending = { kind: 'reprocess'; ids: string[]; payload?: unknown } | { kind: 'discard'; ids: string[] };

function Preview(props: { letter: DeadLetter; operator: boolean; onReprocess: (payload: unknown) => void }) {
  const { letter } = props;
  const [text, setText] = useState(() =>
    letter.payload === null ? (letter.payloadText ?? '') : JSON.stringify(letter.payload, null, 2),
  );
  const [error, setError] = useState<string | undefined>();
  return (
    <section className="preview" aria-labelledby="preview-title">
      <h2 id="preview-title">Dead letter {letter.id.slice(0, 8)}</h2>
      <dl className="facts">
        <dt>Error</dt>
        <dd>
          <strong>{letter.errorCode}</strong>: {letter.errorMessage}
        </dd>
        <dt>Topic</dt>
        <dd className="mono">{letter.originalTopic}</dd>
        <dt>Key</dt>
        <dd className="mono">{letter.key ?? '—'}</dd>
        <dt>Execution</dt>
        <dd>
          {letter.executionId === null ? (
            '—'
          ) : (
            <Link href={`/executions/${letter.executionId}`} className="mono">
              {letter.executionId.slice(0, 8)} {letter.stepKey ?? ''}
            </Link>
          )}
        </dd>
        <dt>Headers</dt>
        <dd>
          <Json value={letter.headers} label="Headers" />
        </dd>
      </dl>
      <label htmlFor="payload">Payload{props.operator ? ' (edit to patch it before reprocessing)' : ''}</label>
      <textarea
        id="payload"
        className="mono"
        rows={12}
        value={text}
        readOnly={!props.operator}
        onChange={(e) => setText(e.target.value)}
      />
      {error === undefined ? null : <Notice tone="error">{error}</Notice>}
      {props.operator ? (
        <div className="actions">
          <button
            type="button"
            className="primary"
            onClick={() => {
              const parsed = parseJson(text);
              if (!parsed.ok) setError(`The payload is not JSON: ${parsed.error}`);
              else {
                setError(undefined);
                props.onReprocess(parsed.value);
              }
            }}
          >
            Reprocess with this payload
          </button>
        </div>
      ) : null}
    </section>
  );
}

export function DeadLettersPage({ session }: { session: Session }) {
  const client = useClient();
  const [filters, setFilters] = useState<Filters>({
    status: 'PENDING',
    capability: '',
    errorCode: '',
    after: '',
    before: '',
  });
  const [draft, setDraft] = useState(filters);
  const [checked, setChecked] = useState<Set<string>>(new Set());
  const [previewId, setPreviewId] = useState<string | undefined>();
  const [pending, setPending] = useState<Pending | undefined>();
  const [outcomes, setOutcomes] = useState<Outcome[]>([]);
  const filter = {
    status: filters.status,
    ...(filters.capability.trim() === '' ? {} : { capability: filters.capability.trim() }),
    ...(filters.errorCode.trim() === '' ? {} : { errorCode: filters.errorCode.trim() }),
  };
  const [result, refetch] = useQuery<DeadLettersData>({
    query: DEAD_LETTERS,
    variables: { filter, after: isoOfLocal(filters.after), before: isoOfLocal(filters.before) },
  });
  const letters = result.data?.deadLetters ?? [];
  const preview = letters.find((l) => l.id === previewId);
  const operator = can(session, 'OPERATOR');
  const set = (key: keyof Filters) => (e: { target: { value: string } }) =>
    setDraft({ ...draft, [key]: e.target.value });
  const apply = (event: FormEvent) => {
    event.preventDefault();
    setFilters(draft);
    setChecked(new Set());
  };
  // One request per letter, so each shows its own outcome (one refused letter does not hide the others').
  const run = async (p: Pending) => {
    setPending(undefined);
    const results: Outcome[] = [];
    for (const id of p.ids) {
      if (p.kind === 'reprocess') {
        const r = await client
          .mutation<ReprocessData>(REPROCESS, { ids: [id], ...(p.payload === undefined ? {} : { payload: p.payload }) })
          .toPromise();
        const o = r.data?.reprocessDeadLetters[0];
        results.push(
          r.error !== undefined || o === undefined
            ? { id, ok: false, text: r.error === undefined ? 'nothing reprocessed' : describeError(r.error) }
            : { id, ok: true, text: `reprocessed${o.stepRequeued ? '; its step is in flight again' : ''}` },
        );
      } else {
        const r = await client.mutation<{ discardDeadLetters: string[] }>(DISCARD, { ids: [id] }).toPromise();
        results.push(
          r.error === undefined ? { id, ok: true, text: 'discarded' } : { id, ok: false, text: describeError(r.error) },
        );
      }
    }
    setOutcomes(results);
    setChecked(new Set());
    refetch({ requestPolicy: 'network-only' });
  };
  return (
    <>
      <h1>Dead letters</h1>
      <form className="filters" onSubmit={apply} aria-label="Filter dead letters">
        <label>
          Status
          <select name="status" value={draft.status} onChange={set('status')}>
            <option value="PENDING">pending</option>
            <option value="REPROCESSED">reprocessed</option>
            <option value="DISCARDED">discarded</option>
          </select>
        </label>
        <label>
          Capability
          <input name="capability" value={draft.capability} onChange={set('capability')} />
        </label>
        <label>
          Error code
          <input name="errorCode" value={draft.errorCode} onChange={set('errorCode')} />
        </label>
        <label>
          Ingested after
          <input name="after" type="datetime-local" value={draft.after} onChange={set('after')} />
        </label>
        <label>
          Ingested before
          <input name="before" type="datetime-local" value={draft.before} onChange={set('before')} />
        </label>
        <div className="actions">
          <button type="submit" className="primary">
            Apply filters
          </button>
        </div>
      </form>
      {result.error === undefined ? null : <Notice tone="error">{describeError(result.error)}</Notice>}
      {outcomes.length === 0 ? null : (
        <section aria-labelledby="outcomes-title" className="outcomes">
          <h2 id="outcomes-title">Outcome</h2>
          <ul role="status">
            {outcomes.map((o) => (
              <li key={o.id} className={o.ok ? 'ok' : 'failed'} data-outcome={o.id}>
                <span className="mono">{o.id.slice(0, 8)}</span>: {o.ok ? '✓' : '✗'} {o.text}
              </li>
            ))}
          </ul>
        </section>
      )}
      {operator && filters.status === 'PENDING' ? (
        <div className="actions">
          <button
            type="button"
            disabled={checked.size === 0}
            onClick={() => setPending({ kind: 'reprocess', ids: [...checked] })}
          >
            Reprocess selected ({checked.size})
          </button>
          <button
            type="button"
            className="danger"
            disabled={checked.size === 0}
            onClick={() => setPending({ kind: 'discard', ids: [...checked] })}
          >
            Discard selected ({checked.size})
          </button>
        </div>
      ) : null}
      <div className="split">
        <div className="table-wrap">
          <table aria-label="Dead letters" aria-busy={result.fetching}>
            <thead>
              <tr>
                {operator ? <th scope="col">Select</th> : null}
                <th scope="col">Capability</th>
                <th scope="col">Error code</th>
                <th scope="col">Ingested</th>
                <th scope="col">Reprocessed</th>
                <th scope="col">Record</th>
              </tr>
            </thead>
            <tbody>
              {letters.map((l) => (
                <tr key={l.id} data-letter={l.id}>
                  {operator ? (
                    <td>
                      <input
                        type="checkbox"
                        aria-label={`Select dead letter ${l.id.slice(0, 8)}`}
                        checked={checked.has(l.id)}
                        onChange={(e) => {
                          const next = new Set(checked);
                          if (e.target.checked) next.add(l.id);
                          else next.delete(l.id);
                          setChecked(next);
                        }}
                      />
                    </td>
                  ) : null}
                  <td className="mono">{l.capability ?? l.originalTopic}</td>
                  <td>{l.errorCode}</td>
                  <td>
                    <Time at={l.ingestedAt} />
                  </td>
                  <td>{l.reprocessCount}×</td>
                  <td>
                    <button
                      type="button"
                      onClick={() => setPreviewId(l.id)}
                      aria-pressed={previewId === l.id}
                      aria-label={`Preview dead letter ${l.id.slice(0, 8)}`}
                    >
                      Preview
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {result.data !== undefined && letters.length === 0 ? <p>No dead letter matches these filters.</p> : null}
        </div>
        {preview === undefined ? null : (
          <Preview
            key={preview.id}
            letter={preview}
            operator={operator && preview.status === 'PENDING'}
            onReprocess={(payload) => setPending({ kind: 'reprocess', ids: [preview.id], payload })}
          />
        )}
      </div>
      {pending === undefined ? null : (
        <Confirm
          title={pending.kind === 'reprocess' ? 'Reprocess dead letters' : 'Discard dead letters'}
          confirmLabel={pending.kind === 'reprocess' ? 'Reprocess' : 'Discard'}
          danger={pending.kind === 'discard'}
          onCancel={() => setPending(undefined)}
          onConfirm={() => void run(pending)}
        >
          {pending.kind === 'reprocess' ? (
            <p>
              {pending.ids.length} dead letter(s) are published again to their command topic, with their original key
              and idempotency key
              {'payload' in pending && pending.payload !== undefined ? ', carrying the payload you edited' : ''}. A step
              waiting on one is in flight again.
            </p>
          ) : (
            <p>
              {pending.ids.length} dead letter(s) are marked as dealt with; nothing is published, and a step waiting on
              one keeps waiting (retry or skip it on its execution).
            </p>
          )}
        </Confirm>
      )}
    </>
  );
}
