import { useState } from 'react';
import { useClient, useQuery, useSubscription } from 'urql';
import { can, describeError, type Session } from './api.js';
import { Confirm, Notice, StatusBadge, Time } from './common.js';
import { DRAIN, RESUME_SHARD, SHARDS, SHARDS_CHANGED, type Shard, type ShardsData } from './queries.js';

export function ShardsPage({ session }: { session: Session }) {
  const client = useClient();
  const [result, refetch] = useQuery<ShardsData>({ query: SHARDS });
  useSubscription({ query: SHARDS_CHANGED }, () => {
    refetch({ requestPolicy: 'network-only' });
    return null;
  });
  const [pending, setPending] = useState<{ shard: Shard; drain: boolean } | undefined>();
  const [outcome, setOutcome] = useState<{ tone: 'ok' | 'error'; text: string } | undefined>();
  const operator = can(session, 'OPERATOR');
  const run = async (p: { shard: Shard; drain: boolean }) => {
    setPending(undefined);
    const r = await client.mutation(p.drain ? DRAIN : RESUME_SHARD, { id: p.shard.id }).toPromise();
    setOutcome(
      r.error === undefined
        ? { tone: 'ok', text: `${p.drain ? 'Drain' : 'Resume'} asked of ${p.shard.id}.` }
        : { tone: 'error', text: describeError(r.error) },
    );
    refetch({ requestPolicy: 'network-only' });
  };
  if (result.error !== undefined) return <Notice tone="error">{describeError(result.error)}</Notice>;
  const shards = result.data?.shards ?? [];
  return (
    <>
      <h1>Shards</h1>
      {outcome === undefined ? null : <Notice tone={outcome.tone}>{outcome.text}</Notice>}
      <div className="table-wrap">
        <table aria-label="Shards">
          <thead>
            <tr>
              <th scope="col">Shard</th>
              <th scope="col">Service</th>
              <th scope="col">Region</th>
              <th scope="col">Health</th>
              <th scope="col">Load</th>
              <th scope="col">Capabilities</th>
              <th scope="col">Last heartbeat</th>
              {operator ? <th scope="col">Action</th> : null}
            </tr>
          </thead>
          <tbody>
            {shards.map((s) => (
              <tr key={s.id}>
                <td className="mono">{s.id}</td>
                <td>{s.service}</td>
                <td>{s.region ?? <span className="muted">none</span>}</td>
                <td>
                  <StatusBadge status={s.health} />
                  {s.reason === null ? null : <div className="muted">{s.reason}</div>}
                </td>
                <td>
                  <meter min={0} max={s.concurrency} value={s.inFlight} aria-label={`Load of ${s.id}`} /> {s.inFlight}/
                  {s.concurrency}
                </td>
                <td className="mono">{s.capabilities.map((c) => `${c.name}@${c.version}`).join(', ')}</td>
                <td>
                  <Time at={s.lastHeartbeatAt} />
                </td>
                {operator ? (
                  <td>
                    {s.drainRequestedAt === null ? (
                      <button type="button" onClick={() => setPending({ shard: s, drain: true })}>
                        Drain {s.id}
                      </button>
                    ) : (
                      <button type="button" onClick={() => setPending({ shard: s, drain: false })}>
                        Resume {s.id}
                      </button>
                    )}
                  </td>
                ) : null}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {result.data !== undefined && shards.length === 0 ? <p>No live shard.</p> : null}
      {pending === undefined ? null : (
        <Confirm
          title={pending.drain ? `Drain ${pending.shard.id}` : `Resume ${pending.shard.id}`}
          confirmLabel={pending.drain ? 'Drain shard' : 'Resume shard'}
          danger={pending.drain}
          onCancel={() => setPending(undefined)}
          onConfirm={() => void run(pending)}
        >
          <p>
            {pending.drain
              ? `${pending.shard.id} takes no new commands and finishes the ${pending.shard.inFlight} it runs; its queued work goes to other shards that can take it, or waits visibly.`
              : `${pending.shard.id} takes commands again.`}
          </p>
        </Confirm>
      )}
    </>
  );
}
