/** /api/v1/workers and /api/v1/cluster: the seed's worker and cluster endpoints. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { invalid } from '../../domain/index.ts';
import { agentControlChannel } from '../agent/log-relay.ts';
import type { ApiDeps } from '../api-deps.ts';
import { drainBody, eligibilityBody, idParam, listWorkersQuery, metricsQuery } from '../schemas.ts';

export function workerRoutes(deps: ApiDeps): FastifyPluginAsyncZod {
  return async (app) => {
    const tags = ['workers'];
    app.get(
      '/workers',
      { schema: { tags, summary: 'List workers (?zone=, ?status=, ?capability=)', querystring: listWorkersQuery } },
      async (request) => {
        const { zone, status, capability } = request.query;
        const workers = await deps.workers.listWorkers({
          zone,
          status,
          ...(capability ? { capabilities: [capability] } : {}),
        });
        return { workers, total: workers.length };
      },
    );

    app.get('/workers/:id', { schema: { tags, summary: 'Worker details', params: idParam } }, async (request) =>
      deps.workers.getWorker(request.params.id),
    );

    app.get('/workers/:id/vms', { schema: { tags, summary: 'VMs on a worker', params: idParam } }, async (request) => {
      const vms = await deps.workers.getWorkerVms(request.params.id);
      return { vms, total: vms.length };
    });

    app.get(
      '/workers/:id/metrics',
      { schema: { tags, summary: 'Resource usage history of a worker', params: idParam, querystring: metricsQuery } },
      async (request) => {
        const metrics = await deps.workers.metrics(request.params.id, request.query.limit);
        return { metrics, total: metrics.length };
      },
    );

    app.post(
      '/workers/:id/drain',
      {
        schema: {
          tags,
          summary:
            'Drain a worker: no new VMs, queued creates move elsewhere, VMs left at the deadline are deleted (default deadline 1 h; force: now; no_deadline: wait for them)',
          params: idParam,
          body: drainBody,
        },
      },
      async (request) => {
        const body = request.body ?? {};
        if (body.force && body.no_deadline) throw invalid('force and no_deadline contradict each other: choose one');
        return deps.workers.drainWorker(request.params.id, body);
      },
    );

    app.post(
      '/workers/:id/activate',
      { schema: { tags, summary: 'End a drain or ineligibility: the worker takes VMs again', params: idParam } },
      async (request) => deps.workers.activateWorker(request.params.id),
    );

    app.post(
      '/workers/:id/eligibility',
      {
        schema: {
          tags,
          summary: 'Turn placements on a worker on or off, without draining it',
          params: idParam,
          body: eligibilityBody,
        },
      },
      async (request) => deps.workers.setEligibility(request.params.id, request.body.eligible),
    );

    app.post(
      '/workers/:id/revoke',
      {
        schema: {
          tags,
          summary:
            "Revoke a worker's certificates: every certificate it holds now is refused on the agent channel; it must join again",
          params: idParam,
        },
      },
      async (request) => {
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
      },
    );

    app.get('/cluster/stats', { schema: { tags: ['cluster'], summary: 'Cluster statistics' } }, async () =>
      deps.workers.getClusterStats(),
    );

    app.get(
      '/cluster/distribution',
      { schema: { tags: ['cluster'], summary: 'VM distribution across workers' } },
      async () => {
        const distribution = await deps.workers.getVmDistribution();
        return { distribution, total_vms: distribution.reduce((sum, d) => sum + d.vms.length, 0) };
      },
    );
  };
}
