/**
 * Join tokens and worker revocation end to end: a token is shown once, pins the CA, is stored only as
 * a hash, admits exactly as many workers as it allows and none once expired or revoked; only admins
 * manage tokens and revoke workers; the token never reaches the audit log or the logs; a control
 * plane without an agent CA refuses to make tokens; and the CLI creates, lists and revokes them.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AetheriumError, parseJoinToken, redactSecrets } from '../src/domain/index.ts';
import { loggerOptions } from '../src/runtime/logger.ts';
import { NO_AGENT_CA_MESSAGE } from '../src/server/services/join-token-service.ts';
import { bearer } from './harness/auth.ts';
import { startTestSystem, type TestSystem } from './harness/dev-system.ts';
import { runCli } from './harness/processes.ts';

const FINGERPRINT = `sha256:${'ab'.repeat(32)}`;
const TOKEN_SHAPE = /^aetherium-join\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}\.[0-9a-f]{64}$/;

interface Created {
  token: string;
  id: string;
  description: string;
  max_uses: number;
  expires_at: string;
  ca_fingerprint: string;
}

interface Listed {
  id: string;
  description: string;
  uses: number;
  max_uses: number;
  expires_at: string;
  revoked_at: string | null;
  last_worker_id: string | null;
  state: string;
}

interface ErrorBody {
  error: { code: string; message: string };
}

const parse = <T>(res: { body: string }): T => JSON.parse(res.body) as T;

let t: TestSystem;
const logLines: string[] = [];
/** Every token this file made: none may show up in the audit log or the logs. */
const issued: string[] = [];

beforeAll(async () => {
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logLines.push(String(chunk));
      done();
    },
  });
  t = await startTestSystem(
    {},
    { agentCaFingerprint: FINGERPRINT, log: pino(loggerOptions({ level: 'trace' }), sink) },
  );
}, 120_000);

afterAll(async () => {
  await t?.stop();
});

const service = () => t.system.controlPlane.joinTokens;

async function createJoin(payload: Record<string, unknown> = {}) {
  const res = await t.app.inject({ method: 'POST', url: '/api/v1/tokens/join', payload });
  const body = parse<Created & Partial<ErrorBody>>(res);
  if (res.statusCode === 201) issued.push(body.token);
  return { status: res.statusCode, body };
}

async function listJoins(): Promise<Listed[]> {
  const res = await t.app.inject({ method: 'GET', url: '/api/v1/tokens/join' });
  expect(res.statusCode).toBe(200);
  return parse<{ tokens: Listed[] }>(res).tokens;
}

