/**
 * Every error leaves the API as `{ error: { code, message } }`. A user's mistake is a 4xx with a
 * message that says what to change; only our own faults are 500. That includes what Fastify's
 * router refuses before any route runs (`edgeOptions`: a path that is not valid percent-encoded
 * UTF-8, a path parameter over MAX_ID_LENGTH) and strings no engine can store (input-guard.ts).
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { AetheriumError, codeForStatus, type ErrorCode, isErrorCode, isTransientEngineError } from '../domain/index.ts';
import { installInputGuard } from './input-guard.ts';
import { MAX_ID_LENGTH } from '../contract/requests.ts';

/**
 * What the router refuses before a route is found, in our shape: Fastify's own bodies
 * (`FST_ERR_BAD_URL`, `FST_ERR_MAX_PARAM_LENGTH` with status 414) are not the API's format.
 */
export function frameworkErrors(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  // A WebSocket upgrade's socket is no longer the HTTP server's: nothing would close it after the
  // answer, and the server could never shut down.
  if (request.headers.upgrade) reply.raw.once('finish', () => request.raw.socket.destroy());
  if (err.code === 'FST_ERR_BAD_URL') {
    void reply.status(400).send({
      error: {
        code: 'bad_request',
        message: 'the URL path is not valid: each %-escape must be two hex digits, and together they must be UTF-8',
      },
    });
    return;
  }
  if (err.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    void reply.status(400).send({
      error: {
        code: 'validation_failed',
        message: PARAM_TOO_LONG,
      },
    });
    return;
  }
  request.log.error({ err }, 'router error');
  void reply
    .status(500)
    .send({ error: { code: 'internal', message: 'internal error; the server log has the details' } });
}

/** The answer to a path parameter over the router's limit, here and where the UI's wildcard sees one. */
export const PARAM_TOO_LONG = `invalid params: a path parameter is longer than ${MAX_ID_LENGTH} characters (ids and names are at most ${MAX_ID_LENGTH})`;

/** Fastify options for the edge: give them to `Fastify()`, with `installErrorHandling` after it. */
/** HTTP status and code for what Node's parser refuses before Fastify sees a request. */
const CLIENT_ERRORS: Record<string, [number, ErrorCode, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'bad_request', 'the request line and headers are too large (16 KiB at most)'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'bad_request', 'the request took too long to arrive'],
};

/**
 * A request Node's HTTP parser refuses (headers or URL over 16 KiB, garbage instead of HTTP) is
 * answered on the raw socket, in our shape too: Fastify's default body is not the API's format.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: import('node:net').Socket): void {
  if (!socket.writable) return void socket.destroy();
  const [status, code, message] = CLIENT_ERRORS[err.code ?? ''] ?? [
    400,
    'bad_request',
    'the request is not valid HTTP',
  ];
  const body = JSON.stringify({ error: { code, message } });
  const reason =
    status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
      `connection: close\r\n\r\n${body}`,
  );
}

export const edgeOptions = {
  frameworkErrors,
  clientErrorHandler,
  routerOptions: { maxParamLength: MAX_ID_LENGTH },
};

/**
 * A body in our shape thrown as it is, as @fastify/rate-limit throws what its
 * `errorResponseBuilder` returns: `{ statusCode, error: { code, message } }`. It is not an Error, so
 * it has no `message` of its own.
 */
function shapedBody(err: unknown): { code: ErrorCode; message: string } | null {
  if (typeof err !== 'object' || err === null || !('error' in err)) return null;
  const inner: unknown = err.error;
  if (typeof inner !== 'object' || inner === null || !('code' in inner) || !('message' in inner)) return null;
  const { code, message } = inner;
  return typeof code === 'string' && isErrorCode(code) && typeof message === 'string' ? { code, message } : null;
}

export function installErrorHandling(app: FastifyInstance): void {
  installInputGuard(app);
  app.setErrorHandler((err: FastifyError, request, reply) => {
    // Ours first: an `unavailable` we raised says which engine and what to do (the JWKS, a
    // worker's channel); only an engine's own error gets the generic message.
    if (isTransientEngineError(err) && !(err instanceof AetheriumError)) {
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
      if (err.code === 'unavailable') void reply.header('retry-after', '2');
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
    const shaped = shapedBody(err);
    if (shaped && status >= 400 && status < 500) return reply.status(status).send({ error: shaped });
    if (status >= 400 && status < 500) {
      const code = codeForStatus(status) ?? 'bad_request';
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
