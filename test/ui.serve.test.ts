/**
 * How the control plane serves the web UI (src/server/ui.ts), on a built tree of its own: files,
 * deep links, the base path for a proxy's prefix, the CSP, and the API's 404s left alone.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestSystem, type TestSystem } from './harness/dev-system.ts';

const INDEX =
  '<!doctype html><html><head><script type="module" src="./assets/app-1a2b.js"></script></head><body></body></html>';

function builtUi(): string {
  const dir = mkdtempSync(join(tmpdir(), 'aetherium-ui-'));
  mkdirSync(join(dir, 'assets'));
  writeFileSync(join(dir, 'index.html'), INDEX);
  writeFileSync(join(dir, 'assets', 'app-1a2b.js'), 'console.log("app")');
  writeFileSync(join(dir, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  return dir;
}

const systems: TestSystem[] = [];
async function system(ui: Record<string, unknown>, gateway: Record<string, unknown> = {}): Promise<TestSystem> {
  const t = await startTestSystem({ ui, api_gateway: gateway });
  systems.push(t);
  return t;
}
afterAll(async () => {
  for (const t of systems) await t.stop();
});

describe('the web UI at /', () => {
  let t: TestSystem;
  beforeAll(async () => {
    t = await system({ dir: builtUi() });
  });

  it('serves the index without credentials, with base "/" and a strict CSP', async () => {
    const res = await t.rawInject({ method: 'GET', url: '/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/text\/html/);
    expect(res.body).toContain('<base href="/" />');
    expect(res.headers['content-security-policy']).toMatch(/script-src 'self'(;|$)/);
    expect(res.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('answers a deep link with the app, so a shared URL opens its page', async () => {
    const res = await t.rawInject({ method: 'GET', url: '/workers/w1?status=active' });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('./assets/app-1a2b.js');
  });

  it('serves the hashed assets to be kept for good, other files to be revalidated', async () => {
    const asset = await t.rawInject({ method: 'GET', url: '/assets/app-1a2b.js' });
    expect(asset.statusCode).toBe(200);
    expect(asset.body).toBe('console.log("app")');
    expect(asset.headers['cache-control']).toMatch(/max-age=31536000.*immutable/);
    const icon = await t.rawInject({ method: 'GET', url: '/favicon.svg' });
    expect(icon.statusCode).toBe(200);
    expect(icon.headers['cache-control']).toMatch(/max-age=0/);
  });

  it('a missing file is a 404, not the app', async () => {
    const res = await t.rawInject({ method: 'GET', url: '/assets/gone-0000.js' });
    expect(res.statusCode).toBe(404);
    expect(res.json().error.code).toBe('not_found');
  });

  it("leaves the API's answers alone: unknown API paths are JSON 404s, routes still need a token", async () => {
    const unknown = await t.rawInject({ method: 'GET', url: '/api/v1/nothing-here' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error).toMatchObject({ code: 'not_found' });
    const workers = await t.rawInject({ method: 'GET', url: '/api/v1/workers' });
    expect(workers.statusCode).toBe(401);
    expect((await t.rawInject({ method: 'GET', url: '/api/docs/json' })).statusCode).toBe(200);
  });

  it('ignores X-Forwarded-Prefix from a proxy it does not trust', async () => {
    const res = await t.rawInject({ method: 'GET', url: '/', headers: { 'x-forwarded-prefix': '/evil' } });
    expect(res.body).toContain('<base href="/" />');
  });
});

describe('under a sub-path', () => {
  it('writes ui.base_path into the page', async () => {
    const t = await system({ dir: builtUi(), base_path: '/tools/aetherium' });
    const res = await t.rawInject({ method: 'GET', url: '/vms' });
    expect(res.body).toContain('<base href="/tools/aetherium/" />');
  });

  it("takes a trusted proxy's X-Forwarded-Prefix, and only a plain path", async () => {
    const t = await system({ dir: builtUi() }, { trust_proxy: true });
    const ok = await t.rawInject({ method: 'GET', url: '/', headers: { 'x-forwarded-prefix': '/aetherium/' } });
    expect(ok.body).toContain('<base href="/aetherium/" />');
    const hostile = await t.rawInject({
      method: 'GET',
      url: '/',
      headers: { 'x-forwarded-prefix': '/"><script>alert(1)</script>' },
    });
    expect(hostile.body).toContain('<base href="/" />');
    expect(hostile.body).not.toContain('alert(1)');
  });

  it('refuses a base path that is not one', async () => {
    await expect(startTestSystem({ ui: { base_path: 'aetherium/' } })).rejects.toThrow(/ui\.base_path/);
  });
});

describe('without a build', () => {
  it('explains how to build the UI, and the API still works', async () => {
    const t = await system({ dir: mkdtempSync(join(tmpdir(), 'aetherium-no-ui-')) });
    const res = await t.rawInject({ method: 'GET', url: '/' });
    expect(res.statusCode).toBe(503);
    expect(res.body).toContain('npm run build');
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/workers' })).statusCode).toBe(200);
  });

  it('with ui.enabled false, / shows the API documentation', async () => {
    const t = await system({ enabled: false });
    const res = await t.rawInject({ method: 'GET', url: '/' });
    expect(res.statusCode).toBe(302);
    expect(res.headers.location).toBe('/api/docs');
  });
});
