/** /api/v1/vms: create, list, get, delete, start, stop, exec, executions. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Task } from '../../domain/index.ts';
import type { ApiDeps } from '../api-deps.ts';
import { execPayloadOf } from '../../contract/requests.ts';
import { fastifySchema } from '../../contract/routes.ts';
import { commandFailure } from '../task-failure.ts';
import { identityScope } from '../auth/identity.ts';

const DEFAULT_WAIT_SECONDS = 120;

export function vmRoutes(deps: ApiDeps): FastifyPluginAsyncZod {
  return async (app) => {
    const waited = async (task: Task, query: { wait: boolean; timeout?: number | undefined }): Promise<Task | null> =>
      query.wait ? deps.tasks.wait(task.id, (query.timeout ?? DEFAULT_WAIT_SECONDS) * 1000) : null;

    app.post('/vms', { schema: fastifySchema('createVm') }, async (request, reply) => {
      // Idempotency-Key: the same key from the same caller within 24 h answers with the first VM.
      const key = request.headers['idempotency-key'];
      const idempotency = key === undefined ? {} : { idempotency: { scope: identityScope(request.identity), key } };
      const { vm, task, replayed } = await deps.vms.create(request.body, idempotency);
      if (replayed) reply.header('idempotent-replayed', 'true');
      const done = await waited(task, request.query);
      if (!done) return reply.status(202).send({ vm, task_id: task.id });
      const fresh = (await deps.vms.getById(vm.id)) ?? vm;
      return reply
        .status(done.status === 'completed' ? 201 : 202)
        .send({ vm: fresh, task_id: task.id, task: done, pending_reason: await deps.vms.pendingReason(fresh) });
    });

    app.get('/vms', { schema: fastifySchema('listVms') }, async (request) => {
      const vms = await deps.vms.list(request.query);
      return { vms, total: vms.length };
    });

    app.get('/vms/:id', { schema: fastifySchema('getVm') }, async (request) => {
      const vm = await deps.vms.get(request.params.id);
      return { ...vm, pending_reason: await deps.vms.pendingReason(vm) };
    });

    app.delete('/vms/:id', { schema: fastifySchema('deleteVm') }, async (request, reply) => {
      const task = await deps.vms.delete(request.params.id);
      const done = await waited(task, request.query);
      return reply
        .status(done?.status === 'completed' || task.status === 'completed' ? 200 : 202)
        .send({ task_id: task.id, vm_id: task.vm_id, status: (done ?? task).status, error: (done ?? task).error });
    });

    for (const action of ['start', 'stop'] as const) {
      app.post(
        `/vms/:id/${action}`,
        { schema: fastifySchema(action === 'start' ? 'startVm' : 'stopVm') },
        async (request, reply) => {
          const task = await deps.vms[action](request.params.id);
          const done = await waited(task, request.query);
          return reply
            .status(done?.status === 'completed' ? 200 : 202)
            .send({ task_id: task.id, vm_id: task.vm_id, status: (done ?? task).status, error: (done ?? task).error });
        },
      );
    }

    app.post('/vms/:id/exec', { schema: fastifySchema('execVm') }, async (request, reply) => {
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
      if (done.type !== 'vm:execute' || !done.result)
        throw new Error(`task ${task.id} completed without a command result`);
      return { task_id: task.id, ...done.result };
    });

    app.get('/vms/:id/executions', { schema: fastifySchema('listExecutions') }, async (request) => {
      const executions = await deps.vms.executions(request.params.id);
      return { executions, total: executions.length };
    });
  };
}
