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
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { WS_BEARER_PREFIX, WS_PROTOCOL } from '../../contract/websocket.ts';
import { AetheriumError } from '../../domain/index.ts';
import type { Authenticator } from './authenticator.ts';
import { type Identity, LOCAL_ADMIN } from './identity.ts';
import { accessOf } from './route-access.ts';
import { roleAtLeast } from './roles.ts';

export { WS_BEARER_PREFIX, WS_PROTOCOL };

declare module 'fastify' {
  interface FastifyRequest {
    identity: Identity | null;
  }
}

export interface AuthOptions {
  /** Null when authentication is off (loopback only): every caller is the local admin. */
  authenticator: Authenticator | null;
  allowedOrigins: readonly string[];
}

export function installAuth(app: FastifyInstance, options: AuthOptions): void {
  app.decorateRequest('identity', null);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      if (accessOf(method, route.url) === undefined) {
        throw new Error(
          `route ${method} ${route.url} has no entry in the route × role table (src/server/auth/route-access.ts)`,
        );
      }
    }
  });
  app.addHook('onRequest', async (request) => {
    const url = request.routeOptions.url;
    if (url === undefined) return; // no such route: the not-found handler answers
    const access = accessOf(request.method, url);
    if (isUpgrade(request)) checkOrigin(request, options.allowedOrigins);
    if (access === 'public') return;
    if (access === undefined) throw new AetheriumError('forbidden', `${request.method} ${url} is not open to anyone`);
    const identity = options.authenticator ? await options.authenticator.authenticate(tokenOf(request)) : LOCAL_ADMIN;
    request.identity = identity;
    if (!roleAtLeast(identity.role, access)) {
      throw new AetheriumError(
        'forbidden',
        `${request.method} ${url} needs the ${access} role; ${identity.name} has ${identity.role}`,
      );
    }
  });
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
