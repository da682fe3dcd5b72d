import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';

/*
 * GraphiQL served from the npm packages sous depends on (graphiql 3, react 18 and
 * react-dom 18: their UMD builds), not from a CDN: the page works offline and on a
 * network that blocks CDNs, and the versions are the ones package-lock.json pins.
 * Mercurius's own GraphiQL page loads its scripts from unpkg, so it stays off.
 */

const require = createRequire(import.meta.url);
const packageDir = (name: string) => dirname(require.resolve(`${name}/package.json`));

/** Every file the page may load, by the name it is served under. */
const ASSETS: Readonly<Record<string, { path: () => string; type: string }>> = {
  'react.production.min.js': {
    path: () => join(packageDir('react'), 'umd', 'react.production.min.js'),
    type: 'text/javascript; charset=utf-8',
  },
  'react-dom.production.min.js': {
    path: () => join(packageDir('react-dom'), 'umd', 'react-dom.production.min.js'),
    type: 'text/javascript; charset=utf-8',
  },
  'graphiql.min.js': {
    path: () => join(packageDir('graphiql'), 'graphiql.min.js'),
    type: 'text/javascript; charset=utf-8',
  },
  'graphiql.min.css': {
    path: () => join(packageDir('graphiql'), 'graphiql.min.css'),
    type: 'text/css; charset=utf-8',
  },
};

/** Path prefix of the assets, relative to the server root. */
export const GRAPHIQL_ASSETS = '/graphiql/assets/';

// The token goes in the headers tab; only HTTP requests carry it (subscriptions over
// websocket authenticate in connection_init, which GraphiQL's header tab does not fill).
const START = `(function () {
  var url = new URL('/graphql', window.location.href).toString();
  var fetcher = GraphiQL.createFetcher({ url: url });
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(React.createElement(GraphiQL, {
    fetcher: fetcher,
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: true,
    defaultHeaders: '{\\n  "authorization": "Bearer <your token>"\\n}',
    defaultQuery: '{\\n  me { name role }\\n  executions(first: 5) { edges { node { id recipe status } } }\\n}\\n',
  }));
})();
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="robots" content="noindex">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>sous GraphiQL</title>
  <style>body { margin: 0; } #graphiql { height: 100vh; }</style>
  <link rel="stylesheet" href="${GRAPHIQL_ASSETS}graphiql.min.css">
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script src="${GRAPHIQL_ASSETS}react.production.min.js"></script>
  <script src="${GRAPHIQL_ASSETS}react-dom.production.min.js"></script>
  <script src="${GRAPHIQL_ASSETS}graphiql.min.js"></script>
  <script src="${GRAPHIQL_ASSETS}start.js"></script>
</body>
</html>
`;

/** Adds GET /graphiql and its assets to the app. */
export function registerGraphiql(app: FastifyInstance): void {
  app.get('/graphiql', async (_request, reply) => reply.type('text/html; charset=utf-8').send(PAGE));
  app.get(`${GRAPHIQL_ASSETS}start.js`, async (_request, reply) =>
    reply.type('text/javascript; charset=utf-8').send(START),
  );
  app.get<{ Params: { file: string } }>(`${GRAPHIQL_ASSETS}:file`, async (request, reply) => {
    // Only the named files: the parameter never becomes a path.
    const asset = Object.hasOwn(ASSETS, request.params.file) ? ASSETS[request.params.file] : undefined;
    if (asset === undefined) return reply.code(404).send({ error: 'not found' });
    return reply
      .type(asset.type)
      .header('cache-control', 'public, max-age=86400')
      .send(await readFile(asset.path()));
  });
}
