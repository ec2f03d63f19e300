/**
 * `GET /metrics` of a running embedded system: after a VM is created, used and deleted, the
 * counters, histograms and scrape-time gauges have moved as they should. Refused without a key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer } from './harness/auth.ts';
import { startTestSystem, type TestSystem } from './harness/dev-system.ts';
import { eventuallyPasses } from './harness/eventually.ts';

let t: TestSystem;

beforeAll(async () => {
  t = await startTestSystem();
}, 120_000);

afterAll(async () => {
  await t?.stop();
});

/** The samples of a Prometheus text exposition: `name{labels}` → value. */
async function scrape(): Promise<Map<string, number>> {
  const res = await t.app.inject({ method: 'GET', url: '/metrics' });
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  const samples = new Map<string, number>();
  for (const line of res.body.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

const value = (samples: Map<string, number>, key: string) => samples.get(key) ?? 0;

describe('GET /metrics', () => {
  it('refuses an anonymous scrape, answers a viewer key', async () => {
    expect((await t.rawInject({ method: 'GET', url: '/metrics' })).statusCode).toBe(401);
    const key = (
      await t.app.inject({ method: 'POST', url: '/api/v1/tokens', payload: { name: 'prom', role: 'viewer' } })
    ).json().token as string;
    expect((await t.rawInject({ method: 'GET', url: '/metrics', headers: bearer(key) })).statusCode).toBe(200);
  });

  it('moves with a VM created, used and deleted', async () => {
    const before = await scrape();
    expect(value(before, 'aetherium_workers{status="active"}')).toBe(1);
    expect(value(before, 'aetherium_worker_capacity_total{worker="test-worker",resource="cpu"}')).toBe(8);
    expect(value(before, 'aetherium_worker_capacity_total{worker="test-worker",resource="memory"}')).toBe(
      8192 * 2 ** 20,
    );
    expect(before.has('process_cpu_user_seconds_total')).toBe(true);

    const created = await t.app.inject({
      method: 'POST',
      url: '/api/v1/vms?wait=true&timeout=60',
      payload: { name: 'metered', vcpus: 2, memory_mb: 128 },
    });
    expect(created.statusCode).toBe(201);
    const exec = await t.app.inject({ method: 'POST', url: '/api/v1/vms/metered/exec', payload: { command: 'true' } });
    expect(exec.statusCode).toBe(200);

    const running = await scrape();
    expect(value(running, 'aetherium_vms{status="running",driver="process"}')).toBe(1);
    expect(value(running, 'aetherium_worker_capacity_allocated{worker="test-worker",resource="cpu"}')).toBe(2);
    expect(value(running, 'aetherium_worker_capacity_allocated{worker="test-worker",resource="slots"}')).toBe(1);
    expect(value(running, 'aetherium_placements_total{outcome="placed"}')).toBe(
      value(before, 'aetherium_placements_total{outcome="placed"}') + 1,
    );
    expect(value(running, 'aetherium_pending_task_oldest_age_seconds')).toBe(0);
    expect(
      value(running, 'aetherium_http_requests_total{route="/api/v1/vms",method="POST",status="201"}'),
    ).toBeGreaterThanOrEqual(1);

    const deleted = await t.app.inject({ method: 'DELETE', url: '/api/v1/vms/metered?wait=true' });
    expect(deleted.statusCode).toBe(200);
    await eventuallyPasses(
      async () => {
        const after = await scrape();
        for (const type of ['vm:create', 'vm:execute', 'vm:delete']) {
          const key = `{type="${type}",outcome="completed"}`;
          expect(value(after, `aetherium_tasks_finished_total${key}`), type).toBe(
            value(before, `aetherium_tasks_finished_total${key}`) + 1,
          );
          expect(value(after, `aetherium_task_duration_seconds_count${key}`), type).toBe(
            value(before, `aetherium_task_duration_seconds_count${key}`) + 1,
          );
        }
        expect(value(after, 'aetherium_vms{status="running",driver="process"}')).toBe(0);
        expect(value(after, 'aetherium_worker_capacity_allocated{worker="test-worker",resource="cpu"}')).toBe(0);
        expect(value(after, 'aetherium_events_published_total{type="vm.deleted"}')).toBeGreaterThanOrEqual(1);
      },
      10_000,
      100,
    );
  });
});
