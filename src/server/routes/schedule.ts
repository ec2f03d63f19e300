/** /api/v1/schedule/plan: "where would this VM go, and if nowhere, why?" — without reserving anything. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { ApiDeps } from '../api-deps.ts';
import { planBody } from '../schemas.ts';

export function scheduleRoutes(deps: ApiDeps): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      '/schedule/plan',
      {
        schema: {
          tags: ['scheduler'],
          summary: 'Dry-run a placement: the chosen worker and score, or the reasons nothing fits',
          body: planBody,
        },
      },
      async (request) => {
        const { worker_labels, ...rest } = request.body;
        const { placement, explanation } = await deps.scheduler.plan({
          ...rest,
          labels: worker_labels ?? {},
          seed: 'plan',
        });
        return { placement, explanation };
      },
    );
  };
}
