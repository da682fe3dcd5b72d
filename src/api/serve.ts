import type { FastifyInstance } from 'fastify';
import { ConfigInvalidError } from '../errors.js';

/** Listens; a port already taken becomes one clear error naming the setting to change. */
export async function serveApi(
  app: FastifyInstance,
  {
    host = '127.0.0.1',
    port = 4000,
    portVariable = 'SOUS_API_PORT',
  }: { host?: string; port?: number; portVariable?: string } = {},
): Promise<string> {
  try {
    await app.listen({ host, port });
  } catch (error) {
    if ((error as { code?: unknown }).code === 'EADDRINUSE') {
      throw new ConfigInvalidError(`port ${port} is taken: set ${portVariable} to a free port`, { cause: error });
    }
    throw error;
  }
  return `http://${host}:${port}/graphql`;
}
