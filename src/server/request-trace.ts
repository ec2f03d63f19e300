/**
 * Every API request gets an id (`x-request-id` on the answer; a caller's own, when it sent a sane
 * one) and a span in the caller's trace (W3C `traceparent`, else a new trace). Both are in the
 * log context while the request runs, so every log line it causes names them, and a task it makes
 * carries them to the scheduler and the worker.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { formatTraceparent, parseTraceparent, withLogContext } from '../observability/trace-context.ts';
import type { Span, Tracing } from '../observability/tracing.ts';

const CALLER_REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

declare module 'fastify' {
  interface FastifyRequest {
    span?: Span;
  }
}

/** Fastify's `genReqId`: the caller's id when it looks like one, else a new UUID. */
export function requestId(req: { headers: Record<string, string | string[] | undefined> }): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && CALLER_REQUEST_ID.test(given) ? given : randomUUID();
}

export function installRequestTracing(app: FastifyInstance, tracing: Tracing): void {
  app.addHook('onRequest', (request, reply, done) => {
    const header = request.headers.traceparent;
    const parent = parseTraceparent(typeof header === 'string' ? header : null);
    // Read once: Fastify builds `routeOptions` afresh on every access.
    const route = routeOf(request);
    const span = tracing.start(`${request.method} ${route}`, 'server', parent, {
      'http.request.method': request.method,
      'http.route': route,
      'aetherium.request_id': request.id,
    });
    request.span = span;
    reply.header('x-request-id', request.id);
    const traceparent = formatTraceparent(span.context);
    withLogContext({ request_id: request.id, trace_id: span.context.traceId }, done, {
      request_id: request.id,
      traceparent,
    });
  });
  app.addHook('onResponse', (request, reply, done) => {
    request.span?.end(
      { 'http.response.status_code': reply.statusCode },
      reply.statusCode >= 500 ? 'server error' : null,
    );
    done();
  });
}

const routeOf = (request: FastifyRequest) => request.routeOptions.url ?? 'unmatched';
