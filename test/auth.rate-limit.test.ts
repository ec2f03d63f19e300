/**
 * Rate limits count per identity, not per address, and every replica counts together in Redis:
 * two control planes on one Postgres and one Redis, one limit per key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer } from './harness/auth.ts';
import { type InProcessCluster, startInProcessCluster } from './harness/in-process-cluster.ts';

const LIMIT = 6;
let c: InProcessCluster;

beforeAll(async () => {
  c = await startInProcessCluster({
    replicas: 2,
    agents: [],
    config: { api_gateway: { rate_limit: { enabled: true, max: LIMIT, window: '1m' } } },
  });
}, 180_000);

afterAll(async () => {
  await c?.stop();
});

describe('rate limits', () => {
  it('one limit per key across two replicas; another key has its own; the 429 says when to retry', async () => {
    const viewer = (await c.replicas[0]!.tokens.create({ name: 'limited', role: 'viewer' }, null)).token;
    const other = (await c.replicas[0]!.tokens.create({ name: 'unlimited', role: 'viewer' }, null)).token;
    const statuses: number[] = [];
    for (let i = 0; i < LIMIT + 2; i++) {
      const res = await c.replicas[i % 2]!.http.inject({ method: 'GET', url: '/api/v1/vms', headers: bearer(viewer) });
      statuses.push(res.statusCode);
      if (res.statusCode === 429) {
        expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
        const body = JSON.parse(res.body) as { error: { code: string; message: string } };
        expect(body.error.code).toBe('rate_limited');
        expect(body.error.message).toMatch(/rate limit/);
      }
    }
    // Each replica saw only half the requests: the 429s prove they counted together.
    expect(statuses.slice(0, LIMIT)).toEqual(Array(LIMIT).fill(200));
    expect(statuses.slice(LIMIT)).toEqual([429, 429]);
    const fresh = await c.replicas[1]!.http.inject({ method: 'GET', url: '/api/v1/vms', headers: bearer(other) });
    expect(fresh.statusCode).toBe(200);
    // Health checks are never limited: load balancers call them all the time.
    for (let i = 0; i < LIMIT + 2; i++) {
      expect((await c.replicas[0]!.http.inject({ method: 'GET', url: '/health' })).statusCode).not.toBe(429);
    }
  }, 60_000);
});
