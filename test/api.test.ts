/**
 * Every API route, through inject(), on the embedded system: the happy path, bad input (4xx with
 * `{ error: { code, message } }`, never 500) and unknown ids (404).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestSystem, type TestSystem } from './harness/dev-system.ts';

let t: TestSystem;

beforeAll(async () => {
  t = await startTestSystem();
}, 120_000);

afterAll(async () => {
  await t?.stop();
});

async function call(method: string, url: string, payload?: unknown) {
  const response = await t.app.inject({
    method: method as 'GET',
    url,
    ...(payload === undefined
      ? {}
      : typeof payload === 'string'
        ? { payload, headers: { 'content-type': 'application/json' } }
        : { payload: payload as object }),
  });
  return { status: response.statusCode, body: response.body ? JSON.parse(response.body) : null };
}

function expectError(
  res: { status: number; body: { error?: { code: string; message: string } } },
  status: number,
  code: string,
) {
  expect(res.status).toBe(status);
  expect(res.body.error?.code).toBe(code);
  expect(typeof res.body.error?.message).toBe('string');
  expect(res.body.error!.message.length).toBeGreaterThan(5);
}

describe('health and docs', () => {
  it('GET /health reports every engine', async () => {
    const res = await call('GET', '/health');
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('ok');
    expect(Object.keys(res.body.engines).sort()).toEqual(['events', 'queue', 'registry', 'store']);
    expect(res.body.engines.store).toMatchObject({ kind: 'pglite', ok: true });
    // The test system runs the unisolated process driver, and health must say so.
    expect(res.body.warnings.join(' ')).toMatch(/NO isolation/);
  });

  it('serves OpenAPI with the v1 routes', async () => {
    const res = await call('GET', '/api/docs/json');
    expect(res.status).toBe(200);
    expect(Object.keys(res.body.paths)).toEqual(
      expect.arrayContaining([
        '/api/v1/vms',
        '/api/v1/vms/{id}/exec',
        '/api/v1/workers/{id}/drain',
        '/api/v1/cluster/stats',
        '/api/v1/tasks/{id}',
        '/api/v1/schedule/plan',
      ]),
    );
  });

  it('answers unknown routes with a JSON 404', async () => {
    expectError(await call('GET', '/api/v1/nope'), 404, 'not_found');
  });
});

describe('workers and cluster', () => {
  it('lists the local worker with the seed fields', async () => {
    const res = await call('GET', '/api/v1/workers');
    expect(res.status).toBe(200);
    expect(res.body.total).toBe(1);
    const worker = res.body.workers[0];
    expect(worker).toMatchObject({
      id: 'test-worker',
      zone: 'test-zone',
      status: 'active',
      is_healthy: true,
      max_vms: 10,
      cpu_cores: 8,
    });
    for (const field of [
      'cpu_usage_percent',
      'memory_usage_percent',
      'uptime',
      'hostname',
      'address',
      'capabilities',
      'labels',
      'last_seen',
      'started_at',
    ])
      expect(worker).toHaveProperty(field);
    expect(worker.capabilities).toContain('process');
  });

  it('filters by zone and status, and rejects a bad status', async () => {
    expect((await call('GET', '/api/v1/workers?zone=test-zone')).body.total).toBe(1);
    expect((await call('GET', '/api/v1/workers?zone=elsewhere')).body.total).toBe(0);
    expect((await call('GET', '/api/v1/workers?status=offline')).body.total).toBe(0);
    expectError(await call('GET', '/api/v1/workers?status=sleeping'), 400, 'validation_failed');
    expectError(await call('GET', '/api/v1/workers?colour=red'), 400, 'validation_failed');
  });

  it('gets one worker, its VMs and metrics; unknown ids are 404', async () => {
    expect((await call('GET', '/api/v1/workers/test-worker')).body.id).toBe('test-worker');
    expect((await call('GET', '/api/v1/workers/test-worker/vms')).status).toBe(200);
    await t.system.agent.recordMetrics();
    const metrics = await call('GET', '/api/v1/workers/test-worker/metrics?limit=5');
    expect(metrics.status).toBe(200);
    expect(metrics.body.metrics.length).toBeGreaterThanOrEqual(1);
    expect(metrics.body.metrics[0]).toHaveProperty('cpu_usage');
    expectError(await call('GET', '/api/v1/workers/ghost'), 404, 'not_found');
    expectError(await call('GET', '/api/v1/workers/ghost/vms'), 404, 'not_found');
    expectError(await call('GET', '/api/v1/workers/ghost/metrics'), 404, 'not_found');
    expectError(await call('POST', '/api/v1/workers/ghost/drain', {}), 404, 'not_found');
    expectError(await call('POST', '/api/v1/workers/ghost/activate'), 404, 'not_found');
    expectError(
      await call('POST', '/api/v1/workers/test-worker/drain', { deadline_seconds: 'soon' }),
      400,
      'validation_failed',
    );
  });

  it('reports cluster stats with one active, healthy worker', async () => {
    const res = await call('GET', '/api/v1/cluster/stats');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      total_workers: 1,
      active_workers: 1,
      healthy_workers: 1,
      total_cpu_cores: 8,
      max_vms: 10,
      zones: { 'test-zone': 1 },
    });
    expect(res.body.available_vm_slots).toBe(10 - res.body.total_vms);
  });
});

describe('scheduler dry run', () => {
  it('says where a VM would go, without reserving anything', async () => {
    const before = (await call('GET', '/api/v1/workers/test-worker')).body;
    const res = await call('POST', '/api/v1/schedule/plan', { vcpus: 2, memory_mb: 512, zone: 'test-zone' });
    expect(res.status).toBe(200);
    expect(res.body.placement).toMatchObject({ worker_id: 'test-worker', driver: 'process' });
    expect(res.body.explanation).toMatchObject({ feasible: 1, evaluated: 1, workers: 1 });
    expect((await call('GET', '/api/v1/workers/test-worker')).body.used_cpu_cores).toBe(before.used_cpu_cores);
  });

  it('explains why nothing fits', async () => {
    const res = await call('POST', '/api/v1/schedule/plan', {
      vcpus: 1,
      worker_labels: { gpu: { in: ['a100', 'h100'] } },
    });
    expect(res.body.placement).toBeNull();
    expect(res.body.explanation).toMatchObject({
      rejected: { 'label mismatch': 1 },
      reason: 'no feasible worker: 1 × label mismatch',
    });
    const big = await call('POST', '/api/v1/schedule/plan', { vcpus: 64 });
    expect(big.body.explanation.reason).toBe('insufficient capacity: 1 × insufficient cpu');
  });

  it('validates the request', async () => {
    expectError(await call('POST', '/api/v1/schedule/plan', { vcpus: -1 }), 400, 'validation_failed');
    expectError(await call('POST', '/api/v1/schedule/plan', { name: 'x' }), 400, 'validation_failed');
    expectError(await call('POST', '/api/v1/schedule/plan', { strategy: 'random' }), 400, 'validation_failed');
  });
});

describe('VMs and tasks', () => {
  let vmId: string;
  let createTaskId: string;

  it('rejects bad create requests with 400 and a reason', async () => {
    expectError(await call('POST', '/api/v1/vms', { vcpus: 0 }), 400, 'validation_failed');
    expectError(await call('POST', '/api/v1/vms', { vcpus: 'two' }), 400, 'validation_failed');
    expectError(await call('POST', '/api/v1/vms', { name: 'Bad_Name' }), 400, 'validation_failed');
    expectError(await call('POST', '/api/v1/vms', { name: 'ok', colour: 'red' }), 400, 'validation_failed');
    expectError(await call('POST', '/api/v1/vms', { driver: 'vmware' }), 400, 'validation_failed');
    expectError(await call('POST', '/api/v1/vms', '{"name": '), 400, 'bad_request');
    const named = await call('POST', '/api/v1/vms', { memory_mb: 1 });
    expect(named.body.error.message).toMatch(/memory_mb/);
  });

  it('creates a VM, waits for it and shows its worker', async () => {
    const res = await call('POST', '/api/v1/vms?wait=true&timeout=60', { name: 'api-vm', vcpus: 2, memory_mb: 512 });
    expect(res.status).toBe(201);
    expect(res.body.vm).toMatchObject({
      name: 'api-vm',
      status: 'running',
      worker_id: 'test-worker',
      driver: 'process',
      vcpus: 2,
    });
    vmId = res.body.vm.id;
    createTaskId = res.body.task_id;
    const worker = (await call('GET', '/api/v1/workers/test-worker')).body;
    expect(worker).toMatchObject({ vm_count: 1, used_cpu_cores: 2, used_memory_mb: 512 });
  });

  it('refuses a second live VM with the same name', async () => {
    expectError(await call('POST', '/api/v1/vms', { name: 'api-vm' }), 409, 'conflict');
  });

  it('gets VMs by id and by name, lists and filters them', async () => {
    expect((await call('GET', `/api/v1/vms/${vmId}`)).body.name).toBe('api-vm');
    expect((await call('GET', '/api/v1/vms/api-vm')).body.id).toBe(vmId);
    expectError(await call('GET', '/api/v1/vms/nope'), 404, 'not_found');
    const list = await call('GET', '/api/v1/vms?status=running');
    expect(list.body.vms.map((v: { id: string }) => v.id)).toContain(vmId);
    expect((await call('GET', '/api/v1/vms?worker_id=elsewhere')).body.total).toBe(0);
    expectError(await call('GET', '/api/v1/vms?status=exploded'), 400, 'validation_failed');
    expectError(await call('GET', '/api/v1/vms?limit=0'), 400, 'validation_failed');
  });

  it('returns the create task by the id the API gave', async () => {
    const task = await call('GET', `/api/v1/tasks/${createTaskId}`);
    expect(task.status).toBe(200);
    expect(task.body).toMatchObject({
      id: createTaskId,
      type: 'vm:create',
      status: 'completed',
      vm_id: vmId,
      worker_id: 'test-worker',
    });
    expect(task.body.placement.chosen.worker_id).toBe('test-worker');
  });

  it('executes commands: output, exit codes, env, args, timeout', async () => {
    const hello = await call('POST', '/api/v1/vms/api-vm/exec', { command: 'echo', args: ['hello'] });
    expect(hello.status).toBe(200);
    expect(hello.body).toMatchObject({ exit_code: 0, stdout: 'hello\n' });
    const failing = await call('POST', `/api/v1/vms/${vmId}/exec`, {
      command: 'sh',
      args: ['-c', 'echo oops >&2; exit 3'],
    });
    expect(failing.body).toMatchObject({ exit_code: 3, stderr: 'oops\n' });
    const env = await call('POST', `/api/v1/vms/${vmId}/exec`, {
      command: 'sh',
      args: ['-c', 'echo $GREETING'],
      env: { GREETING: 'hi there' },
    });
    expect(env.body.stdout).toBe('hi there\n');
    const slow = await call('POST', `/api/v1/vms/${vmId}/exec`, { command: 'sleep', args: ['30'], timeout: 0.5 });
    expect(slow.body.timed_out).toBe(true);
    expect(slow.body.exit_code).not.toBe(0);
  });

  it('rejects bad exec requests', async () => {
    expectError(await call('POST', `/api/v1/vms/${vmId}/exec`, { command: '' }), 400, 'validation_failed');
    expectError(await call('POST', `/api/v1/vms/${vmId}/exec`, { args: ['x'] }), 400, 'validation_failed');
    expectError(
      await call('POST', `/api/v1/vms/${vmId}/exec`, { command: 'ls', env: { 'BAD-NAME': 'x' } }),
      400,
      'validation_failed',
    );
    expectError(
      await call('POST', `/api/v1/vms/${vmId}/exec`, { command: 'ls', timeout: -1 }),
      400,
      'validation_failed',
    );
    expectError(await call('POST', '/api/v1/vms/nope/exec', { command: 'ls' }), 404, 'not_found');
  });

  it('records every execution', async () => {
    const res = await call('GET', `/api/v1/vms/${vmId}/executions`);
    expect(res.status).toBe(200);
    expect(res.body.total).toBe(4);
    const codes = res.body.executions.map((e: { exit_code: number; timed_out: boolean }) => [e.exit_code, e.timed_out]);
    expect(codes).toEqual(
      expect.arrayContaining([
        [0, false],
        [3, false],
        [124, true],
      ]),
    );
    expect(codes.filter(([code]: [number]) => code === 0)).toHaveLength(2);
    expectError(await call('GET', '/api/v1/vms/nope/executions'), 404, 'not_found');
  });

  it('stops and starts a VM; exec on a stopped VM is a conflict', async () => {
    const stopped = await call('POST', `/api/v1/vms/${vmId}/stop?wait=true`);
    expect(stopped.body.status).toBe('completed');
    expect((await call('GET', `/api/v1/vms/${vmId}`)).body.status).toBe('stopped');
    expectError(await call('POST', `/api/v1/vms/${vmId}/exec`, { command: 'echo' }), 409, 'conflict');
    const started = await call('POST', `/api/v1/vms/${vmId}/start?wait=true`);
    expect(started.body.status).toBe('completed');
    expect((await call('POST', `/api/v1/vms/${vmId}/exec`, { command: 'echo', args: ['back'] })).body.stdout).toBe(
      'back\n',
    );
    expectError(await call('POST', '/api/v1/vms/nope/start'), 404, 'not_found');
    expectError(await call('POST', '/api/v1/vms/nope/stop'), 404, 'not_found');
  });

  it('lists tasks with filters and rejects bad filters', async () => {
    const creates = await call('GET', `/api/v1/tasks?type=vm:create&vm_id=${vmId}`);
    expect(creates.body.tasks.map((task: { id: string }) => task.id)).toEqual([createTaskId]);
    const execs = await call('GET', `/api/v1/tasks?type=vm:execute&worker_id=test-worker&status=completed`);
    expect(execs.body.total).toBeGreaterThanOrEqual(5);
    expectError(await call('GET', '/api/v1/tasks?type=vm:explode'), 400, 'validation_failed');
    expectError(await call('GET', '/api/v1/tasks/00000000-0000-0000-0000-000000000000'), 404, 'not_found');
    expectError(await call('GET', '/api/v1/tasks/not-a-uuid'), 404, 'not_found');
  });

  it('keeps a VM that fits nowhere pending, with the reason', async () => {
    const res = await call('POST', '/api/v1/vms', { name: 'too-big', vcpus: 64 });
    expect(res.status).toBe(202);
    let vm = res.body.vm;
    for (let i = 0; i < 50 && !vm.pending_reason?.includes('insufficient'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      vm = (await call('GET', '/api/v1/vms/too-big')).body;
    }
    expect(vm.status).toBe('created');
    expect(vm.pending_reason).toMatch(/insufficient capacity: 1 × insufficient cpu/);
    const deleted = await call('DELETE', '/api/v1/vms/too-big');
    expect(deleted.status).toBe(200);
    const create = await call('GET', `/api/v1/tasks?vm_id=${vm.id}&type=vm:create`);
    expect(create.body.tasks[0].status).toBe('cancelled');
  });

  it('drains and activates the worker: no placement while draining', async () => {
    const drained = await call('POST', '/api/v1/workers/test-worker/drain', { message: 'maintenance' });
    expect(drained.body).toMatchObject({ worker_id: 'test-worker', status: 'draining', worker: { eligible: false } });
    expect(drained.body.message).toMatch(/draining: it takes no new VMs/);
    const res = await call('POST', '/api/v1/vms?wait=true&timeout=1', { name: 'while-draining' });
    expect(res.body.vm.worker_id).toBeNull();
    expect(res.body.pending_reason ?? (await call('GET', '/api/v1/vms/while-draining')).body.pending_reason).toMatch(
      /draining|waiting/,
    );
    const active = await call('POST', '/api/v1/workers/test-worker/activate');
    expect(active.body).toMatchObject({ worker_id: 'test-worker', status: 'active', worker: { eligible: true } });
    let vm = res.body.vm;
    for (let i = 0; i < 100 && vm.status !== 'running'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      vm = (await call('GET', '/api/v1/vms/while-draining')).body;
    }
    expect(vm).toMatchObject({ status: 'running', worker_id: 'test-worker' });
  });

  it('validates drain, eligibility and cancel requests', async () => {
    expectError(
      await call('POST', '/api/v1/workers/test-worker/drain', { force: true, no_deadline: true }),
      400,
      'validation_failed',
    );
    expectError(
      await call('POST', '/api/v1/workers/test-worker/drain', { deadline_seconds: -5 }),
      400,
      'validation_failed',
    );
    expectError(
      await call('POST', '/api/v1/workers/test-worker/eligibility', { eligible: 'yes' }),
      400,
      'validation_failed',
    );
    expectError(await call('POST', '/api/v1/workers/test-worker/eligibility', {}), 400, 'validation_failed');
    expectError(await call('POST', '/api/v1/workers/ghost/eligibility', { eligible: false }), 404, 'not_found');
    expectError(await call('POST', '/api/v1/tasks/00000000-0000-0000-0000-000000000000/cancel'), 404, 'not_found');
    const done = (await call('GET', '/api/v1/tasks?status=completed&limit=1')).body.tasks[0];
    expectError(await call('POST', `/api/v1/tasks/${done.id}/cancel`), 409, 'conflict');
    const off = await call('POST', '/api/v1/workers/test-worker/eligibility', { eligible: false });
    expect(off.body).toMatchObject({ status: 'active', worker: { eligible: false } });
    expect(
      (await call('POST', '/api/v1/workers/test-worker/eligibility', { eligible: true })).body.worker.eligible,
    ).toBe(true);
  });

  it('accounts every VM in the distribution', async () => {
    const res = await call('GET', '/api/v1/cluster/distribution');
    expect(res.status).toBe(200);
    expect(res.body.total_vms).toBe(2);
    expect(res.body.distribution[0].vms.map((v: { name: string }) => v.name).sort()).toEqual([
      'api-vm',
      'while-draining',
    ]);
  });

  it('deletes VMs and frees their capacity', async () => {
    for (const name of ['api-vm', 'while-draining']) {
      const res = await call('DELETE', `/api/v1/vms/${name}?wait=true`);
      expect(res.status).toBe(200);
      expect(res.body.status).toBe('completed');
      expectError(await call('GET', `/api/v1/vms/${name}`), 404, 'not_found');
    }
    const worker = (await call('GET', '/api/v1/workers/test-worker')).body;
    expect(worker).toMatchObject({ vm_count: 0, used_cpu_cores: 0, used_memory_mb: 0, used_disk_gb: 0 });
    const all = await call('GET', '/api/v1/vms?include_deleted=true');
    expect(all.body.vms.map((v: { name: string }) => v.name)).toEqual(
      expect.arrayContaining(['api-vm', 'while-draining']),
    );
    expectError(await call('DELETE', '/api/v1/vms/api-vm'), 404, 'not_found');
  });
});
