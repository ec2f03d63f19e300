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
  // One callback hook for both, on every request: the headers first, so a refusal carries them
  // too; the Host check before CORS, so not even a preflight is answered for a foreign name.
  app.addHook('onRequest', (request, reply, done) => {
    reply.headers(SECURITY_HEADERS);
    if (allowedHosts && !hostAllowed(request.headers.host, allowedHosts)) {
      return done(
        new AetheriumError(
          'forbidden',
          `the Host ${JSON.stringify(request.headers.host ?? '')} is not this machine: add it to api_gateway.allowed_hosts`,
        ),
      );
    }
    done();
  });
  await app.register(cors, {
    origin: options.corsOrigins.length > 0 ? [...options.corsOrigins] : false,
    methods: ['GET', 'HEAD', 'POST', 'DELETE'],
    // Idempotency-Key makes a page's retried POST /vms safe; the answer says when it was a replay.
    allowedHeaders: ['authorization', 'content-type', 'idempotency-key'],
    exposedHeaders: ['idempotent-replayed', 'x-request-id'],
    maxAge: 600,
  });
}

/**
 * The security headers, fixed once: those helmet sends by default, less the content security
 * policy (the API answers JSON only; the docs page and the UI get their own policy) and
 * cross-origin embedder policy. @fastify/helmet rebuilt helmet's middleware from its options on
 * every request, a measurable part of a cheap read; these are the same headers, written as data
 * (test/api.read-model.test.ts compares them with what @fastify/helmet sends).
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'origin-agent-cluster': '?1',
  'referrer-policy': 'no-referrer',
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'x-content-type-options': 'nosniff',
  'x-dns-prefetch-control': 'off',
  'x-download-options': 'noopen',
  'x-frame-options': 'SAMEORIGIN',
  'x-permitted-cross-domain-policies': 'none',
  'x-xss-protection': '0',
});
