/**
 * Authentication and authorisation for every route, as Fastify hooks:
 * - at start: a route without an entry in the route × role table stops the server from starting;
 * - on each request: the route's access is looked up; public routes pass; any other needs a bearer
 *   token (`Authorization: Bearer …`, or for a WebSocket, which browsers cannot give headers, the
 *   `Sec-WebSocket-Protocol` entry `aetherium.bearer.<token>` next to `aetherium.v1`: never the
 *   URL, which ends up in logs and history). No token is 401 `unauthorized`, a token without the
 *   role 403 `forbidden`;
 * - a WebSocket upgrade from a web page must come from an allowed origin (the same host, or one of
 *   `api_gateway.cors_origins`), so a page elsewhere cannot ride a user's credentials.
 */
import type { FastifyInstance, FastifyRequest, onSendHookHandler } from 'fastify';
import { WS_BEARER_PREFIX, WS_PROTOCOL } from '../../contract/websocket.ts';
import { AetheriumError } from '../../domain/index.ts';
import type { Authenticator } from './authenticator.ts';
import { type Identity, LOCAL_ADMIN } from './identity.ts';
import { accessOf } from './route-access.ts';
import { type Role, roleAtLeast } from './roles.ts';

export { WS_BEARER_PREFIX, WS_PROTOCOL };

declare module 'fastify' {
  interface FastifyRequest {
    identity: Identity | null;
  }
}

const REVOKE_KEY_ROUTE = '/api/v1/tokens/:id';

export interface AuthOptions {
  /** Null when authentication is off (loopback only): every caller is the local admin. */
  authenticator: Authenticator | null;
  allowedOrigins: readonly string[];
}

export function installAuth(app: FastifyInstance, options: AuthOptions): void {
  app.decorateRequest('identity', null);
  const { authenticator } = options;
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      if (accessOf(method, route.url) === undefined) {
        throw new Error(
          `route ${method} ${route.url} has no entry in the route × role table (src/server/auth/route-access.ts)`,
        );
      }
    }
    // Key records are remembered for a moment (key-records.ts): a revocation through this replica
    // takes effect here before its answer goes out, not at the next recheck.
    if (authenticator && [route.method].flat().includes('DELETE') && route.url === REVOKE_KEY_ROUTE) {
      const forget: onSendHookHandler = (_request, reply, payload, done) => {
        if (reply.statusCode < 400) authenticator.keysChanged();
        done(null, payload);
      };
      route.onSend = [...[route.onSend ?? []].flat(), forget];
    }
  });
  // A callback hook, not an async one: a caller whose key was checked a moment ago is admitted
  // without a promise, on the path every request takes.
  app.addHook('onRequest', (request, _reply, done) => {
    const url = request.routeOptions.url;
    if (url === undefined) return done(); // no such route: the not-found handler answers
    const access = accessOf(request.method, url);
    let identity: Identity | Promise<Identity>;
    try {
      if (isUpgrade(request)) checkOrigin(request, options.allowedOrigins);
      if (access === 'public') return done();
      if (access === undefined) throw new AetheriumError('forbidden', `${request.method} ${url} is not open to anyone`);
      identity = authenticator ? authenticator.authenticateNow(tokenOf(request)) : LOCAL_ADMIN;
    } catch (err) {
      return done(err as Error);
    }
    if (identity instanceof Promise) identity.then((known) => done(admit(request, known, access)), done);
    else done(admit(request, identity, access));
  });
}

/** Records who is calling; the error to answer with when their role is not enough. */
function admit(request: FastifyRequest, identity: Identity, access: Role): AetheriumError | undefined {
  request.identity = identity;
  if (roleAtLeast(identity.role, access)) return undefined;
  return new AetheriumError(
    'forbidden',
    `${request.method} ${request.routeOptions.url} needs the ${access} role; ${identity.name} has ${identity.role}`,
  );
}

function isUpgrade(request: FastifyRequest): boolean {
  return String(request.headers.upgrade ?? '').toLowerCase() === 'websocket';
}

function tokenOf(request: FastifyRequest): string {
  const header = request.headers.authorization;
  if (header) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw new AetheriumError('unauthorized', 'the Authorization header must be `Bearer <token>`');
    return match[1]!;
  }
  const offered = String(request.headers['sec-websocket-protocol'] ?? '')
    .split(',')
    .map((p) => p.trim());
  const bearer = offered.find((p) => p.startsWith(WS_BEARER_PREFIX));
  if (bearer) return bearer.slice(WS_BEARER_PREFIX.length);
  throw new AetheriumError(
    'unauthorized',
    'this route needs credentials: send `Authorization: Bearer <API key or JWT>` (a WebSocket may offer the ' +
      `subprotocol ${WS_BEARER_PREFIX}<token> next to ${WS_PROTOCOL}); create a key with \`aetherium tokens create\``,
  );
}

function checkOrigin(request: FastifyRequest, allowed: readonly string[]): void {
  const origin = request.headers.origin;
  if (!origin) return; // not a browser: no page to ride on
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    throw new AetheriumError('forbidden', 'the Origin header is not a URL');
  }
  if (host === request.headers.host || allowed.includes(origin)) return;
  throw new AetheriumError(
    'forbidden',
    `WebSocket connections from ${origin} are not allowed (api_gateway.cors_origins)`,
  );
}

/** The subprotocol the server answers with: never the bearer entry, which would echo the token. */
export function chooseProtocol(protocols: Set<string>): string | false {
  return protocols.has(WS_PROTOCOL) ? WS_PROTOCOL : false;
}
