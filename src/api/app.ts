import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import type { ExecutionResult, GraphQLFormattedError } from 'graphql';
import mercurius from 'mercurius';
import { controlPlaneInternals, type ControlPlane, type PublicControlPlane } from '../control-plane/control-plane.js';
import { logger as rootLogger, type Logger } from '../logger.js';
import { authenticate, type Caller } from './auth.js';
import { costLimitRule } from './cost.js';
import {
  extensionsOf,
  RequestMalformedError,
  RequestTooLargeError,
  UnauthenticatedError,
  type ErrorExtensions,
} from './errors.js';
import { registerGraphiql } from './graphiql.js';
import { registerConsole } from '../console/serve.js';
import { withOverviewResolvers } from './overview-resolvers.js';
import { nulArgumentRule } from './nul-arguments.js';
import type { PostgresTlsOptions } from '../security/config.js';
import { listenForExecutionChanges, type ChangeListener } from './notifications.js';
import { loaders, resolvers } from './resolvers.js';
import { withDeadLetterJobResolvers } from './dead-letter-job-resolvers.js';
import { withShardLoaders, withShardResolvers } from './shard-resolvers.js';
import { withScheduleLoaders, withScheduleResolvers } from './schedule-resolvers.js';
import { withAuditLogResolvers } from './audit-log-resolvers.js';
import { DateTimeScalar, JsonScalar } from './scalars.js';
import { withObservabilityLoaders, withObservabilityResolvers } from './observability-resolvers.js';
import { answerProbe, PROBE_PATHS } from '../observability/probes.js';
import { ROOT_CONTEXT } from '@opentelemetry/api';
import { describeOperation, traceGraphqlRequests } from './request-span.js';

const SCHEMA = readFileSync(join(import.meta.dirname, 'schema.graphql'), 'utf8');

/** Options of the API app; every default is what `npm start` serves. */
export interface ApiOptions {
  /** The control plane the API drives (an API-only process uses `consume: false`). */
  readonly controlPlane: PublicControlPlane | ControlPlane;
  /** PostgreSQL to LISTEN on for committed execution changes (subscriptions). */
  readonly databaseUrl: string;
  /** TLS of that connection (SOUS_PG_SSL_*). @default the connection string decides */
  readonly databaseTls?: PostgresTlsOptions;
  /** Its password, when not in the connection string (SOUS_DATABASE_PASSWORD_FILE). @default none */
  readonly databasePassword?: string;
  /** Serve GraphiQL at /graphiql. @default false */
  readonly graphiql?: boolean;
  /**
   * Serve the operator console at /console. It holds no data itself: every request it
   * makes carries the token its user signs in with. @default true
   */
  readonly console?: boolean;
  /** Deepest query accepted. @default 10 */
  readonly maxDepth?: number;
  /**
   * Highest estimated query cost accepted: a field costs 1, a list multiplies its fields
   * by `first` (10 when it has none). @default 50000
   */
  readonly maxCost?: number;
  readonly logger?: Logger;
}

/** Mercurius's own refusal of a request (MER_ERR_*), holding the GraphQL errors in `errors`. */
function isMercuriusRefusal(error: unknown): error is Error & { code: string; errors?: unknown } {
  if (!(error instanceof Error) || !('code' in error)) return false;
  const code: unknown = error.code;
  return typeof code === 'string' && code.startsWith('MER_ERR_');
}

/**
 * Fastify's refusal of the HTTP request before GraphQL saw it: a body that does not
 * parse as JSON (a SyntaxError carrying a 4xx statusCode) or a content-type parser error
 * (FST_ERR_CTP_*: empty body, unsupported media type, too large).
 */
function requestRefusal(
  error: unknown,
): { statusCode: number; extensions: ErrorExtensions; message: string } | undefined {
  if (!(error instanceof Error)) return undefined;
  const { statusCode, code } = error as { statusCode?: unknown; code?: unknown };
  if (typeof statusCode !== 'number' || statusCode < 400 || statusCode > 499) return undefined;
  const parser = typeof code === 'string' && code.startsWith('FST_ERR_CTP_');
  if (!parser && !(error instanceof SyntaxError)) return undefined;
  const refusal =
    statusCode === 413
      ? new RequestTooLargeError(`the request body is too large: ${error.message}`, { cause: error })
      : new RequestMalformedError(
          `the request is malformed: ${error.message}; send a JSON body {"query": "...", "variables": {...}} with content-type application/json`,
          { cause: error },
        );
  return { statusCode, extensions: extensionsOf(refusal), message: refusal.message };
}

/**
 * Builds the GraphQL app (Fastify + Mercurius) without listening: tests inject requests
 * or listen on a port of their own; `serve` listens.
 */
