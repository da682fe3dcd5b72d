import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigInvalidError } from '../errors.js';
import type { Logger } from '../logger.js';
import { answerProbe, type Probes } from './probes.js';

export interface ProbeServer {
  /** e.g. http://127.0.0.1:9464 (the port actually bound when 0 was asked). */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * A small HTTP server for /metrics, /healthz and /readyz, for the processes that serve
 * nothing else (control plane, workers): node:http, so the worker SDK gains no web
 * framework. A port already taken is one clear error naming the setting to change.
 */
export async function serveProbes(options: {
  readonly host: string;
  readonly port: number;
  readonly probes: Probes;
  /** The setting that chose the port, named when it is taken. */
  readonly portSetting: string;
  readonly log: Logger;
}): Promise<ProbeServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0] ?? '/';
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    answerProbe(path, options.probes).then(
      (answer) => {
        if (answer === undefined) {
          response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: /metrics, /healthz, /readyz\n');
          return;
        }
        response.writeHead(answer.status, { 'content-type': answer.contentType }).end(answer.body);
      },
      (error: unknown) => {
        options.log.error({ err: error, path }, 'probe failed');
        response.writeHead(500, { 'content-type': 'text/plain' }).end('internal error\n');
      },
    );
  });
  // A slow scraper never holds the process open on stop.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      reject(
        error.code === 'EADDRINUSE'
          ? new ConfigInvalidError(`port ${options.port} is taken: set ${options.portSetting} to a free port`, {
              cause: error,
            })
          : error,
      );
    };
    server.once('error', onError);
    server.listen(options.port, options.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error === undefined ? resolve() : reject(error)));
      }),
  };
}
