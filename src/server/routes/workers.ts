/** /api/v1/workers and /api/v1/cluster: the seed's worker and cluster endpoints. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { invalid } from '../../domain/index.ts';
import { agentControlChannel } from '../agent/log-relay.ts';
import type { ApiDeps } from '../api-deps.ts';
import { memoizedSerializerCompiler } from '../read-model/memoized-serializer.ts';
import type { WorkerStats } from '../services/worker-view.ts';

/** The seed's answer to drain and activate, `{ worker_id, status, message }`, with the worker itself. */
function controlAnswer(worker: WorkerStats) {
  return { worker_id: worker.id, status: worker.status, message: controlMessage(worker), worker };
}

function controlMessage(worker: WorkerStats): string {
  const drain = worker.drain;
  if (drain?.drained_at) return `worker ${worker.id} is drained: no VM is left on it`;
  if (drain) {
    const left = `${worker.vm_count} VM${worker.vm_count === 1 ? '' : 's'} left`;
    if (!drain.deadline) return `worker ${worker.id} is draining with no deadline: it takes no new VMs; ${left}`;
    return `worker ${worker.id} is draining: it takes no new VMs; ${left}, deleted if still there at ${drain.deadline.toISOString()}`;
  }
  if (!worker.eligible) return `worker ${worker.id} is ineligible: it keeps its VMs but takes no new ones`;
  return `worker ${worker.id} is ${worker.status} and takes new VMs`;
}
import { fastifySchema } from '../../contract/routes.ts';
import { sinceOf, stepOf, timeOf } from './time-query.ts';

export function workerRoutes(deps: ApiDeps): FastifyPluginAsyncZod {
  return async (app) => {
    // The two busiest reads answer shared objects (worker-service.ts), written to JSON once each.
    const shared = { serializerCompiler: memoizedSerializerCompiler };
    app.get('/workers', { schema: fastifySchema('listWorkers'), ...shared }, async (request) => {
      const { zone, status, capability } = request.query;
      return deps.workers.workerList({ zone, status, ...(capability ? { capabilities: [capability] } : {}) });
    });

    app.get('/workers/:id', { schema: fastifySchema('getWorker') }, async (request) =>
      deps.workers.getWorker(request.params.id),
    );

    app.get('/workers/:id/vms', { schema: fastifySchema('listWorkerVms') }, async (request) => {
      const vms = await deps.workers.getWorkerVms(request.params.id);
      return { worker_id: request.params.id, vms, total: vms.length };
    });

    app.get('/workers/:id/metrics', { schema: fastifySchema('workerMetrics') }, async (request) => {
      const { limit, since, until, step } = request.query;
      if (since === undefined && step === undefined && until === undefined) {
        const metrics = await deps.workers.metrics(request.params.id, limit);
        return { metrics, total: metrics.length };
      }
      const now = Date.now();
      const range = {
        since: new Date(sinceOf(since, now) ?? now - 3_600_000),
        until: new Date(timeOf('until', until, now) ?? now),
        stepSeconds: stepOf(step),
      };
      const timeline = await deps.workers.metricHistory(request.params.id, range);
      return { metrics: timeline.samples, total: timeline.samples.length, ...timeline.range };
    });

    app.post('/workers/:id/drain', { schema: fastifySchema('drainWorker') }, async (request) => {
      const body = request.body ?? {};
      if (body.force && body.no_deadline) throw invalid('force and no_deadline contradict each other: choose one');
      return controlAnswer(await deps.workers.drainWorker(request.params.id, body));
    });

    app.post('/workers/:id/activate', { schema: fastifySchema('activateWorker') }, async (request) =>
      controlAnswer(await deps.workers.activateWorker(request.params.id)),
    );

    app.post('/workers/:id/eligibility', { schema: fastifySchema('setEligibility') }, async (request) =>
      controlAnswer(await deps.workers.setEligibility(request.params.id, request.body.eligible)),
    );

    app.post('/workers/:id/revoke', { schema: fastifySchema('revokeWorker') }, async (request) => {
      const { id } = request.params;
      const by = request.identity ? `${request.identity.kind}:${request.identity.name}` : null;
      const before = await deps.joinTokens.revokeWorker(id, by);
      // Whichever replica holds the worker's channel ends it now, not at the next check.
      await deps.channels.publish(agentControlChannel(id), { type: 'revoked' }).catch(() => undefined);
      return {
        worker_id: id,
        revoked_before: before,
        message:
          `certificates of worker ${id} issued at or before ${before.toISOString()} are refused from now on ` +
          '(its open agent session is closed); to let it back in, join it again with a new join token',
      };
    });

    app.get('/cluster/stats', { schema: fastifySchema('clusterStats'), ...shared }, async () =>
      deps.workers.getClusterStats(),
    );

    app.get('/cluster/distribution', { schema: fastifySchema('clusterDistribution') }, async () => {
      const distribution = await deps.workers.getVmDistribution();
      return {
        distribution,
        total_workers: distribution.length,
        total_vms: distribution.reduce((sum, d) => sum + d.vms.length, 0),
      };
    });
  };
}
