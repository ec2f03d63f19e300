/** Health needs no auth and no rate limit: load balancers and operators call it often. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { ApiDeps } from '../api-deps.ts';

export function healthRoutes(deps: ApiDeps): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/health',
      { schema: { tags: ['health'], summary: "Each engine's state and any warning" }, config: { rateLimit: false } },
      async (_request, reply) => {
        const report = await deps.health();
        return reply.status(report.status === 'ok' ? 200 : 503).send(report);
      },
    );
  };
}
