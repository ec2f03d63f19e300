/** No password, key or token in /health, in errors or in logs. */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config/load.ts';
import { redactSecrets } from '../src/domain/index.ts';
import { loggerOptions } from '../src/runtime/logger.ts';
import { checkHealth } from '../src/server/health.ts';
import { startTestSystem } from './harness/dev-system.ts';

const PASSWORD = 'hunter2-very-secret';

describe('secrets stay secret', () => {
  it('credentials in URLs are masked, the rest of the text is kept', () => {
    expect(redactSecrets(`connect to postgres://aetherium:${PASSWORD}@db:5432/x failed`)).toBe(
      'connect to postgres://aetherium:***@db:5432/x failed',
    );
    expect(redactSecrets(`redis://:${PASSWORD}@cache:6379`)).toBe('redis://:***@cache:6379');
    expect(redactSecrets('http://etcd:2379 is down')).toBe('http://etcd:2379 is down');
  });

  it('/health names a failing engine without the password in its URL', async () => {
    const probe = {
      name: 'queue',
      kind: 'bullmq',
      check: async () => {
        throw new Error(`cannot reach redis://:${PASSWORD}@cache:6379`);
      },
    };
    const report = await checkHealth('server', 'test', [probe], () => []);
    expect(report.status).toBe('degraded');
    expect(JSON.stringify(report)).not.toContain(PASSWORD);
    expect(report.engines.queue?.error).toMatch(/redis:\/\/:\*\*\*@cache:6379/);
  });

  it('logs censor authorization headers, tokens, passwords and engine URLs', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const log = pino(loggerOptions({ level: 'info' }), sink);
    log.info({ req: { headers: { authorization: `Bearer ae_0123456789abcdef_${PASSWORD}` } } }, 'request');
    log.info({ token: PASSWORD, store: { url: `postgres://u:${PASSWORD}@db/x` }, password: PASSWORD }, 'config');
    expect(lines.join('')).not.toContain(PASSWORD);
    expect(lines.join('')).toContain('[redacted]');
  });

  it('a configuration error does not echo the database URL', () => {
    try {
      loadConfig({ env: { DATABASE_URL: `postgres://u:${PASSWORD}@db/x`, PORT: 'eighty' } });
      expect.unreachable('the port is not a number');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).not.toContain(PASSWORD);
    }
  });

  it('an API key never comes back after it is created: not in lists, errors or the audit', async () => {
    const t = await startTestSystem();
    try {
      const created = await t.app.inject({
        method: 'POST',
        url: '/api/v1/tokens',
        payload: { name: 'once', role: 'viewer' },
      });
      const { token } = JSON.parse(created.body) as { token: string };
      const secret = token.split('_').at(-1)!;
      const later = await Promise.all([
        t.app.inject({ method: 'GET', url: '/api/v1/tokens?include_revoked=true' }),
        t.app.inject({ method: 'GET', url: '/api/v1/audit' }),
        t.rawInject({ method: 'GET', url: '/api/v1/vms', headers: { authorization: `Bearer ${token}x` } }),
        t.app.inject({ method: 'GET', url: '/health' }),
      ]);
      for (const res of later) expect(res.body).not.toContain(secret);
    } finally {
      await t.stop();
    }
  }, 60_000);
});
