/** CORS by allow-list, security headers, and the dev Host check against DNS rebinding. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostAllowed } from '../src/server/auth/browser-safety.ts';
import { startTestSystem, type TestSystem } from './harness/dev-system.ts';

let t: TestSystem;

beforeAll(async () => {
  t = await startTestSystem({
    api_gateway: { cors_origins: ['https://ui.example.com'], allowed_hosts: ['aetherium.internal'] },
  });
}, 120_000);

afterAll(async () => {
  await t?.stop();
});

const preflight = (origin: string) =>
  t.app.inject({
    method: 'OPTIONS',
    url: '/api/v1/vms',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
  });

describe('browser safety', () => {
  it('answers CORS only for the allowed origins', async () => {
    const allowed = await preflight('https://ui.example.com');
    expect(allowed.headers['access-control-allow-origin']).toBe('https://ui.example.com');
    expect(String(allowed.headers['access-control-allow-headers'])).toMatch(/authorization/);
    const foreign = await preflight('https://evil.example');
    expect(foreign.headers['access-control-allow-origin']).toBeUndefined();
    const get = await t.app.inject({ method: 'GET', url: '/api/v1/vms', headers: { origin: 'https://evil.example' } });
    expect(get.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('sends security headers', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/v1/vms' });
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
    expect(res.headers['referrer-policy']).toBe('no-referrer');
  });

  it('in dev mode answers only loopback Host names and the allowed ones (DNS rebinding)', async () => {
    const rebound = await t.app.inject({
      method: 'GET',
      url: '/api/v1/vms',
      headers: { host: 'attacker.example:8080' },
    });
    expect(rebound.statusCode).toBe(403);
    expect(JSON.parse(rebound.body).error).toMatchObject({
      code: 'forbidden',
      message: expect.stringMatching(/allowed_hosts/),
    });
    for (const host of [
      'localhost:8080',
      '127.0.0.1:8080',
      '[::1]:8080',
      'aetherium.internal',
      'aetherium.internal:8080',
    ]) {
      expect((await t.app.inject({ method: 'GET', url: '/api/v1/vms', headers: { host } })).statusCode).toBe(200);
    }
    expect(hostAllowed('127.0.0.1.attacker.example', [])).toBe(false);
    expect(hostAllowed('localhost.attacker.example', [])).toBe(false);
    expect(hostAllowed(undefined, [])).toBe(false);
  });
});
