/**
 * Every route of the OpenAPI document × every kind of caller, against the route × role table the
 * server enforces and the README shows: anonymous, viewer, operator and admin keys, a revoked key,
 * an expired JWT and a JWT for another audience. A route without an entry in the table stops the
 * server from starting; a table entry without a route is stale and fails here too.
 */
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installAuth } from '../src/server/auth/auth-hooks.ts';
import { type Access, accessOf, ROUTE_ACCESS } from '../src/server/auth/route-access.ts';
import { roleAtLeast } from '../src/server/auth/roles.ts';
import { routeAccessMarkdown } from '../src/server/auth/route-table.ts';
import { bearer } from './harness/auth.ts';
import { startTestSystem, type TestSystem } from './harness/dev-system.ts';

const SECRET = 'a shared secret of at least thirty-two bytes';
const AUDIENCE = 'aetherium-api';

type Caller = { name: string; headers: Record<string, string>; role: 'viewer' | 'operator' | 'admin' | null };

let t: TestSystem;
const callers: Caller[] = [];

async function jwt(claims: Record<string, unknown>, audience: string, expiresAt: number): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('someone')
    .setAudience(audience)
    .setExpirationTime(expiresAt)
    .sign(new TextEncoder().encode(SECRET));
}

beforeAll(async () => {
  t = await startTestSystem({ api_gateway: { auth: { jwt: { secret: SECRET, audience: AUDIENCE } } } });
  const tokens = t.system.controlPlane.tokens;
  const key = async (name: string, role: 'viewer' | 'operator' | 'admin') =>
    (await tokens.create({ name, role }, null)).token;
  const revoked = await key('revoked', 'admin');
  await tokens.revoke('revoked');
  const now = Math.floor(Date.now() / 1000);
  callers.push(
    { name: 'anonymous', headers: {}, role: null },
    { name: 'viewer key', headers: bearer(await key('viewer', 'viewer')), role: 'viewer' },
    { name: 'operator key', headers: bearer(await key('operator', 'operator')), role: 'operator' },
    { name: 'admin key', headers: bearer(t.adminKey), role: 'admin' },
    { name: 'operator JWT', headers: bearer(await jwt({ role: 'operator' }, AUDIENCE, now + 300)), role: 'operator' },
    { name: 'expired JWT', headers: bearer(await jwt({ role: 'admin' }, AUDIENCE, now - 300)), role: null },
    {
      name: 'wrong-audience JWT',
      headers: bearer(await jwt({ role: 'admin' }, 'someone-else', now + 300)),
      role: null,
    },
    { name: 'revoked key', headers: bearer(revoked), role: null },
  );
}, 120_000);

afterAll(async () => {
  await t?.stop();
});

interface Operation {
  method: string;
  path: string;
  url: string;
  access: Access | undefined;
}

async function operations(): Promise<Operation[]> {
  const res = await t.rawInject({ method: 'GET', url: '/api/docs/json' });
  expect(res.statusCode).toBe(200);
  const doc = JSON.parse(res.body) as { paths: Record<string, Record<string, unknown>> };
  const ops: Operation[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    const route = path.replace(/\{(\w+)\}/g, ':$1');
    for (const method of Object.keys(methods)) {
      const upper = method.toUpperCase();
      ops.push({ method: upper, path, url: path.replace(/\{\w+\}/g, 'no-such-thing'), access: accessOf(upper, route) });
    }
  }
  return ops;
}

describe('route × role', () => {
  it('every route of the OpenAPI document has an entry, and every entry is a route', async () => {
    const ops = await operations();
    expect(ops.filter((op) => op.access === undefined).map((op) => `${op.method} ${op.path}`)).toEqual([]);
    const documented = new Set(ops.map((op) => `${op.method} ${op.path.replace(/\{(\w+)\}/g, ':$1')}`));
    // `/` and `/*` are the web UI's files (ui.serve.test.ts) and the WebSockets are not in the OpenAPI
    // document (auth.websocket.test.ts); everything else in the table must be a documented route.
    const undocumented = new Set([
      'GET /',
      'GET /*',
      'GET /metrics',
      'GET /api/v1/events',
      'GET /api/v1/vms/:id/exec/stream',
    ]);
    const stale = Object.keys(ROUTE_ACCESS).filter((key) => !undocumented.has(key) && !documented.has(key));
    expect(stale).toEqual([]);
  });

  it('answers 401, 403 or lets through, exactly as the table says, for every caller', async () => {
    const mismatches: string[] = [];
    for (const op of await operations()) {
      for (const caller of callers) {
        const res = await t.rawInject({
          method: op.method as 'GET',
          url: op.url,
          headers: caller.headers,
          ...(op.method === 'POST' ? { payload: {} } : {}),
        });
        const expected =
          op.access === 'public'
            ? 'through'
            : caller.role === null
              ? 401
              : roleAtLeast(caller.role, op.access!)
                ? 'through'
                : 403;
        const got = res.statusCode === 401 || res.statusCode === 403 ? res.statusCode : 'through';
        if (got !== expected)
          mismatches.push(`${caller.name} ${op.method} ${op.path}: ${res.statusCode}, wanted ${expected}`);
        if (res.statusCode === 401 || res.statusCode === 403) {
          const body = JSON.parse(res.body) as { error: { code: string; message: string } };
          expect(body.error.code).toBe(res.statusCode === 401 ? 'unauthorized' : 'forbidden');
          expect(body.error.message.length).toBeGreaterThan(10);
        }
      }
    }
    expect(mismatches).toEqual([]);
  }, 120_000);

  it('says why: no token, a revoked key, an expired token, the role missing', async () => {
    const anonymous = await t.rawInject({ method: 'GET', url: '/api/v1/vms' });
    expect(JSON.parse(anonymous.body).error.message).toMatch(/Authorization: Bearer/);
    const revoked = await t.rawInject({ method: 'GET', url: '/api/v1/vms', headers: callers.at(-1)!.headers });
    expect(JSON.parse(revoked.body).error.message).toMatch(/revoked/);
    const expired = await t.rawInject({ method: 'GET', url: '/api/v1/vms', headers: callers[5]!.headers });
    expect(JSON.parse(expired.body).error.message).toMatch(/expired/);
    const viewer = await t.rawInject({ method: 'POST', url: '/api/v1/vms', headers: callers[1]!.headers, payload: {} });
    expect(viewer.statusCode).toBe(403);
    expect(JSON.parse(viewer.body).error.message).toMatch(/needs the operator role; viewer has viewer/);
  });

  it('the README shows exactly the table the server enforces', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    expect(readme).toContain(routeAccessMarkdown());
  });

  it('a route added without an entry in the table stops the server from starting', async () => {
    const app = Fastify();
    installAuth(app, { authenticator: null, allowedOrigins: [] });
    expect(() => app.get('/api/v1/unlisted', async () => 'nobody decided who may call this')).toThrow(
      /GET \/api\/v1\/unlisted has no entry in the route × role table/,
    );
  });
});
