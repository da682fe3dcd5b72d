import { useQuery } from 'urql';
import { Link } from 'wouter';
import { describeError } from './api.js';
import { Notice, seconds, StatusBadge, Time } from './common.js';
import { OVERVIEW, type OverviewData } from './queries.js';

export function OverviewPage() {
  const [result] = useQuery<OverviewData>({ query: OVERVIEW, requestPolicy: 'network-only' });
  if (result.error !== undefined) return <Notice tone="error">{describeError(result.error)}</Notice>;
  const data = result.data;
  if (data === undefined) return <p>Loading…</p>;
  const oldest = [...data.capabilityBacklog]
    .filter((c) => c.oldestWaitSeconds !== null)
    .sort((a, b) => (b.oldestWaitSeconds ?? 0) - (a.oldestWaitSeconds ?? 0))[0];
  const pendingLetters = data.overview.deadLetterBacklog.reduce((n, b) => n + b.pending, 0);
  return (
    <>
      <h1>Overview</h1>
      <section aria-labelledby="by-status">
        <h2 id="by-status">Executions by status</h2>
        <ul className="tiles">
          {data.overview.executionsByStatus.map((s) => (
            <li key={s.status}>
              <Link href={`/executions?status=${s.status}`} aria-label={`${s.count} ${s.status.toLowerCase()}`}>
                <span className="count">{s.count}</span>
                <StatusBadge status={s.status} />
              </Link>
            </li>
          ))}
        </ul>
      </section>
      <div className="split">
        <section aria-labelledby="dlt">
          <h2 id="dlt">
            Dead-letter backlog: <Link href="/dead-letters">{pendingLetters} pending</Link>
          </h2>
          <div className="table-wrap">
            <table aria-label="Pending dead letters per capability">
              <thead>
                <tr>
                  <th scope="col">Capability</th>
                  <th scope="col">Error code</th>
                  <th scope="col">Pending</th>
                  <th scope="col">Oldest</th>
                </tr>
              </thead>
              <tbody>
                {data.overview.deadLetterBacklog.map((b) => (
                  <tr key={`${b.capability ?? ''}/${b.errorCode}`}>
                    <td className="mono">{b.capability ?? '—'}</td>
                    <td>{b.errorCode}</td>
                    <td>{b.pending}</td>
                    <td>
                      <Time at={b.oldestIngestedAt} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
        <section aria-labelledby="waiting">
          <h2 id="waiting">Oldest waiting command</h2>
          {oldest === undefined ? (
            <p>No command waits for a worker.</p>
          ) : (
            <p>
              <span className="mono">{oldest.capability}</span>: waiting {seconds(oldest.oldestWaitSeconds)} (
              {oldest.waiting} waiting, consumer lag {oldest.consumerLag ?? 'unknown'})
            </p>
          )}
        </section>
      </div>
      <section aria-labelledby="stuck">
        <h2 id="stuck">Stuck executions</h2>
        <p className="muted">No progress for {seconds(data.overview.stuckAfterSeconds)} or more.</p>
        {data.overview.stuck.length === 0 ? (
          <p>None.</p>
        ) : (
          <div className="table-wrap">
            <table aria-label="Stuck executions">
              <thead>
                <tr>
                  <th scope="col">Execution</th>
                  <th scope="col">Recipe</th>
                  <th scope="col">Status</th>
                  <th scope="col">Reason</th>
                  <th scope="col">Idle</th>
                </tr>
              </thead>
              <tbody>
                {data.overview.stuck.map((s) => (
                  <tr key={s.executionId}>
                    <td>
                      <Link href={`/executions/${s.executionId}`} className="mono">
                        {s.executionId.slice(0, 8)}
                      </Link>
                    </td>
                    <td>
                      {s.recipe} <span className="muted">v{s.version}</span>
                    </td>
                    <td>
                      <StatusBadge status={s.status} />
                    </td>
                    <td>
                      {s.reason.replaceAll('_', ' ')}
                      {s.waitingOn.length > 0 ? `: ${s.waitingOn.join(', ')}` : ''}
                      {s.waitReasons.length > 0 ? <div className="muted">{s.waitReasons.join('; ')}</div> : null}
                    </td>
                    <td>{seconds(s.idleSeconds)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </>
  );
}
