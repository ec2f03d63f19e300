/**
 * /api/v1/tokens: API keys (admin), the one-time bootstrap of a new cluster's first admin key, and
 * join tokens (admin), with which new workers get their agent-channel certificates.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { parseDuration } from '../../config/duration.ts';
import { fastifySchema } from '../../contract/routes.ts';
import { JOIN_MAX_TTL_MS, JOIN_MIN_TTL_MS, invalid, parseJoinToken } from '../../domain/index.ts';
import type { Identity } from '../auth/identity.ts';
import type { ApiDeps } from '../api-deps.ts';
import { MAX_EXPIRY_MS } from '../../contract/requests.ts';

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
    app.post('/tokens', { schema: fastifySchema('createToken') }, async (request, reply) => {
      const { name, role, expires } = request.body;
      const expiresInMs = expires === undefined ? undefined : parseDuration(expires);
      if (expiresInMs === null || (expiresInMs !== undefined && expiresInMs < 1000)) {
        throw invalid(`expires: ${JSON.stringify(expires)} is not a duration of at least 1s, such as 30d, 12h or 90m`);
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
    });

    app.get('/tokens', { schema: fastifySchema('listTokens') }, async (request) => {
      const tokens = await deps.tokens.list(request.query.include_revoked);
      return { tokens, total: tokens.length };
    });

    app.delete('/tokens/:id', { schema: fastifySchema('revokeToken') }, async (request) =>
      deps.tokens.revoke(request.params.id),
    );

    app.post('/tokens/join', { schema: fastifySchema('createJoinToken') }, async (request, reply) => {
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
    });

    app.get('/tokens/join', { schema: fastifySchema('listJoinTokens') }, async () => {
      const tokens = await deps.joinTokens.list();
      return { tokens, total: tokens.length };
    });

    app.delete('/tokens/join/:id', { schema: fastifySchema('revokeJoinToken') }, async (request) =>
      deps.joinTokens.revoke(request.params.id),
    );

    app.post('/tokens/bootstrap', { schema: fastifySchema('bootstrap') }, async (_request, reply) =>
      reply.status(201).send(await deps.tokens.bootstrap()),
    );
  };
}
