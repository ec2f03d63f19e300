/** /api/v1/tasks: every task's real state and result. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { ApiDeps } from '../api-deps.ts';
import { cancelQuery, idParam, listTasksQuery } from '../schemas.ts';

export function taskRoutes(deps: ApiDeps): FastifyPluginAsyncZod {
  return async (app) => {
    const tags = ['tasks'];
    app.get('/tasks', { schema: { tags, summary: 'List tasks', querystring: listTasksQuery } }, async (request) => {
      const tasks = await deps.tasks.list(request.query);
      return { tasks, total: tasks.length };
    });

    app.get(
      '/tasks/:id',
      { schema: { tags, summary: 'Get a task, with its result and placement explanation', params: idParam } },
      async (request) => deps.tasks.get(request.params.id),
    );

    app.post(
      '/tasks/:id/cancel',
      {
        schema: {
          tags,
          summary: 'Cancel a task: a waiting one never runs, a running one is aborted on its worker',
          params: idParam,
          querystring: cancelQuery,
        },
      },
      async (request, reply) => {
        const { task, outcome } = await deps.tasks.cancel(request.params.id);
        if (outcome !== 'requested') return reply.status(200).send({ task_id: task.id, status: task.status, outcome });
        const done = request.query.wait
          ? await deps.tasks.wait(task.id, (request.query.timeout ?? 30) * 1000, 200)
          : null;
        const current = done ?? task;
        return reply
          .status(current.status === 'cancelled' ? 200 : 202)
          .send({ task_id: task.id, status: current.status, outcome, error: current.error });
      },
    );
  };
}