export async function buildApi(options: ApiOptions): Promise<FastifyInstance> {
  const log = (options.logger ?? rootLogger).child({ component: 'api' });
  const controlPlane = controlPlaneInternals(options.controlPlane);
  const db = controlPlane.db;
  // Requests are not logged one by one; errors are, through sous's logger.
  const app = Fastify({ logger: false });

  // First: a request's span covers its authentication too.
  const traceOf = traceGraphqlRequests(app);
  const callerOf = new WeakMap<object, Caller>();
  // Every HTTP GraphQL request authenticates first, before its body is read (so a
  // malformed body from a known caller is a 400 saying so, and an unknown caller's body
  // is never parsed); websocket connections authenticate in connection_init (browsers
  // cannot set headers on a websocket).
  app.addHook('onRequest', async (request, reply) => {
    if (!request.url.startsWith('/graphql') || request.headers.upgrade !== undefined) return;
    try {
      callerOf.set(request, await authenticate(db, request.headers.authorization));
    } catch (error) {
      if (!(error instanceof UnauthenticatedError)) throw error;
      return reply
        .code(401)
        .send({ data: null, errors: [{ message: error.message, extensions: extensionsOf(error) }] });
    }
  });

  await app.register(mercurius, {
    schema: SCHEMA,
    resolvers: {
      ...withAuditLogResolvers(
        withOverviewResolvers(
          withScheduleResolvers(withShardResolvers(withObservabilityResolvers(withDeadLetterJobResolvers(resolvers)))),
        ),
      ),
      JSON: JsonScalar,
      DateTime: DateTimeScalar,
    },
    loaders: withScheduleLoaders(withShardLoaders(withObservabilityLoaders(loaders))),
    // GraphiQL is served from local assets by registerGraphiql (Mercurius's loads a CDN).
    graphiql: false,
    queryDepth: options.maxDepth ?? 10,
    // The cost rule reads each request's variables, which a cached validation cannot.
    cache: false,
    validationRules: ({ variables }) => [
      nulArgumentRule(variables ?? {}),
      costLimitRule(options.maxCost ?? 50_000, variables ?? {}),
    ],
    context: (request) => {
      const caller = callerOf.get(request);
      if (caller === undefined) throw new UnauthenticatedError('not authenticated');
      return { caller, db, controlPlane, trace: traceOf(request) };
    },
    subscription: {
      onConnect: async ({ payload }) => {
        const raw = (payload as Record<string, unknown> | undefined) ?? {};
        const header = raw.authorization ?? raw.Authorization;
        try {
          const caller = await authenticate(db, typeof header === 'string' ? header : undefined);
          return { caller, db, controlPlane, trace: ROOT_CONTEXT };
        } catch {
          return false;
        }
      },
    },
    errorFormatter: (execution: ExecutionResult) => {
      // The HTTP request could not be read: nothing ran, and no caller may be known.
      const refusal = execution.errors?.length === 1 ? requestRefusal(execution.errors[0]?.originalError) : undefined;
      if (refusal !== undefined) {
        return {
          statusCode: refusal.statusCode,
          response: { data: null, errors: [{ message: refusal.message, extensions: refusal.extensions }] },
        };
      }
      const errors: GraphQLFormattedError[] = (execution.errors ?? []).flatMap((error) => {
        // Mercurius reports a request it refused before running (unparsable, invalid,
        // too deep) as one error holding the GraphQL errors: each becomes its own.
        const refused: unknown = error.originalError;
        if (isMercuriusRefusal(refused)) {
          const inner = Array.isArray(refused.errors) ? (refused.errors as GraphQLFormattedError[]) : [error];
          return inner.map((e) => ({
            message: e.message,
            ...(e.locations === undefined ? {} : { locations: e.locations }),
            extensions:
              typeof e.extensions?.code === 'string'
                ? e.extensions
                : { code: 'SOUS_GRAPHQL_INVALID', retryable: false, mercurius: refused.code },
          }));
        }
        const original = error.originalError;
        const given = error.extensions as Record<string, unknown> | undefined;
        const extensions =
          given !== undefined && typeof given.code === 'string'
            ? given
            : original === undefined
              ? { code: 'SOUS_GRAPHQL_INVALID', retryable: false }
              : extensionsOf(original);
        if (extensions.code === 'SOUS_INTERNAL') log.error({ err: original ?? error }, 'internal error in a resolver');
        return {
          message: extensions.code === 'SOUS_INTERNAL' ? 'internal error' : error.message,
          ...(error.locations === undefined ? {} : { locations: error.locations }),
          ...(error.path === undefined ? {} : { path: error.path }),
          extensions,
        };
      });
      // A request that could not run at all (unparsable, invalid, too deep or costly) is a
      // 400; one that ran and whose fields failed is a 200 with the errors at their paths.
      const ran = errors.length === 0 || errors.some((e) => e.path !== undefined);
      return { statusCode: ran ? 200 : 400, response: { data: execution.data ?? null, errors } };
    },
  });

  app.graphql.addHook('preExecution', (_schema, document, context) => {
    describeOperation(context.trace, document);
  });

  let listener: ChangeListener | undefined;
  let unsubscribeShards: (() => void) | undefined;
  app.addHook('onReady', async () => {
    unsubscribeShards = controlPlane.onShardsChanged((changes) => {
      for (const change of changes) app.graphql.pubsub.publish({ topic: 'shards', payload: { change } });
    });
    listener = await listenForExecutionChanges(
      {
        connectionString: options.databaseUrl,
        ...(options.databaseTls === undefined ? {} : { tls: options.databaseTls }),
        ...(options.databasePassword === undefined ? {} : { password: options.databasePassword }),
      },
      (change) => {
        app.graphql.pubsub.publish({ topic: `execution:${change.id}`, payload: { change } });
        app.graphql.pubsub.publish({ topic: 'executions', payload: { change } });
      },
      log,
    );
  });
  app.addHook('onClose', async () => {
    unsubscribeShards?.();
    await listener?.close();
  });
  if (options.graphiql === true) registerGraphiql(app);
  if (options.console !== false) registerConsole(app);
  // /metrics, /healthz, /readyz: unauthenticated, as scrapers and orchestrators call them;
  // they show counts and dependency states, never execution data.
  for (const path of PROBE_PATHS) {
    app.get(path, async (_request, reply) => {
      const answer = await answerProbe(path, controlPlane.observability);
      return reply
        .code(answer?.status ?? 404)
        .type(answer?.contentType ?? 'text/plain')
        .send(answer?.body ?? '');
    });
  }
  return app;
}
