/**
 * `GET /metrics` of a running embedded system: after a VM is created, used and deleted, the
 * counters, histograms and scrape-time gauges have moved as they should. Refused without a key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer } from './harness/auth.ts';
import { startTestSystem, type TestSystem } from './harness/dev-system.ts';
import { eventuallyPasses } from './harness/eventually.ts';
import { parseSamples } from './harness/prometheus-text.ts';

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
  return parseSamples(res.body);
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

  it('GET /workers/{id}/metrics?since=&step= answers a timeline; bad ranges are 400s', async () => {
    const store = t.system.engines.store;
    const now = Date.now();
    const start = Math.floor((now - 2 * 3_600_000) / 600_000) * 600_000;
    for (let i = 0; i < 4; i++)
      await store.recordWorkerMetrics({
        worker_id: 'test-worker',
        timestamp: new Date(start + i * 150_000),
        cpu_usage: 10 * (i + 1),
        memory_usage: 50,
        disk_usage: 20,
        vm_count: i,
        tasks_processed: 7 + i,
        network_in_mb: 0,
        network_out_mb: 0,
      });
    const since = new Date(start - 1000).toISOString();
    const until = new Date(start + 600_000).toISOString();
    const res = await t.app.inject({
      method: 'GET',
      url: `/api/v1/workers/test-worker/metrics?since=${since}&until=${until}&step=5m`,
    });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ since, until, step_seconds: 300, total: 2 });
    expect(
      body.metrics.map((m: { timestamp: string; cpu_usage: number; vm_count: number }) => [
        m.timestamp,
        m.cpu_usage,
        m.vm_count,
      ]),
    ).toEqual([
      [new Date(start).toISOString(), 15, 0.5],
      [new Date(start + 300_000).toISOString(), 35, 2.5],
    ]);
    // A duration back from now, with the step chosen for about 300 points.
    const back = await t.app.inject({ method: 'GET', url: '/api/v1/workers/test-worker/metrics?since=3h' });
    expect(back.statusCode).toBe(200);
    expect(back.json().step_seconds).toBe(36);
    expect(back.json().metrics.length).toBeGreaterThanOrEqual(4);
    // Without since or step: the newest raw samples, newest first, as before.
    const raw = (await t.app.inject({ method: 'GET', url: '/api/v1/workers/test-worker/metrics?limit=2' })).json();
    expect(raw.step_seconds).toBeUndefined();
    expect(raw.metrics).toHaveLength(2);
    expect(Date.parse(raw.metrics[0].timestamp)).toBeGreaterThanOrEqual(Date.parse(raw.metrics[1].timestamp));

    for (const [query, message] of [
      ['since=yesterday', /since: expected a duration/],
      ['since=1h&step=500ms', /step: expected a duration of at least 1s/],
      ['since=1h&until=2h', /must be before until/],
      ['since=30d&step=1s', /at most 10000/],
    ] as const) {
      const bad = await t.app.inject({ method: 'GET', url: `/api/v1/workers/test-worker/metrics?${query}` });
      expect(bad.statusCode, query).toBe(400);
      expect(bad.json().error.message, query).toMatch(message);
    }
    const missing = await t.app.inject({ method: 'GET', url: '/api/v1/workers/nope/metrics?since=1h' });
    expect(missing.statusCode).toBe(404);
  });
});
