/**
 * The audit log: every control action (create, exec, delete, stop, start, drain, activate,
 * eligibility, cancel, key create, revoke and bootstrap) and every refused caller is written to
 * `audit_log` with who, which role, the route, the target, the source address, the time and the
 * outcome. A command is recorded, never its output; a key's name and role, never the key.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AuditEntry } from '../../domain/index.ts';
import type { Logger } from '../../ports/logger.ts';
import type { Store } from '../../ports/store.ts';

/** The action each control route performs; routes not listed here are reads, audited only when refused. */
const ACTIONS: Readonly<Record<string, string>> = {
  'POST /api/v1/vms': 'vm.create',
  'DELETE /api/v1/vms/:id': 'vm.delete',
  'POST /api/v1/vms/:id/start': 'vm.start',
  'POST /api/v1/vms/:id/stop': 'vm.stop',
  'POST /api/v1/vms/:id/exec': 'vm.exec',
  'GET /api/v1/vms/:id/exec/stream': 'vm.exec_stream',
  'POST /api/v1/tasks/:id/cancel': 'task.cancel',
  'POST /api/v1/workers/:id/drain': 'worker.drain',
  'POST /api/v1/workers/:id/activate': 'worker.activate',
  'POST /api/v1/workers/:id/eligibility': 'worker.eligibility',
  'POST /api/v1/tokens': 'token.create',
  'DELETE /api/v1/tokens/:id': 'token.revoke',
  'POST /api/v1/tokens/bootstrap': 'token.bootstrap',
  'POST /api/v1/tokens/join': 'join_token.create',
  'DELETE /api/v1/tokens/join/:id': 'join_token.revoke',
  'POST /api/v1/workers/:id/revoke': 'worker.revoke',
};

export function auditAction(method: string, url: string): string | undefined {
  return ACTIONS[`${method} ${url}`];
}

type Details = AuditEntry['details'];

/** What a refused request carried may not be storable (a NUL, a lone surrogate): keep it readable. */
function storable(text: string): string {
  // A lone surrogate becomes U+FFFD (String.prototype.toWellFormed, without needing ES2024 types).
  return text
    .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd')
    .replaceAll('\u0000', '\\0');
}

function storableDetails(details: Details): Details {
  return Object.fromEntries(Object.entries(details).map(([k, v]) => [k, typeof v === 'string' ? storable(v) : v]));
}

/** What is worth keeping about a request: the command of an exec, the name and role of a key. */
function detailsOf(action: string | undefined, request: FastifyRequest): Details {
  const body = (request.body ?? {}) as Record<string, unknown>;
  const pick = (...keys: string[]): Details =>
    Object.fromEntries(
      keys
        .filter((k) => typeof body[k] === 'string' || typeof body[k] === 'boolean')
        .map((k) => [k, body[k] as string]),
    );
  switch (action) {
    case 'vm.exec':
      return { command: String(body.command ?? ''), args: JSON.stringify(body.args ?? []).slice(0, 2000) };
    case 'vm.create':
      return pick('name', 'driver', 'image', 'zone');
    case 'token.create':
      return pick('name', 'role', 'expires');
    case 'join_token.create': {
      // The description, uses and lifetime; never the token, which is in the answer only.
      const numbers = Object.fromEntries(
        ['max_uses', 'ttl'].filter((k) => typeof body[k] === 'number').map((k) => [k, body[k] as number]),
      );
      return { ...pick('description', 'ttl'), ...numbers };
    }
    case 'worker.eligibility':
      return pick('eligible');
    case 'worker.drain':
      return pick('force', 'no_deadline', 'message');
    default:
      return {};
  }
}

export function installAudit(app: FastifyInstance, store: Store, log?: Logger): void {
  // A callback hook: a read that was not refused (most requests) leaves without making a promise.
  app.addHook('onResponse', (request, reply, done) => {
    const url = request.routeOptions.url;
    if (url === undefined) return done();
    const status = reply.statusCode;
    const denied = status === 401 || status === 403;
    const action = auditAction(request.method, url);
    if (!denied && !action) return done();
    const identity = request.identity;
    const params = (request.params ?? {}) as Record<string, unknown>;
    const entry = {
      actor: identity?.name ?? 'anonymous',
      actor_kind: identity
        ? identity.kind === 'local'
          ? ('anonymous' as const)
          : identity.kind
        : ('anonymous' as const),
      role: identity?.role ?? null,
      action: action ?? 'read',
      route: `${request.method} ${url}`,
      target: typeof params.id === 'string' ? storable(params.id) : null,
      source: request.ip,
      outcome: denied ? ('denied' as const) : status < 400 ? ('succeeded' as const) : ('failed' as const),
      status,
      details: denied ? {} : storableDetails(detailsOf(action, request)),
    };
    // The answer has gone out already; a lost audit row is logged loudly rather than failing it.
    store
      .insertAudit(entry)
      .catch((err: unknown) => log?.error({ err, route: entry.route }, 'audit write failed'))
      .finally(() => done());
  });
}
