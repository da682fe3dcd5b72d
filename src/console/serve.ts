import type { FastifyInstance, FastifyReply } from 'fastify';
import { loadConsoleAssets } from './bundle.js';

/*
 * The operator console at /console: one HTML page, one script, one stylesheet, all from
 * the package (no CDN). The page itself holds no data and needs no token; every request
 * it makes goes to /graphql with the token the operator signs in with, so the API's
 * role checks are the console's too (a hidden button is a courtesy, not the guard).
 */

export const CONSOLE_PATH = '/console';
const ASSETS = `${CONSOLE_PATH}/assets/`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="robots" content="noindex">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>sous console</title>
  <link rel="stylesheet" href="${ASSETS}console.css">
</head>
<body>
  <div id="root"><p>Loading the sous console…</p></div>
  <noscript>The sous console needs JavaScript.</noscript>
  <script type="module" src="${ASSETS}console.js"></script>
</body>
</html>
`;

// The page and its script come from this origin only; the API is same-origin too
// (fetch and the subscription websocket).
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

/** Adds GET /console (and /console/, the page's client-side routes) and its assets to the app. */
export function registerConsole(app: FastifyInstance): void {
  const page = async (_request: unknown, reply: FastifyReply) =>
    reply.type('text/html; charset=utf-8').headers(SECURITY_HEADERS).send(PAGE);
  app.get(CONSOLE_PATH, page);
  app.get(`${CONSOLE_PATH}/`, page);
  app.get(`${ASSETS}console.js`, async (_request, reply) =>
    reply
      .type('text/javascript; charset=utf-8')
      .header('cache-control', 'no-cache')
      .send((await loadConsoleAssets()).js),
  );
  app.get(`${ASSETS}console.css`, async (_request, reply) =>
    reply
      .type('text/css; charset=utf-8')
      .header('cache-control', 'no-cache')
      .send((await loadConsoleAssets()).css),
  );
}
