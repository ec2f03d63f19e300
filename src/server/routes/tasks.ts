/** /api/v1/tasks: every task's real state and result. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { notFound } from '../../domain/index.ts';
import type { ApiDeps } from '../api-deps.ts';
import { idParam, listTasksQuery } from '../schemas.ts';

export function taskRoutes(deps: ApiDeps): FastifyPluginAsyncZod {
  return async (app) => {
    const tags = ['tasks'];
    app.get('/tasks', { schema: { tags, summary: 'List tasks', querystring: listTasksQuery } }, async (request) => {
      const tasks = await deps.store.listTasks(request.query);
      return { tasks, total: tasks.length };
    });

    app.get('/tasks/:id', { schema: { tags, summary: 'Get a task, with its result and placement explanation', params: idParam } }, async (request) => {
      const task = await deps.store.getTask(request.params.id);
      if (!task) throw notFound('task', request.params.id);
      return task;
    });
  };
}
