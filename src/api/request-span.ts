import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context } from '@opentelemetry/api';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Kind, type DocumentNode } from 'graphql';
import { ATTR } from '../observability/span-attributes.js';
import { contextFromHeaders } from '../observability/trace-context.js';
import { tracer } from '../observability/tracing.js';

/**
 * A SERVER span per GraphQL HTTP request (`POST /graphql`), child of the caller's
 * `traceparent` header when it sends one: an execution the request starts is in the
 * caller's trace. Registered before authentication, so a refused request is traced too.
 * Returns the context (with that span) a request's resolvers run in; websocket
 * subscriptions are long-lived and not traced.
 */
export function traceGraphqlRequests(app: FastifyInstance): (request: FastifyRequest) => Context {
  const contexts = new WeakMap<FastifyRequest, Context>();
  app.addHook('onRequest', async (request) => {
    if (!request.url.startsWith('/graphql') || request.headers.upgrade !== undefined) return;
    const parent = contextFromHeaders(request.headers) ?? ROOT_CONTEXT;
    const span = tracer().startSpan(
      `${request.method} /graphql`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          [ATTR.httpRequestMethod]: request.method,
          [ATTR.httpRoute]: '/graphql',
          [ATTR.urlPath]: request.url.split('?')[0] ?? request.url,
          [ATTR.urlScheme]: request.protocol,
          ...(request.headers['user-agent'] === undefined
            ? {}
            : { [ATTR.userAgentOriginal]: request.headers['user-agent'] }),
        },
      },
      parent,
    );
    contexts.set(request, trace.setSpan(parent, span));
  });
  app.addHook('onResponse', async (request, reply) => {
    const span = trace.getSpan(contexts.get(request) ?? ROOT_CONTEXT);
    if (span === undefined) return;
    span.setAttribute(ATTR.httpResponseStatusCode, reply.statusCode);
    // The HTTP conventions: a server span fails on 5xx only (a 4xx is the caller's error).
    if (reply.statusCode >= 500) {
      span.setAttribute(ATTR.errorType, String(reply.statusCode));
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
    span.end();
    contexts.delete(request);
  });
  // A caller that hangs up gets no response: its span ends here instead.
  app.addHook('onRequestAbort', async (request) => {
    const span = trace.getSpan(contexts.get(request) ?? ROOT_CONTEXT);
    if (span === undefined) return;
    span.setAttribute(ATTR.errorType, 'aborted');
    span.end();
    contexts.delete(request);
  });
  return (request) => contexts.get(request) ?? ROOT_CONTEXT;
}

/**
 * The GraphQL operation a request runs (`graphql.operation.type`, `graphql.operation.name`
 * of the semantic conventions), set on its span once the document is parsed.
 */
export function describeOperation(requestContext: Context, document: DocumentNode): void {
  const span = trace.getSpan(requestContext);
  if (span === undefined) return;
  const operation = document.definitions.find((d) => d.kind === Kind.OPERATION_DEFINITION);
  if (operation?.kind !== Kind.OPERATION_DEFINITION) return;
  span.setAttribute('graphql.operation.type', operation.operation);
  if (operation.name !== undefined) span.setAttribute('graphql.operation.name', operation.name.value);
}
