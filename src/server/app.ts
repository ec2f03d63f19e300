/**
 * The HTTP application: a factory that wires small route plugins under /api/v1, OpenAPI at
 * /api/docs, rate limits, and the one error format. Tests drive it through `inject()`.
 */
import rateLimit, { type RateLimitPluginOptions } from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import {
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { Logger } from '../ports/logger.ts';
import type { ApiDeps } from './api-deps.ts';
import { edgeOptions, installErrorHandling } from './http-errors.ts';
import { describeResponses, pruneUnusedComponents, withWebSocketRoutes } from './openapi.ts';
import { eventRoutes } from './routes/events.ts';
import { execStreamRoutes } from './routes/exec-stream.ts';
import { healthRoutes } from './routes/health.ts';
import { scheduleRoutes } from './routes/schedule.ts';
import { taskRoutes } from './routes/tasks.ts';
import { whoamiRoutes } from './routes/whoami.ts';
import { authConfigRoutes } from './routes/auth-config.ts';
import type { OidcClient } from './auth/oidc.ts';
import type { ControlPlaneMetrics } from './metrics/control-plane-metrics.ts';
import { installUi, type UiOptions } from './ui.ts';
import { vmRoutes } from './routes/vms.ts';
import { workerRoutes } from './routes/workers.ts';
import { workerLogRoutes } from './routes/worker-logs.ts';
import { tokenRoutes } from './routes/tokens.ts';
import { type AuthOptions, chooseProtocol, installAuth } from './auth/auth-hooks.ts';
import { installAudit } from './auth/audit-hooks.ts';
import { type BrowserSafetyOptions, installBrowserSafety } from './auth/browser-safety.ts';
import { auditRoutes } from './routes/audit.ts';
import { type ScriptingRedis, sharedRateCountStore } from './auth/shared-rate-count.ts';
import type { Store } from '../ports/store.ts';
import { idOnlyTracing, type Tracing } from '../observability/tracing.ts';
import { installRequestTracing, requestId } from './request-trace.ts';

export interface AppOptions {
  logger?: Logger;
  /** Who may call what; without it (tests of the routes alone) every caller is the local admin. */
  auth?: AuthOptions;
  /** CORS allow-list, security headers, and (dev) the Host check against DNS rebinding. */
  browser?: BrowserSafetyOptions;
  /** Where control actions and refused callers are recorded. */
  audit?: { store: Store };
  /**
   * Per identity (the API key or JWT subject; the address for anonymous callers), counted in Redis
   * when a client is given, so every replica counts together.
   */
  rateLimit?: { enabled: boolean; max: number; windowMs: number; redis?: RateLimitPluginOptions['redis'] };
  /** Serve HTTPS with this certificate and key (PEM). */
  https?: { cert: Buffer; key: Buffer };
  /** Behind a load balancer: take the client address from X-Forwarded-For (Fastify's trustProxy). */
  trustProxy?: boolean | string[];
  version?: string;
  /** Serve the web UI at `/`; without it `/` shows the API documentation. */
  ui?: UiOptions;
  /** Sign-in through an OIDC provider (api_gateway.auth.oidc), for the UI. */
  oidc?: OidcClient | null;
  /** Prometheus metrics: every request timed, and `GET /metrics`. */
  metrics?: ControlPlaneMetrics;
  /** A span per request (exported when telemetry.otlp is set); default: ids only. */
  tracing?: Tracing;
}

export async function buildApp(deps: ApiDeps, options: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger | undefined,
    // One line per request is noise at our volumes; errors are still logged by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
    ...(options.trustProxy ? { trustProxy: options.trustProxy } : {}),
    ...(options.https ? { https: options.https } : {}),
    bodyLimit: 4 * 1024 * 1024,
    genReqId: requestId,
    // The request id comes from the log context (request-trace.ts) on every line, this one included.
    childLoggerFactory: (logger, _bindings, options) => logger.child({}, options),
    // A bad %-escape in a path, an id over the length limit: answered in our error format.
    ...edgeOptions,
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  installErrorHandling(app);
  installRequestTracing(app, options.tracing ?? idOnlyTracing);

  // The WebSocket plugin first: its hooks must see every upgrade, so that one refused by the hooks
  // below (authentication, origin, rate limit) still has its connection closed.
  if (deps.hub) {
    await app.register(websocket, { options: { maxPayload: 1024 * 1024, handleProtocols: chooseProtocol } });
  }
  await installBrowserSafety(app, options.browser ?? { corsOrigins: [], allowedHosts: null });
  installAuth(app, options.auth ?? { authenticator: null, allowedOrigins: [] });
  if (options.audit) installAudit(app, options.audit.store, options.logger);

  if (options.rateLimit?.enabled) {
    await app.register(rateLimit, {
      max: options.rateLimit.max,
      timeWindow: options.rateLimit.windowMs,
      // The auth hook ran first: callers are counted by who they are, not by where they come from.
      keyGenerator: (request) =>
        request.identity ? `${request.identity.kind}:${request.identity.id}` : `ip:${request.ip}`,
      // Counted in Redis without a round trip per request where the answer cannot depend on it.
      ...(options.rateLimit.redis
        ? { store: sharedRateCountStore(options.rateLimit.redis as ScriptingRedis, 'aetherium-rate-limit:') }
        : {}),
      // Redis away: serve rather than refuse everyone; the engines' own health says Redis is down.
      skipOnError: true,
      errorResponseBuilder: (_request, context) => ({
        statusCode: 429,
        error: {
          code: 'rate_limited',
          message: `rate limit of ${context.max} requests per ${context.after} reached; retry later`,
        },
      }),
    });
  }

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Aetherium API',
        description: 'Isolated micro-VMs across a fleet of hosts.',
        version: options.version ?? '0.0.0',
      },
      tags: [
        { name: 'vms' },
        { name: 'tasks' },
        { name: 'workers' },
        { name: 'cluster' },
        { name: 'scheduler' },
        { name: 'events' },
        { name: 'tokens' },
        { name: 'audit' },
        { name: 'health' },
      ],
    },
    transform: jsonSchemaTransform,
    // The shared shapes (Vm, Task, Worker, Error…) as components, referenced from every route.
    transformObject: (document) =>
      pruneUnusedComponents(describeResponses(withWebSocketRoutes(jsonSchemaTransformObject(document)))),
  });
  await app.register(swaggerUi, { routePrefix: '/api/docs', staticCSP: true });

  const { metrics } = options;
  if (metrics) {
    metrics.instrument(app);
    // Prometheus scrapes with a key (any role: `authorization: credentials_file` in its scrape config).
    app.get('/metrics', { schema: { hide: true } }, async (_request, reply) =>
      reply
        .type(metrics.contentType)
        .header('cache-control', 'no-store')
        .send(await metrics.text()),
    );
  }
  if (options.ui) await installUi(app, options.ui);
  else app.get('/', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/api/docs'));
  await app.register(healthRoutes(deps));
  await app.register(
    async (v1) => {
      await v1.register(healthRoutes(deps));
      await v1.register(vmRoutes(deps));
      await v1.register(taskRoutes(deps));
      await v1.register(workerRoutes(deps));
      await v1.register(workerLogRoutes(deps.workerLogs));
      await v1.register(scheduleRoutes(deps));
      await v1.register(tokenRoutes(deps));
      await v1.register(whoamiRoutes(Boolean(options.auth?.authenticator)));
      await v1.register(authConfigRoutes(Boolean(options.auth?.authenticator), options.oidc ?? null));
      await v1.register(auditRoutes(deps));
      if (deps.hub) {
        await v1.register(eventRoutes(deps.hub, deps.events));
        await v1.register(execStreamRoutes(deps, deps.channels));
      }
    },
    { prefix: '/api/v1' },
  );
  return app;
}
