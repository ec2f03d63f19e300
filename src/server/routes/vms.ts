/** /api/v1/vms: create, list, get, delete, start, stop, exec, executions. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Task } from '../../domain/index.ts';
import type { ApiDeps } from '../api-deps.ts';
import { createVmBody, execBody, execPayloadOf, idParam, listVmsQuery, waitQuery } from '../schemas.ts';
import { commandFailure } from '../task-failure.ts';

const DEFAULT_WAIT_SECONDS = 120;

export function vmRoutes(deps: ApiDeps): FastifyPluginAsyncZod {
  return async (app) => {
    const tags = ['vms'];

    const waited = async (task: Task, query: { wait: boolean; timeout?: number | undefined }): Promise<Task | null> =>
      query.wait ? deps.tasks.wait(task.id, (query.timeout ?? DEFAULT_WAIT_SECONDS) * 1000) : null;

    app.post(
      '/vms',
      {
        schema: { tags, summary: 'Create a VM (placed by the scheduler)', body: createVmBody, querystring: waitQuery },
      },
      async (request, reply) => {
        const { vm, task } = await deps.vms.create(request.body);
        const done = await waited(task, request.query);
        if (!done) return reply.status(202).send({ vm, task_id: task.id });
        const fresh = (await deps.vms.getById(vm.id)) ?? vm;
        return reply
          .status(done.status === 'completed' ? 201 : 202)
          .send({ vm: fresh, task_id: task.id, task: done, pending_reason: await deps.vms.pendingReason(fresh) });
      },
    );

    app.get('/vms', { schema: { tags, summary: 'List VMs', querystring: listVmsQuery } }, async (request) => {
      const vms = await deps.vms.list(request.query);
      return { vms, total: vms.length };
    });

    app.get('/vms/:id', { schema: { tags, summary: 'Get a VM by id or name', params: idParam } }, async (request) => {
      const vm = await deps.vms.get(request.params.id);
      return { ...vm, pending_reason: await deps.vms.pendingReason(vm) };
    });

    app.delete(
      '/vms/:id',
      { schema: { tags, summary: 'Delete a VM on the worker that holds it', params: idParam, querystring: waitQuery } },
      async (request, reply) => {
        const task = await deps.vms.delete(request.params.id);
        const done = await waited(task, request.query);
        return reply
          .status(done?.status === 'completed' || task.status === 'completed' ? 200 : 202)
          .send({ task_id: task.id, vm_id: task.vm_id, status: (done ?? task).status, error: (done ?? task).error });
      },
    );

    for (const action of ['start', 'stop'] as const) {
      app.post(
        `/vms/:id/${action}`,
        {
          schema: {
            tags,
            summary: `${action === 'start' ? 'Start' : 'Stop'} a VM`,
            params: idParam,
            querystring: waitQuery,
          },
        },
        async (request, reply) => {
          const task = await deps.vms[action](request.params.id);
          const done = await waited(task, request.query);
          return reply
            .status(done?.status === 'completed' ? 200 : 202)
            .send({ task_id: task.id, vm_id: task.vm_id, status: (done ?? task).status, error: (done ?? task).error });
        },
      );
    }

    app.post(
      '/vms/:id/exec',
      { schema: { tags, summary: 'Run a command in a VM and return its output', params: idParam, body: execBody } },
      async (request, reply) => {
        const { timeout } = request.body;
        const task = await deps.vms.exec(request.params.id, execPayloadOf(request.body));
        // Wait a little past the command's own timeout so that its result, not ours, decides.
        const waitMs = timeout ? Math.min(deps.execWaitMs, timeout * 1000 + 5000) : deps.execWaitMs;
        const done = await deps.tasks.wait(task.id, waitMs);
        if (!done || done.status === 'running' || done.status === 'scheduled') {
          return reply.status(202).send({
            task_id: task.id,
            status: done?.status ?? 'scheduled',
            message: `still running; follow it with GET /api/v1/tasks/${task.id}`,
          });
        }
        // The worker's reason decides the answer: a VM found stopping is a 409, a cwd that is not
        // there a 400; only a failure of the driver itself is a 502.
        if (done.status !== 'completed') throw commandFailure(done);
        return { task_id: task.id, ...done.result };
      },
    );

    app.get(
      '/vms/:id/executions',
      { schema: { tags, summary: 'Commands run in a VM', params: idParam } },
      async (request) => {
        const executions = await deps.vms.executions(request.params.id);
        return { executions, total: executions.length };
      },
    );
  };
}
