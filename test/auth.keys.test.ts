/**
 * API keys end to end: a key is shown once and stored only as an scrypt hash; it works for its role
 * and not above; expiry and revocation take effect on the next request; the bootstrap of a new
 * cluster's first admin key works once, even when raced; `aetherium dev` keeps its admin key in a
 * 0600 file beside its database; a listener off loopback refuses to start without authentication;
 * and the CLI creates, lists, uses and revokes keys.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../src/adapters/storage/open-store.ts';
import { loadConfig } from '../src/config/load.ts';
import { AetheriumError } from '../src/domain/index.ts';
import type { Store } from '../src/ports/store.ts';
import { KEY_FILE } from '../src/runtime/dev-admin-key.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { isLoopback, requireSafeBind, UnsafeBind } from '../src/runtime/safe-bind.ts';
import { parseApiKey } from '../src/server/auth/api-keys.ts';
import { Authenticator } from '../src/server/auth/authenticator.ts';
import { TokenService } from '../src/server/services/token-service.ts';
import { bearer } from './harness/auth.ts';
import { startTestSystem, type TestSystem } from './harness/dev-system.ts';
import { runCli } from './harness/processes.ts';

const KEY_SHAPE = /^ae_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/;

interface KeyView {
  id: string;
  name: string;
  role: string;
  created_at: string;
  created_by: string | null;
  last_used_at: string | null;
  expires_at: string | null;
  revoked_at: string | null;
  token?: string;
  hash?: string;
}

interface ErrorBody {
  error: { code: string; message: string };
}

const parse = <T>(res: { body: string }): T => JSON.parse(res.body) as T;

let t: TestSystem;

beforeAll(async () => {
  t = await startTestSystem();
}, 120_000);

afterAll(async () => {
  await t?.stop();
});

async function createKey(payload: Record<string, unknown>) {
  const res = await t.app.inject({ method: 'POST', url: '/api/v1/tokens', payload });
  return { status: res.statusCode, body: parse<KeyView & Partial<ErrorBody>>(res) };
}

const vmsAs = (token: string) => t.rawInject({ method: 'GET', url: '/api/v1/vms', headers: bearer(token) });

describe('API keys over the API', () => {
  it('POST /tokens shows the key once; GET /tokens never shows a key or a hash', async () => {
    const created = await createKey({ name: 'shown-once', role: 'viewer', expires: '30d' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'shown-once', role: 'viewer', revoked_at: null });
    expect(created.body.token).toMatch(KEY_SHAPE);
    expect(created.body.hash).toBeUndefined();
    const expiresIn = Date.parse(created.body.expires_at ?? '') - Date.now();
    expect(expiresIn).toBeGreaterThan(29 * 86_400_000);
    expect(expiresIn).toBeLessThanOrEqual(30 * 86_400_000);

    const token = created.body.token!;
    const secret = parseApiKey(token)!.secret;
    for (const url of ['/api/v1/tokens', '/api/v1/tokens?include_revoked=true']) {
      const listed = await t.app.inject({ method: 'GET', url });
      expect(listed.statusCode).toBe(200);
      const { tokens } = parse<{ tokens: KeyView[] }>(listed);
      const mine = tokens.find((k) => k.id === created.body.id);
      expect(mine).toMatchObject({ name: 'shown-once', role: 'viewer' });
      for (const key of tokens) {
        expect(key).not.toHaveProperty('token');
        expect(key).not.toHaveProperty('hash');
      }
      expect(listed.body).not.toContain(secret);
      expect(listed.body).not.toContain('scrypt$');
    }
  });

  it('stores only an scrypt hash of the secret, never the key', async () => {
    const created = await createKey({ name: 'hashed', role: 'viewer' });
    const token = created.body.token!;
    const { id, secret } = parseApiKey(token)!;
    expect(id).toBe(created.body.id);
    const stored = await t.system.engines.store.getApiKey(id);
    expect(stored).not.toBeNull();
    expect(stored!.hash).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    expect(stored!.hash).not.toContain(secret);
    expect(stored!.hash).not.toContain(token);
    expect(JSON.stringify(stored)).not.toContain(secret);
  });

  it('a key works for its role and not above', async () => {
    const viewer = (await createKey({ name: 'role-viewer', role: 'viewer' })).body.token!;
    expect((await vmsAs(viewer)).statusCode).toBe(200);
    const refused = await t.rawInject({
      method: 'POST',
      url: '/api/v1/vms',
      headers: bearer(viewer),
      payload: { name: 'not-for-viewers' },
    });
    expect(refused.statusCode).toBe(403);
    expect(parse<ErrorBody>(refused).error).toMatchObject({
      code: 'forbidden',
      message: expect.stringMatching(/operator/),
    });
    const keys = await t.rawInject({ method: 'GET', url: '/api/v1/tokens', headers: bearer(viewer) });
    expect(keys.statusCode).toBe(403);

    const operator = (await createKey({ name: 'role-operator', role: 'operator' })).body.token!;
    const operatorKeys = await t.rawInject({ method: 'GET', url: '/api/v1/tokens', headers: bearer(operator) });
    expect(operatorKeys.statusCode).toBe(403);
    const drain = await t.rawInject({
      method: 'POST',
      url: '/api/v1/workers/test-worker/drain',
      headers: bearer(operator),
      payload: {},
    });
    expect(drain.statusCode).toBe(403);
  });

  it('a key that expires works until then, and is refused after, saying it expired', async () => {
    const created = await createKey({ name: 'short-lived', role: 'viewer', expires: '1s' });
    expect(created.status).toBe(201);
    const token = created.body.token!;
    expect((await vmsAs(token)).statusCode).toBe(200);
    await new Promise((r) => setTimeout(r, 1200));
    const late = await vmsAs(token);
    expect(late.statusCode).toBe(401);
    expect(parse<ErrorBody>(late).error).toMatchObject({
      code: 'unauthorized',
      message: expect.stringMatching(/expired/),
    });
    expect(late.body).not.toContain(parseApiKey(token)!.secret);
  });

  it('refuses an expiry that is not a duration, and a second live key with the same name', async () => {
    for (const expires of ['soon', '0s', '-5m', '']) {
      const bad = await createKey({ name: `bad-expiry-${expires.length}`, role: 'viewer', expires });
      expect(bad.status, `expires ${JSON.stringify(expires)}`).toBe(400);
      expect(bad.body.error?.code).toBe('validation_failed');
    }
    expect((await createKey({ name: 'twice', role: 'viewer' })).status).toBe(201);
    const again = await createKey({ name: 'twice', role: 'admin' });
    expect(again.status).toBe(409);
    expect(again.body.error).toMatchObject({ code: 'conflict', message: expect.stringMatching(/twice/) });
    expect((await createKey({ name: 'Bad Name', role: 'viewer' })).status).toBe(400);
    expect((await createKey({ name: 'no-role', role: 'root' })).status).toBe(400);
  });

  // An expiry past the largest Date would be an Invalid Date that the store cannot write.
  it('refuses an expiry too far out to be a date with 400, not 500', async () => {
    const far = await createKey({ name: 'far-future', role: 'viewer', expires: '999999999d' });
    expect(far.status).toBe(400);
    expect(far.body.error?.code).toBe('validation_failed');
  });

  it('DELETE /tokens/NAME revokes at once; a second revoke is 404; the name is free again', async () => {
    const created = await createKey({ name: 'to-revoke', role: 'operator' });
    const token = created.body.token!;
    expect((await vmsAs(token)).statusCode).toBe(200);
    const revoked = await t.app.inject({ method: 'DELETE', url: '/api/v1/tokens/to-revoke' });
    expect(revoked.statusCode).toBe(200);
    expect(parse<KeyView>(revoked)).toMatchObject({ id: created.body.id, name: 'to-revoke' });
    expect(parse<KeyView>(revoked).revoked_at).not.toBeNull();
    expect(revoked.body).not.toContain('scrypt$');

    const refused = await vmsAs(token);
    expect(refused.statusCode).toBe(401);
    expect(parse<ErrorBody>(refused).error.message).toMatch(/revoked/);

    const again = await t.app.inject({ method: 'DELETE', url: '/api/v1/tokens/to-revoke' });
    expect(again.statusCode).toBe(404);
    expect(parse<ErrorBody>(again).error.code).toBe('not_found');

    const listed = parse<{ tokens: KeyView[] }>(await t.app.inject({ method: 'GET', url: '/api/v1/tokens' }));
    expect(listed.tokens.map((k) => k.name)).not.toContain('to-revoke');
    const all = parse<{ tokens: KeyView[] }>(
      await t.app.inject({ method: 'GET', url: '/api/v1/tokens?include_revoked=true' }),
    );
    expect(all.tokens.find((k) => k.id === created.body.id)?.revoked_at).not.toBeNull();

    const reused = await createKey({ name: 'to-revoke', role: 'viewer' });
    expect(reused.status).toBe(201);
    expect((await vmsAs(token)).statusCode).toBe(401);
  });
});

describe('bootstrap', () => {
  it('is refused on the dev system, which made its own admin key at start', async () => {
    const res = await t.rawInject({ method: 'POST', url: '/api/v1/tokens/bootstrap', payload: {} });
    expect(res.statusCode).toBe(409);
    expect(parse<ErrorBody>(res).error).toMatchObject({
      code: 'conflict',
      message: expect.stringMatching(/bootstrapped/),
    });
  });

  describe('on a fresh store', () => {
    const stores: Store[] = [];
    const fresh = async () => {
      const store = await openStore({ kind: 'pglite' });
      stores.push(store);
      return store;
    };
    afterAll(async () => {
      for (const store of stores) await store.close();
    });

    it('gives one admin key, then refuses', async () => {
      const store = await fresh();
      const tokens = new TokenService(store);
      const first = await tokens.bootstrap();
      expect(first).toMatchObject({ name: 'bootstrap', role: 'admin', created_by: null });
      expect(first.token).toMatch(KEY_SHAPE);
      const identity = await new Authenticator(store, null, silentLogger).authenticate(first.token);
      expect(identity).toMatchObject({ kind: 'key', role: 'admin', name: 'bootstrap' });

      await expect(tokens.bootstrap()).rejects.toMatchObject({ code: 'conflict' });
      // Once means once: revoking the bootstrap key does not open the door again.
      await tokens.revoke('bootstrap');
      await expect(tokens.bootstrap()).rejects.toBeInstanceOf(AetheriumError);
      await expect(tokens.bootstrap()).rejects.toMatchObject({ code: 'conflict' });
    }, 60_000);

    it('five at once give exactly one key', async () => {
      const store = await fresh();
      const tokens = new TokenService(store);
      const results = await Promise.allSettled(Array.from({ length: 5 }, () => tokens.bootstrap()));
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r) => r.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(4);
      for (const r of lost) expect(r.reason).toMatchObject({ code: 'conflict' });
      expect(await store.listApiKeys({ include_revoked: true })).toHaveLength(1);
    }, 60_000);
  });
});

describe('the dev admin key file', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'aetherium-devkey-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const startOnDisk = () => startTestSystem({ store: { kind: 'pglite', pglite: { data_dir: join(dir, 'pglite') } } });

  it('is written 0600 beside the database, kept across restarts, and replaced (old key revoked) when deleted', async () => {
    const file = join(dir, KEY_FILE);
    const first = await startOnDisk();
    let firstKey: string;
    try {
      expect(first.system.adminKeyFile).toBe(file);
      expect(existsSync(file)).toBe(true);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      firstKey = readFileSync(file, 'utf8').trim();
      expect(firstKey).toMatch(KEY_SHAPE);
      expect(firstKey).toBe(first.adminKey);
      const asAdmin = await first.rawInject({ method: 'GET', url: '/api/v1/tokens', headers: bearer(firstKey) });
      expect(asAdmin.statusCode).toBe(200);
    } finally {
      await first.stop();
    }

    const second = await startOnDisk();
    try {
      expect(second.adminKey).toBe(firstKey);
      expect(readFileSync(file, 'utf8').trim()).toBe(firstKey);
      const live = parse<{ tokens: KeyView[] }>(await second.app.inject({ method: 'GET', url: '/api/v1/tokens' }));
      expect(live.tokens.filter((k) => k.name === 'dev-admin')).toHaveLength(1);
    } finally {
      await second.stop();
    }

    unlinkSync(file);
    const third = await startOnDisk();
    try {
      expect(existsSync(file)).toBe(true);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const newKey = readFileSync(file, 'utf8').trim();
      expect(newKey).toMatch(KEY_SHAPE);
      expect(newKey).not.toBe(firstKey);
      expect(third.adminKey).toBe(newKey);
      const fresh = await third.rawInject({ method: 'GET', url: '/api/v1/tokens', headers: bearer(newKey) });
      expect(fresh.statusCode).toBe(200);
      const old = await third.rawInject({ method: 'GET', url: '/api/v1/vms', headers: bearer(firstKey) });
      expect(old.statusCode).toBe(401);
      expect(parse<ErrorBody>(old).error.message).toMatch(/revoked/);
    } finally {
      await third.stop();
    }
  }, 120_000);
});

describe('safe bind', () => {
  const configWith = (host: string, enabled: boolean) =>
    loadConfig({ env: {}, overrides: { api_gateway: { host, auth: { enabled } } } });

  it('refuses a listener off loopback with authentication off, naming the setting', () => {
    for (const host of ['0.0.0.0', '::', '', '192.168.1.10', '::ffff:127.0.0.1']) {
      let thrown: unknown = null;
      try {
        requireSafeBind(configWith(host, false), 'server');
      } catch (err) {
        thrown = err;
      }
      expect(thrown, `host ${JSON.stringify(host)}`).toBeInstanceOf(UnsafeBind);
      expect((thrown as Error).message).toMatch(/api_gateway\.auth\.enabled/);
    }
  });

  it('allows loopback with authentication off, and any address with it on', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1']) {
      expect(isLoopback(host)).toBe(true);
      expect(() => requireSafeBind(configWith(host, false), 'dev')).not.toThrow();
    }
    expect(() => requireSafeBind(configWith('0.0.0.0', true), 'server')).not.toThrow();
  });

  it('`aetherium dev` listens on 127.0.0.1 by default, with authentication on', () => {
    const config = loadConfig({ env: {} });
    expect(config.api_gateway.host).toBe('127.0.0.1');
    expect(config.api_gateway.auth.enabled).toBe(true);
  });

  it('`aetherium server` on 0.0.0.0 without authentication exits 2 before connecting anywhere', async () => {
    // Stands in for Postgres and Redis: it counts connections and never answers.
    let connections = 0;
    const trap: Server = createServer((socket) => {
      connections++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve));
    const { port } = trap.address() as { port: number };
    try {
      const result = await runCli(
        ['server'],
        {
          AETHERIUM_API_GATEWAY__HOST: '0.0.0.0',
          AETHERIUM_API_GATEWAY__AUTH__ENABLED: 'false',
          AETHERIUM_STORE__KIND: 'postgres',
          DATABASE_URL: `postgres://127.0.0.1:${port}/x`,
          AETHERIUM_QUEUE__KIND: 'redis',
          AETHERIUM_EVENTS__KIND: 'redis',
          REDIS_URL: `redis://127.0.0.1:${port}`,
        },
        30_000,
      );
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toMatch(/0\.0\.0\.0 with authentication off/);
      expect(result.stderr).toMatch(/api_gateway\.auth\.enabled/);
      expect(connections).toBe(0);
    } finally {
      await new Promise<void>((resolve) => trap.close(() => resolve()));
    }
  }, 40_000);
});

describe('the CLI', () => {
  let api: string;
  const noKeyFile = join(tmpdir(), `aetherium-no-such-key-${process.pid}`);
  // No credentials but the ones a test gives: not the environment's, not a key file.
  const env = { AETHERIUM_TOKEN: '', AETHERIUM_KEY_FILE: noKeyFile };
  const cli = (...args: string[]) => runCli(['--api', api, ...args], env);

  beforeAll(async () => {
    api = await t.app.listen({ port: 0, host: '127.0.0.1' });
  });

  it('creates a key (printed once), lists it without the secret, uses it, revokes it', async () => {
    const created = await cli('--token', t.adminKey, 'tokens', 'create', '--name', 'ci', '--role', 'operator');
    expect(created.code, created.stderr).toBe(0);
    const key = created.stdout.split('\n')[0]!;
    expect(key).toMatch(KEY_SHAPE);
    expect(created.stdout.split(key).length).toBe(2); // printed exactly once
    expect(created.stdout).toMatch(/API key ci \(operator\): shown this once/);
    const secret = parseApiKey(key)!.secret;

    const listed = await cli('--token', t.adminKey, 'tokens', 'list');
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/\bci\b.*\boperator\b/);
    expect(listed.stdout).toContain(parseApiKey(key)!.id);
    expect(listed.stdout).not.toContain(secret);
    const listedJson = await cli('--token', t.adminKey, '--json', 'tokens', 'list');
    expect(listedJson.code, listedJson.stderr).toBe(0);
    expect(listedJson.stdout).not.toContain(secret);
    expect(listedJson.stdout).not.toContain('scrypt$');

    const used = await cli('--token', key, '--json', 'vm', 'list');
    expect(used.code, used.stderr).toBe(0);
    expect(parse<{ vms: unknown[] }>({ body: used.stdout }).vms).toEqual(expect.any(Array));
    // AETHERIUM_TOKEN works like --token.
    const fromEnv = await runCli(['--api', api, 'vm', 'list'], { ...env, AETHERIUM_TOKEN: key });
    expect(fromEnv.code, fromEnv.stderr).toBe(0);

    const revoked = await cli('--token', t.adminKey, 'tokens', 'revoke', 'ci');
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toMatch(/revoked API key ci/);

    const refused = await cli('--token', key, 'vm', 'list');
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/revoked/);
    expect(refused.stderr).not.toContain(secret);
  }, 60_000);

  it('without any credentials says how to get some', async () => {
    expect(existsSync(noKeyFile)).toBe(false);
    const result = await cli('vm', 'list');
    expect(result.code).toBe(4);
    expect(result.stderr).toMatch(/needs credentials/);
    expect(result.stderr).toMatch(/aetherium tokens create|Bearer/);
  }, 30_000);

  it('reads the key file that `aetherium dev` writes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aetherium-keyfile-'));
    try {
      const file = join(dir, KEY_FILE);
      writeFileSync(file, `${t.adminKey}\n`, { mode: 0o600 });
      const result = await runCli(['--api', api, 'tokens', 'list'], { AETHERIUM_TOKEN: '', AETHERIUM_KEY_FILE: file });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/dev-admin/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
