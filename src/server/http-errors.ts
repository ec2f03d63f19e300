/**
 * Every error leaves the API as `{ error: { code, message } }`. A user's mistake is a 4xx with a
 * message that says what to change; only our own faults are 500.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { AetheriumError, type ErrorCode, isTransientEngineError } from '../domain/index.ts';

const CODE_BY_STATUS: Record<number, ErrorCode> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'conflict',
  429: 'rate_limited',
};

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (isTransientEngineError(err)) {
      request.log.warn({ err: err.message }, 'engine unavailable');
      return reply
        .status(503)
        .header('retry-after', '2')
        .send({
          error: {
            code: 'unavailable',
            message: 'a backing engine (database or queue) is unavailable right now; retry shortly',
          },
        });
    }
    if (err instanceof AetheriumError) {
      if (err.status >= 500) request.log.error({ err }, 'request failed');
      return reply.status(err.status).send(err.toJSON());
    }
    if (hasZodFastifySchemaValidationErrors(err)) {
      const where = err.validationContext ?? 'request';
      const issues = err.validation.map((v) => {
        const path = v.instancePath.replace(/^\//, '').replaceAll('/', '.');
        const field = path || (v.params as { issue?: { keys?: string[] } })?.issue?.keys?.join(', ') || where;
        return `${field}: ${v.message}`;
      });
      return reply.status(400).send({
        error: {
          code: 'validation_failed',
          message: `invalid ${where}: ${issues.join('; ')}`,
          details: err.validation.map((v) => ({ path: v.instancePath, message: v.message })),
        },
      });
    }
    const status = err.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      const code = CODE_BY_STATUS[status] ?? 'bad_request';
      return reply.status(status).send({ error: { code, message: err.message } });
    }
    request.log.error({ err }, 'unexpected error');
    return reply
      .status(500)
      .send({ error: { code: 'internal', message: 'internal error; the server log has the details' } });
  });

  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({
      error: { code: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}; see /api/docs` },
    }),
  );
}
