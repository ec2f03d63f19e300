/** /api/v1/tokens: API keys (admin), and the one-time bootstrap of a new cluster's first admin key. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { parseDuration } from '../../config/duration.ts';
import { invalid, ROLES } from '../../domain/index.ts';
import type { ApiDeps } from '../api-deps.ts';
import { idParam } from '../schemas.ts';

const MAX_EXPIRY_MS = 10 * 365 * 86_400_000;

const createTokenBody = z
  .object({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'a key name is 1-63 lowercase letters, digits, ".", "_" or "-"'),
    role: z.enum(ROLES),
    /** `30d`, `12h`, … ; none: the key does not expire. */
    expires: z.string().max(32).optional(),
  })
  .strict();

const listTokensQuery = z
  .object({
    include_revoked: z
      .enum(['true', 'false'])
      .optional()
      .transform((v) => v === 'true'),
  })
  .strict();

export function tokenRoutes(deps: ApiDeps): FastifyPluginAsyncZod {
  return async (app) => {
    const tags = ['tokens'];
    app.post(
      '/tokens',
      {
        schema: {
          tags,
          summary: 'Create an API key (admin); the key is shown in this answer only',
          body: createTokenBody,
        },
      },
      async (request, reply) => {
        const { name, role, expires } = request.body;
        const expiresInMs = expires === undefined ? undefined : parseDuration(expires);
        if (expiresInMs === null || (expiresInMs !== undefined && expiresInMs < 1000)) {
          throw invalid(
            `expires: ${JSON.stringify(expires)} is not a duration of at least 1s, such as 30d, 12h or 90m`,
          );
        }
        if (expiresInMs !== undefined && expiresInMs > MAX_EXPIRY_MS) {
          throw invalid(
            `expires: ${JSON.stringify(expires)} is more than 10 years; leave it out for a key that never expires`,
          );
        }
        const created = await deps.tokens.create(
          { name, role, ...(expiresInMs ? { expires_in_ms: expiresInMs } : {}) },
          request.identity,
        );
        return reply.status(201).send(created);
      },
    );

    app.get(
      '/tokens',
      { schema: { tags, summary: 'List API keys (never their secrets)', querystring: listTokensQuery } },
      async (request) => {
        const tokens = await deps.tokens.list(request.query.include_revoked);
        return { tokens, total: tokens.length };
      },
    );

    app.delete(
      '/tokens/:id',
      { schema: { tags, summary: 'Revoke an API key, by id or name', params: idParam } },
      async (request) => deps.tokens.revoke(request.params.id),
    );

    app.post(
      '/tokens/bootstrap',
      { schema: { tags, summary: "Create a new cluster's first admin key; refused once any key exists" } },
      async (_request, reply) => reply.status(201).send(await deps.tokens.bootstrap()),
    );
  };
}
