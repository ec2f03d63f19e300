/**
 * /api/v1/tokens: API keys (admin), the one-time bootstrap of a new cluster's first admin key, and
 * join tokens (admin), with which new workers get their agent-channel certificates.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { parseDuration } from '../../config/duration.ts';
import { invalid, parseJoinToken, ROLES } from '../../domain/index.ts';
import type { Identity } from '../auth/identity.ts';
import type { ApiDeps } from '../api-deps.ts';
import { idParam } from '../schemas.ts';
import { JOIN_MAX_TTL_MS, JOIN_MAX_USES, JOIN_MIN_TTL_MS } from '../services/join-token-service.ts';

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

const createJoinTokenBody = z
  .object({
    description: z.string().max(200).optional(),
    max_uses: z.number().int().min(1).max(JOIN_MAX_USES).optional(),
    /** `1h`, `30m`, … or a number of seconds; default 1 h, at most 30 days. */
    ttl: z.union([z.string().max(32), z.number().int().min(1)]).optional(),
  })
  .strict()
  .optional();

/** A join token's lifetime: `1h`, `30m`, or seconds (as a number or digits). Undefined: the default. */
function joinTtlMs(ttl: string | number | undefined): number | undefined {
  if (ttl === undefined) return undefined;
  const ms =
    typeof ttl === 'number' ? ttl * 1000 : /^\d+$/.test(ttl.trim()) ? Number(ttl.trim()) * 1000 : parseDuration(ttl);
  if (ms === null || ms < JOIN_MIN_TTL_MS || ms > JOIN_MAX_TTL_MS) {
    throw invalid(
      `ttl: ${JSON.stringify(ttl)} is not a duration from 1s to 30d, such as 30m, 1h or a number of seconds`,
    );
  }
  return ms;
}

const createdBy = (identity: Identity | null) => (identity ? `${identity.kind}:${identity.name}` : null);

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
      '/tokens/join',
      {
        schema: {
          tags,
          summary:
            'Create a join token (admin) with which new workers get their certificates; the token is shown in this answer only',
          body: createJoinTokenBody,
        },
      },
      async (request, reply) => {
        const body = request.body ?? {};
        const ttlMs = joinTtlMs(body.ttl);
        const { token, record } = await deps.joinTokens.create(
          {
            ...(body.description === undefined ? {} : { description: body.description }),
            ...(body.max_uses === undefined ? {} : { maxUses: body.max_uses }),
            ...(ttlMs === undefined ? {} : { ttlMs }),
            createdBy: createdBy(request.identity),
          },
          deps.agentCa()?.fingerprint ?? null,
        );
        return reply.status(201).send({
          token,
          id: record.id,
          description: record.description,
          max_uses: record.max_uses,
          expires_at: record.expires_at,
          ca_fingerprint: parseJoinToken(token).caFingerprint,
        });
      },
    );

    app.get(
      '/tokens/join',
      { schema: { tags, summary: 'List join tokens with their uses and state (never their secrets)' } },
      async () => {
        const tokens = await deps.joinTokens.list();
        return { tokens, total: tokens.length };
      },
    );

    app.delete(
      '/tokens/join/:id',
      { schema: { tags, summary: 'Revoke a join token: no worker can join with it any more', params: idParam } },
      async (request) => deps.joinTokens.revoke(request.params.id),
    );

    app.post(
      '/tokens/bootstrap',
      { schema: { tags, summary: "Create a new cluster's first admin key; refused once any key exists" } },
      async (_request, reply) => reply.status(201).send(await deps.tokens.bootstrap()),
    );
  };
}
