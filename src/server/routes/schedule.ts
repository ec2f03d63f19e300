/** /api/v1/schedule/plan: "where would this VM go, and if nowhere, why?" — without reserving anything. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { ApiDeps } from '../api-deps.ts';
import { fastifySchema } from '../../contract/routes.ts';

export function scheduleRoutes(deps: ApiDeps): FastifyPluginAsyncZod {
  return async (app) => {
    app.post('/schedule/plan', { schema: fastifySchema('planSchedule') }, async (request) => {
      const { worker_labels, ...rest } = request.body;
      const { placement, explanation } = await deps.scheduler.plan({
        ...rest,
        labels: worker_labels ?? {},
        seed: 'plan',
      });
      return { placement, explanation };
    });
  };
}
