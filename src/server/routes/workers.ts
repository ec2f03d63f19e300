/** /api/v1/workers and /api/v1/cluster: the seed's worker and cluster endpoints. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { ApiDeps } from '../api-deps.ts';
import { drainBody, idParam, listWorkersQuery, metricsQuery } from '../schemas.ts';

export function workerRoutes(deps: ApiDeps): FastifyPluginAsyncZod {
  return async (app) => {
    const tags = ['workers'];
    app.get('/workers', { schema: { tags, summary: 'List workers (?zone=, ?status=, ?capability=)', querystring: listWorkersQuery } }, async (request) => {
      const { zone, status, capability } = request.query;
      const workers = await deps.workers.listWorkers({ zone, status, ...(capability ? { capabilities: [capability] } : {}) });
      return { workers, total: workers.length };
    });

    app.get('/workers/:id', { schema: { tags, summary: 'Worker details', params: idParam } }, async (request) => deps.workers.getWorker(request.params.id));

    app.get('/workers/:id/vms', { schema: { tags, summary: 'VMs on a worker', params: idParam } }, async (request) => {
      const vms = await deps.workers.getWorkerVms(request.params.id);
      return { vms, total: vms.length };
    });

    app.get('/workers/:id/metrics', { schema: { tags, summary: 'Resource usage history of a worker', params: idParam, querystring: metricsQuery } }, async (request) => {
      await deps.workers.getWorker(request.params.id);
      const metrics = await deps.store.listWorkerMetrics(request.params.id, request.query.limit);
      return { metrics, total: metrics.length };
    });

    app.post('/workers/:id/drain', { schema: { tags, summary: 'Drain a worker: no new placements', params: idParam, body: drainBody } }, async (request) =>
      deps.workers.drainWorker(request.params.id, request.body ?? {}),
    );

    app.post('/workers/:id/activate', { schema: { tags, summary: 'Activate a worker again', params: idParam } }, async (request) => deps.workers.activateWorker(request.params.id));

    app.get('/cluster/stats', { schema: { tags: ['cluster'], summary: 'Cluster statistics' } }, async () => deps.workers.getClusterStats());

    app.get('/cluster/distribution', { schema: { tags: ['cluster'], summary: 'VM distribution across workers' } }, async () => {
      const distribution = await deps.workers.getVmDistribution();
      return { distribution, total_vms: distribution.reduce((sum, d) => sum + d.vms.length, 0) };
    });
  };
}
