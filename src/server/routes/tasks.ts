/** /api/v1/tasks: every task's real state and result. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { ApiDeps } from '../api-deps.ts';
import { fastifySchema } from '../../contract/routes.ts';

export function taskRoutes(deps: ApiDeps): FastifyPluginAsyncZod {
  return async (app) => {
    app.get('/tasks', { schema: fastifySchema('listTasks') }, async (request) => {
      const tasks = await deps.tasks.list(request.query);
      return { tasks, total: tasks.length };
    });

    app.get('/tasks/:id', { schema: fastifySchema('getTask') }, async (request) => deps.tasks.get(request.params.id));

    app.post('/tasks/:id/cancel', { schema: fastifySchema('cancelTask') }, async (request, reply) => {
      const { task, outcome } = await deps.tasks.cancel(request.params.id);
      if (outcome !== 'requested') return reply.status(200).send({ task_id: task.id, status: task.status, outcome });
      const done = request.query.wait
        ? await deps.tasks.wait(task.id, (request.query.timeout ?? 30) * 1000, 200)
        : null;
      const current = done ?? task;
      return reply
        .status(current.status === 'cancelled' ? 200 : 202)
        .send({ task_id: task.id, status: current.status, outcome, error: current.error });
    });
  };
}
