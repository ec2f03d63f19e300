/**
 * GET /api/v1/workers/{id}/logs: a worker's recent structured log lines, from the bounded buffer
 * it keeps, over its agent channel (whichever replica holds it). `?since=` takes a duration back
 * from now (`10m`) or an RFC 3339 time; `?follow=true` keeps the answer open and streams new
 * lines as NDJSON until the client goes away or the worker disconnects.
 */
import { PassThrough } from 'node:stream';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { AetheriumError } from '../../domain/index.ts';
import type { WorkerLogs } from '../agent/log-relay.ts';
import { fastifySchema } from '../../contract/routes.ts';
import { sinceOf } from './time-query.ts';

const ANSWER_WITHIN_MS = 10_000;

export function workerLogRoutes(logs: () => WorkerLogs | null): FastifyPluginAsyncZod {
  return async (app) => {
    app.get('/workers/:id/logs', { schema: fastifySchema('workerLogs') }, async (request, reply) => {
      const source = logs();
      if (!source)
        throw new AetheriumError(
          'not_found',
          'worker logs travel on the agent channel; this control plane has no agent port (in `aetherium dev` the process output is the log)',
        );
      const workerId = request.params.id;
      const { follow, limit } = request.query;
      const since = sinceOf(request.query.since);
      if (!follow) {
        const lines = await new Promise<Record<string, unknown>[]>((resolve, reject) => {
          const got: Record<string, unknown>[] = [];
          // A worker that never answers (wedged, or an old agent) must not hold the request open.
          const timer = setTimeout(
            () => reject(new AetheriumError('unavailable', `worker ${workerId} did not send its logs in time`)),
            ANSWER_WITHIN_MS,
          );
          source
            .open(
              workerId,
              { since, follow: false, limit },
              {
                onLines: (batch) => got.push(...batch),
                onEnd: (reason) => {
                  clearTimeout(timer);
                  if (reason) reject(new AetheriumError('unavailable', reason));
                  else resolve(got);
                },
              },
            )
            .catch((err: unknown) => {
              clearTimeout(timer);
              reject(err);
            });
        });
        return { worker_id: workerId, lines, total: lines.length };
      }
      const out = new PassThrough();
      const stop = await source.open(
        workerId,
        { since, follow: true, limit },
        {
          onLines: (batch) => {
            for (const line of batch) out.write(`${JSON.stringify(line)}\n`);
          },
          onEnd: () => out.end(),
        },
      );
      request.raw.on('close', () => {
        stop();
        out.end();
      });
      // A stream is written as it comes, past the JSON serializer: the NDJSON lines are logLine each.
      return reply.type('application/x-ndjson').send(out as never);
    });
  };
}
