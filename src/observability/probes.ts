import type { Registry } from 'prom-client';
import type { Readiness } from './readiness.js';

/** What a process serves at /metrics, /healthz and /readyz. */
export interface Probes {
  readonly registry: Registry;
  readiness(): Promise<Readiness>;
}

export interface ProbeAnswer {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

export const PROBE_PATHS = ['/metrics', '/healthz', '/readyz'] as const;

/**
 * The answer to a probe path, the same from the API's Fastify and from the bare HTTP
 * server of control-plane and worker processes. /healthz is liveness: it answers while
 * the event loop runs and checks nothing else, so a dependency outage never gets a
 * process restarted (that is /readyz's job: taken out of rotation, not killed).
 */
export async function answerProbe(path: string, probes: Probes): Promise<ProbeAnswer | undefined> {
  switch (path) {
    case '/metrics':
      return { status: 200, contentType: probes.registry.contentType, body: await probes.registry.metrics() };
    case '/healthz':
      return { status: 200, contentType: 'application/json', body: JSON.stringify({ status: 'ok' }) };
    case '/readyz': {
      const readiness = await probes.readiness();
      return {
        status: readiness.ready ? 200 : 503,
        contentType: 'application/json',
        body: JSON.stringify({ status: readiness.ready ? 'ready' : 'not ready', checks: readiness.checks }),
      };
    }
    default:
      return undefined;
  }
}