describe('join tokens over the API', () => {
  it('POST /tokens/join shows the token once, pinning the CA; GET lists it without secret or hash', async () => {
    const before = Date.now();
    const created = await createJoin({ description: 'rack 7' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ description: 'rack 7', max_uses: 1, ca_fingerprint: FINGERPRINT });
    expect(created.body.token).toMatch(TOKEN_SHAPE);
    const parts = parseJoinToken(created.body.token);
    expect(parts).toMatchObject({ id: created.body.id, caFingerprint: FINGERPRINT });
    const ttl = Date.parse(created.body.expires_at) - before;
    expect(ttl).toBeGreaterThan(3_590_000); // the default: an hour
    expect(ttl).toBeLessThan(3_610_000);

    const res = await t.app.inject({ method: 'GET', url: '/api/v1/tokens/join' });
    expect(res.body).not.toContain(parts.secret);
    expect(res.body).not.toContain('secret_hash');
    expect(res.body).not.toContain('scrypt');
    const listed = parse<{ tokens: Listed[] }>(res).tokens.find((x) => x.id === created.body.id);
    expect(listed).toMatchObject({ uses: 0, max_uses: 1, state: 'active', revoked_at: null, last_worker_id: null });
  });

  it('a one-use token admits one worker; the second redeem is used_up', async () => {
    const { body } = await createJoin();
    const first = await service().redeem(body.token, 'w-join-1');
    expect(first).toMatchObject({ ok: true, record: { id: body.id, uses: 1, last_worker_id: 'w-join-1' } });
    expect(await service().redeem(body.token, 'w-join-2')).toEqual({ ok: false, reason: 'used_up' });
    expect((await listJoins()).find((x) => x.id === body.id)).toMatchObject({
      uses: 1,
      state: 'used_up',
      last_worker_id: 'w-join-1',
    });
  });

  it('max_uses 3 admits three workers, then no more, even when they join at once', async () => {
    const { body } = await createJoin({ max_uses: 3 });
    expect(body.max_uses).toBe(3);
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) => service().redeem(body.token, `w-three-${i}`)),
    );
    expect(results.filter((r) => r.ok)).toHaveLength(3);
    expect(results.filter((r) => !r.ok)).toEqual(Array(3).fill({ ok: false, reason: 'used_up' }));
  });

  it('an expired token is refused expired', async () => {
    const { body } = await createJoin({ ttl: '1s', max_uses: 2 });
    expect(await service().redeem(body.token, 'w-late', new Date(Date.now() + 2_000))).toEqual({
      ok: false,
      reason: 'expired',
    });
    // Still good before it expires: the refusal used nothing up.
    expect((await service().redeem(body.token, 'w-early', new Date())).ok).toBe(true);
  });

  it('a revoked token is refused revoked; revoking again answers it as it is; an unknown id is 404', async () => {
    const { body } = await createJoin({ max_uses: 5 });
    const revoke = () => t.app.inject({ method: 'DELETE', url: `/api/v1/tokens/join/${body.id}` });
    const first = await revoke();
    expect(first.statusCode).toBe(200);
    const revoked = parse<Listed>(first);
    expect(revoked).toMatchObject({ id: body.id, state: 'revoked', uses: 0 });
    expect(first.body).not.toContain('secret_hash');
    expect(await service().redeem(body.token, 'w-revoked')).toEqual({ ok: false, reason: 'revoked' });
    const again = await revoke();
    expect(again.statusCode).toBe(200);
    expect(parse<Listed>(again).revoked_at).toBe(revoked.revoked_at);

    const unknown = await t.app.inject({ method: 'DELETE', url: '/api/v1/tokens/join/0123456789abcdef' });
    expect(unknown.statusCode).toBe(404);
    expect(parse<ErrorBody>(unknown).error.code).toBe('not_found');
  });

  it('malformed tokens are refused malformed, a wrong secret or an unknown id unknown', async () => {
    const { body } = await createJoin();
    const parts = parseJoinToken(body.token);
    const hex = FINGERPRINT.slice('sha256:'.length);
    for (const bad of ['', 'nonsense', 'ae_0123456789abcdef_x', `aetherium-join.${parts.id}.${parts.secret}`]) {
      expect(await service().redeem(bad, 'w-x')).toEqual({ ok: false, reason: 'malformed' });
    }
    const wrongSecret = `aetherium-join.${parts.id}.${'A'.repeat(43)}.${hex}`;
    expect(await service().redeem(wrongSecret, 'w-x')).toEqual({ ok: false, reason: 'unknown' });
    const unknownId = `aetherium-join.0000000000000000.${parts.secret}.${hex}`;
    expect(await service().redeem(unknownId, 'w-x')).toEqual({ ok: false, reason: 'unknown' });
    // The wrong guesses used nothing up.
    expect((await service().redeem(body.token, 'w-x')).ok).toBe(true);
  });

  it('parseJoinToken says what is wrong, never echoing the token', () => {
    const secretish = `aetherium-join.0123456789abcdef.${'s'.repeat(40)}`;
    for (const [bad, why] of [
      ['ae_0123456789abcdef_xyz', /API key, not a join token/],
      ['hello', /does not start with aetherium-join\./],
      [secretish, /3 dot-separated parts/],
    ] as const) {
      try {
        parseJoinToken(bad);
        expect.unreachable(`${bad} parsed`);
      } catch (err) {
        expect(err).toBeInstanceOf(AetheriumError);
        expect((err as AetheriumError).code).toBe('validation_failed');
        expect((err as Error).message).toMatch(why);
        expect((err as Error).message).not.toContain(bad);
      }
    }
    const upper = `aetherium-join.0123456789abcdef.${'A'.repeat(43)}.${'AB'.repeat(32)}`;
    expect(parseJoinToken(` ${upper}\n`).caFingerprint).toBe(FINGERPRINT);
  });

  it('validates max_uses and ttl: seconds or a duration, 1s to 30d', async () => {
    for (const payload of [
      { max_uses: 0 },
      { max_uses: 1001 },
      { max_uses: 1.5 },
      { ttl: '31d' },
      { ttl: 'soon' },
      { ttl: '0s' },
      { ttl: 0 },
      { role: 'admin' },
    ]) {
      const res = await createJoin(payload);
      expect(res.status, JSON.stringify(payload)).toBe(400);
      expect(res.body.error?.code).toBe('validation_failed');
    }
    const now = Date.now();
    for (const ttl of [600, '600', '10m']) {
      const res = await createJoin({ ttl, max_uses: 1000 });
      expect(res.status).toBe(201);
      expect(Math.abs(Date.parse(res.body.expires_at) - now - 600_000)).toBeLessThan(10_000);
    }
    expect((await createJoin({ ttl: '30d' })).status).toBe(201);
  });

  it('a control plane without an agent CA refuses to make join tokens (409)', async () => {
    const cp = t.system.controlPlane;
    const ca = cp.agentCa;
    cp.agentCa = null;
    try {
      const res = await createJoin();
      expect(res.status).toBe(409);
      expect(res.body.error).toEqual({ code: 'conflict', message: NO_AGENT_CA_MESSAGE });
    } finally {
      cp.agentCa = ca;
    }
    expect((await createJoin()).status).toBe(201);
  });
});

