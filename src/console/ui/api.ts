import { createClient as createWsClient } from 'graphql-ws';
import { Client, cacheExchange, fetchExchange, subscriptionExchange, type CombinedError } from 'urql';

/*
 * One urql client per signed-in token: queries and mutations over HTTP with the token in
 * the Authorization header, subscriptions over the graphql-ws protocol with the token in
 * connection_init (browsers cannot set headers on a websocket), as the API expects.
 */

export type Role = 'VIEWER' | 'OPERATOR' | 'ADMIN';

export interface Session {
  readonly token: string;
  readonly name: string;
  readonly role: Role;
}

const RANK: Record<Role, number> = { VIEWER: 0, OPERATOR: 1, ADMIN: 2 };

/** True when the session's role is `needed` or above: the API refuses the rest anyway. */
export const can = (session: Session, needed: Role): boolean => RANK[session.role] >= RANK[needed];

export function makeClient(token: string): { client: Client; dispose: () => void } {
  const wsUrl = new URL('/graphql', window.location.href);
  wsUrl.protocol = wsUrl.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = createWsClient({
    url: wsUrl.toString(),
    connectionParams: { authorization: `Bearer ${token}` },
    lazy: true,
    retryAttempts: Infinity,
  });
  const client = new Client({
    url: '/graphql',
    fetchOptions: { headers: { authorization: `Bearer ${token}` } },
    requestPolicy: 'cache-and-network',
    exchanges: [
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription: (request) => {
          const input = { ...request, query: request.query ?? '' };
          return { subscribe: (sink) => ({ unsubscribe: ws.subscribe(input, sink) }) };
        },
      }),
    ],
  });
  return { client, dispose: () => void ws.dispose() };
}

/** Asks the API who the token is; throws with the API's message when it refuses it. */
export async function whoAmI(token: string): Promise<Session> {
  const response = await fetch('/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: '{ me { name role } }' }),
  });
  const body = (await response.json()) as {
    data?: { me?: { name: string; role: Role } } | null;
    errors?: { message: string; extensions?: { code?: string } }[];
  };
  const me = body.data?.me;
  if (me === undefined) {
    const error = body.errors?.[0];
    throw new Error(`${error?.extensions?.code ?? `HTTP ${response.status}`}: ${error?.message ?? 'sign-in failed'}`);
  }
  return { token, name: me.name, role: me.role };
}

/** An error as the operator should read it: the API's code and message. */
export function describeError(error: CombinedError): string {
  const first = error.graphQLErrors[0];
  if (first !== undefined) {
    const code = (first.extensions as { code?: unknown } | undefined)?.code;
    return typeof code === 'string' ? `${code}: ${first.message}` : first.message;
  }
  return error.networkError?.message ?? error.message;
}
