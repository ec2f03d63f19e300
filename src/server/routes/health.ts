/** Health needs no auth and no rate limit: load balancers and operators call it often. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { fastifySchema } from '../../contract/routes.ts';
import type { ApiDeps } from '../api-deps.ts';

export function healthRoutes(deps: ApiDeps): FastifyPluginAsyncZod {
  return async (app) => {
    app.get('/health', { schema: fastifySchema('health'), config: { rateLimit: false } }, async (_request, reply) => {
      const report = await deps.health();
      return reply.status(report.status === 'ok' ? 200 : 503).send(report);
    });
  };
}
