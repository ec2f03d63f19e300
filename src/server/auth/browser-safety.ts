/**
 * What a browser needs to be kept safe from other sites:
 * - CORS with an explicit allow-list (`api_gateway.cors_origins`): no list, no cross-origin calls;
 * - security headers (helmet): no sniffing, no framing, a strict referrer policy, HSTS under TLS;
 * - in `aetherium dev`, a Host check against DNS rebinding: a page on an attacker's domain that
 *   resolves to 127.0.0.1 must not reach the local control plane, so only loopback names and
 *   addresses (and `api_gateway.allowed_hosts`) are answered.
 * The API authenticates with bearer tokens only, never cookies, so there is nothing for a forged
 * cross-site request to carry and no CSRF token is needed.
 */
import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import type { FastifyInstance } from 'fastify';
import { AetheriumError } from '../../domain/index.ts';

export interface BrowserSafetyOptions {
  corsOrigins: readonly string[];
  /** Set in dev mode: the Host names answered besides loopback ones. */
  allowedHosts: readonly string[] | null;
}

const LOOPBACK_HOST = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d+)?$/i;

export function hostAllowed(host: string | undefined, allowed: readonly string[]): boolean {
  if (!host) return false;
  if (LOOPBACK_HOST.test(host)) return true;
  const name = host.replace(/:\d+$/, '');
  return allowed.includes(host) || allowed.includes(name);
}

export async function installBrowserSafety(app: FastifyInstance, options: BrowserSafetyOptions): Promise<void> {
  const allowedHosts = options.allowedHosts;
  if (allowedHosts) {
    app.addHook('onRequest', async (request) => {
      if (!hostAllowed(request.headers.host, allowedHosts)) {
        throw new AetheriumError(
          'forbidden',
          `the Host ${JSON.stringify(request.headers.host ?? '')} is not this machine: add it to api_gateway.allowed_hosts`,
        );
      }
    });
  }
  await app.register(cors, {
    origin: options.corsOrigins.length > 0 ? [...options.corsOrigins] : false,
    methods: ['GET', 'HEAD', 'POST', 'DELETE'],
    // Idempotency-Key makes a page's retried POST /vms safe; the answer says when it was a replay.
    allowedHeaders: ['authorization', 'content-type', 'idempotency-key'],
    exposedHeaders: ['idempotent-replayed', 'x-request-id'],
    maxAge: 600,
  });
  // The API answers JSON only; the docs page gets its own policy from the swagger UI plugin.
  await app.register(helmet, { contentSecurityPolicy: false, crossOriginEmbedderPolicy: false });
}
