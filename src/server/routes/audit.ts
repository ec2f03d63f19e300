/** GET /api/v1/audit (admin): the control actions and refused callers, newest first. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { fastifySchema } from '../../contract/routes.ts';
import type { ApiDeps } from '../api-deps.ts';

export function auditRoutes(deps: ApiDeps): FastifyPluginAsyncZod {
  return async (app) => {
    app.get('/audit', { schema: fastifySchema('audit') }, async (request) => {
      const entries = await deps.audit(request.query);
      return { entries, total: entries.length };
    });
  };
}
