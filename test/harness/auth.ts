/**
 * Test clients carry credentials like a user's would: `inject()` on an app sends the admin key
 * unless the request sets its own Authorization header. `rawInject` keeps the unauthenticated one
 * for the tests of authentication itself.
 */
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';

export type Inject = (options: InjectOptions) => Promise<LightMyRequestResponse>;

export function carryKey(app: FastifyInstance, token: string): Inject {
  const original = app.inject.bind(app);
  const raw: Inject = (options) => original(options);
  const withKey: Inject = (options) =>
    raw({ ...options, headers: { authorization: `Bearer ${token}`, ...options.headers } });
  Object.defineProperty(app, 'inject', { value: withKey, configurable: true, writable: true });
  return raw;
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
