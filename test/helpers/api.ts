import type { AddressInfo } from 'node:net';
import { buildApi, type ApiOptions } from '../../src/api/app.js';
import type { ControlPlane } from '../../src/control-plane/control-plane.js';
import { databaseUrl } from '../../src/stack/config.js';
import { startTestControlPlane } from './control-plane.js';
import { stackConfig } from './stack.js';

/**
 * Serves `controlPlane`'s GraphQL API on a free port of 127.0.0.1 and returns its base URL
 * (clients add /graphql); `cleanup` closes it.
 */
export async function serveTestApi(
  controlPlane: ControlPlane,
  cleanup: (() => Promise<unknown>)[],
  options: Omit<ApiOptions, 'controlPlane' | 'databaseUrl'> = {},
): Promise<string> {
  const app = await buildApi({ controlPlane, databaseUrl: databaseUrl(stackConfig), ...options });
  await app.listen({ port: 0, host: '127.0.0.1' });
  cleanup.push(() => app.close());
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

/**
 * A control plane of the test's own with its GraphQL API. It ingests the dead letters of
 * the capabilities `test<ns>.*` only, so no other test's dead letters reach it; `cleanup`
 * closes the API, then stops the control plane.
 */
export async function startTestApi(
  ns: string,
  cleanup: (() => Promise<unknown>)[],
): Promise<{ controlPlane: ControlPlane & { replyTopic: string }; url: string }> {
  const controlPlane = await startTestControlPlane({
    ingestDeadLetters: true,
    deadLetterTopicPattern: `^sous\\.cmd\\.test${ns}\\..*\\.DLT$`,
    deadLetterRefreshMs: 1000,
  });
  cleanup.push(() => controlPlane.stop());
  return { controlPlane, url: await serveTestApi(controlPlane, cleanup) };
}