describe('worker revocation', () => {
  it('POST /workers/{id}/revoke stores a cut-off of now, read back by workerCertificatesRevokedBefore', async () => {
    const store = t.system.engines.store;
    expect(await store.workerCertificatesRevokedBefore('test-worker')).toBeNull();
    const before = Date.now();
    const res = await t.app.inject({ method: 'POST', url: '/api/v1/workers/test-worker/revoke' });
    expect(res.statusCode).toBe(200);
    const body = parse<{ worker_id: string; revoked_before: string; message: string }>(res);
    expect(body.worker_id).toBe('test-worker');
    expect(body.message).toMatch(/refused from now on/);
    const cutoff = await store.workerCertificatesRevokedBefore('test-worker');
    expect(cutoff?.toISOString()).toBe(body.revoked_before);
    expect(cutoff!.getTime()).toBeGreaterThanOrEqual(before);
    expect(cutoff!.getTime()).toBeLessThanOrEqual(Date.now());
  });

  it('a worker a token admitted can be revoked before it registers; an unknown worker is 404', async () => {
    const { body } = await createJoin();
    expect((await service().redeem(body.token, 'w-joined-not-registered')).ok).toBe(true);
    const admitted = await t.app.inject({ method: 'POST', url: '/api/v1/workers/w-joined-not-registered/revoke' });
    expect(admitted.statusCode).toBe(200);
    const unknown = await t.app.inject({ method: 'POST', url: '/api/v1/workers/w-nobody/revoke' });
    expect(unknown.statusCode).toBe(404);
    expect(parse<ErrorBody>(unknown).error.code).toBe('not_found');
    expect(await t.system.engines.store.workerCertificatesRevokedBefore('w-nobody')).toBeNull();
  });
});

describe('who may', () => {
  it('only admins: viewer and operator keys get 403, no credentials 401, on every route', async () => {
    const keys = t.system.controlPlane.tokens;
    const viewer = (await keys.create({ name: 'join-viewer', role: 'viewer' }, null)).token;
    const operator = (await keys.create({ name: 'join-operator', role: 'operator' }, null)).token;
    const { body } = await createJoin();
    const routes = [
      { method: 'POST', url: '/api/v1/tokens/join', payload: {} },
      { method: 'GET', url: '/api/v1/tokens/join' },
      { method: 'DELETE', url: `/api/v1/tokens/join/${body.id}` },
      { method: 'POST', url: '/api/v1/workers/test-worker/revoke', payload: {} },
    ] as const;
    for (const route of routes) {
      for (const key of [viewer, operator]) {
        const res = await t.rawInject({ ...route, headers: bearer(key) });
        expect(res.statusCode, `${route.method} ${route.url}`).toBe(403);
        expect(parse<ErrorBody>(res).error.code).toBe('forbidden');
      }
      expect((await t.rawInject({ ...route })).statusCode).toBe(401);
    }
    // Nothing happened: the token is still live.
    expect((await listJoins()).find((x) => x.id === body.id)?.state).toBe('active');
  });
});

describe('the CLI', () => {
  let api: string;
  const env = { AETHERIUM_TOKEN: '', AETHERIUM_KEY_FILE: join(tmpdir(), `aetherium-no-such-key-${process.pid}`) };
  const cli = (...args: string[]) => runCli(['--api', api, '--token', t.adminKey, ...args], env);

  beforeAll(async () => {
    api = await t.app.listen({ port: 0, host: '127.0.0.1' });
  });

  it('tokens create --join prints the token and the line to paste; list --join and revoke --join', async () => {
    const created = await cli('tokens', 'create', '--join', '--uses', '2', '--ttl', '30m', '--description', 'cli');
    expect(created.code, created.stderr).toBe(0);
    const token = created.stdout.split('\n')[0]!;
    expect(token).toMatch(TOKEN_SHAPE);
    issued.push(token);
    expect(created.stdout).toContain(`aetherium worker --join ${token} --server <control-plane-host>:4647`);
    expect(created.stdout).toMatch(/placeholder/);
    expect(created.stdout).toContain(FINGERPRINT);
    const { id } = parseJoinToken(token);

    const listed = await cli('tokens', 'list', '--join');
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`${id}.*active.*0/2`));
    expect(listed.stdout).not.toContain(parseJoinToken(token).secret);

    const revoked = await cli('tokens', 'revoke', '--join', id);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain(`revoked join token ${id}`);
    expect((await listJoins()).find((x) => x.id === id)?.state).toBe('revoked');
  }, 60_000);

  it('tokens create refuses a mix of API-key and join-token flags', async () => {
    const mixed = await cli('tokens', 'create', '--join', '--name', 'x');
    expect(mixed.code).not.toBe(0);
    expect(mixed.stderr).toMatch(/--name, --role and --expires are for API keys/);
    const neither = await cli('tokens', 'create');
    expect(neither.code).not.toBe(0);
    expect(neither.stderr).toMatch(/needs --name and --role/);
  }, 60_000);

  it('workers revoke ID', async () => {
    const res = await cli('workers', 'revoke', 'test-worker');
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/certificates of worker test-worker issued at or before .* are refused/);
  }, 60_000);
});

describe('the token stays secret', () => {
  it('redactSecrets masks the secret of a join token, keeping its id and fingerprint', () => {
    const token = issued[0]!;
    const { id, secret } = parseJoinToken(token);
    const masked = redactSecrets(`joining with ${token} failed`);
    expect(masked).not.toContain(secret);
    expect(masked).toBe(`joining with aetherium-join.${id}.***.${'ab'.repeat(32)} failed`);
  });

  it('no token, nor its secret, is in the audit log or the logs', async () => {
    expect(issued.length).toBeGreaterThan(10);
    const audit = await t.app.inject({ method: 'GET', url: '/api/v1/audit?limit=1000' });
    const rows = JSON.stringify(await t.system.engines.store.listAudit({ limit: 1000 }));
    const logs = logLines.join('');
    expect(logs.length).toBeGreaterThan(0);
    for (const token of issued) {
      const { secret } = parseJoinToken(token);
      for (const text of [audit.body, rows, logs]) expect(text).not.toContain(secret);
    }
  });
});
