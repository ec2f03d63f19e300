/**
 * A VM that dies by itself is noticed: its driver sees its init (or VMM) exit, the worker reports
 * it, and within seconds the API says `failed` with the reason, `vm.state_changed` announces it,
 * exec answers 409 instead of 502, and its capacity stays reserved until it is deleted.
 * On the embedded system with real drivers: a bubblewrap sandbox whose init is killed from inside,
 * and a process VM killed from outside.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ClusterEvent } from '../src/domain/index.ts';
import { startTestSystem, type TestSystem } from './harness/dev-system.ts';
import { eventuallyPasses } from './harness/eventually.ts';

let t: TestSystem | undefined;

afterEach(async () => {
  await t?.stop();
  t = undefined;
});

async function call(method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) {
  const res = await t!.app.inject({ method, url: `/api/v1${url}`, ...(payload ? { payload } : {}) });
  return { status: res.statusCode, body: JSON.parse(res.body) };
}

async function diesAndIsNoticed(
  driver: 'sandbox' | 'process',
  kill: (vm: { id: string; name: string }) => Promise<void>,
) {
  t = await startTestSystem({ worker: { drivers: { enabled: [driver], allow_process: true } } });
  const seen: ClusterEvent[] = [];
  const unsubscribe = t.system.engines.events.subscribe((event) => seen.push(event));
  try {
    const made = await call('POST', '/vms?wait=true', { name: 'mortal', driver, vcpus: 2, memory_mb: 256 });
    expect(made.status).toBe(201);
    const vm = made.body.vm as { id: string; name: string };
    expect((await call('GET', '/workers/test-worker')).body).toMatchObject({ vm_count: 1, used_cpu_cores: 2 });

    const killedAt = Date.now();
    await kill(vm);
    await eventuallyPasses(
      async () => {
        const now = (await call('GET', `/vms/${vm.id}`)).body;
        expect(now.status).toBe('failed');
        expect(now.error).toMatch(/exited|signal|killed/i);
      },
      10_000,
      100,
    );
    const noticedMs = Date.now() - killedAt;
    expect(noticedMs).toBeLessThan(10_000);
    const changed = seen.filter((e) => e.type === 'vm.state_changed' && (e.data as { vm_id: string }).vm_id === vm.id);
    expect(changed.at(-1)?.data).toMatchObject({ from: 'running', to: 'failed' });

    // Not a 502 from a dead guest: a clear 409 saying what happened.
    const exec = await call('POST', `/vms/${vm.id}/exec`, { command: 'true' });
    expect(exec.status).toBe(409);
    expect(exec.body.error.message).toMatch(/failed/);
    // Reserved until deleted: its files are still on the host.
    expect((await call('GET', '/workers/test-worker')).body).toMatchObject({ vm_count: 1, used_cpu_cores: 2 });

    const deleted = await call('DELETE', `/vms/${vm.id}?wait=true`);
    expect(deleted.status).toBe(200);
    expect((await call('GET', '/workers/test-worker')).body).toMatchObject({ vm_count: 0, used_cpu_cores: 0 });
    // Announced once.
    expect(changed.filter((e) => (e.data as { to: string }).to === 'failed')).toHaveLength(1);
  } finally {
    unsubscribe();
  }
}

describe('a VM that dies by itself', () => {
  it('sandbox: init killed from inside is failed with the reason within seconds, capacity kept until deleted', async () => {
    await diesAndIsNoticed('sandbox', async (vm) => {
      // The VM's init is pid 2 of its pid namespace (pid 1 is bwrap's, which ignores signals from
      // inside); the exec may die with it.
      await call('POST', `/vms/${vm.id}/exec`, { command: 'sh', args: ['-c', 'kill -9 2'] });
    });
  }, 60_000);

  it('process: the VM process killed from outside is failed with the reason', async () => {
    await diesAndIsNoticed('process', async (vm) => {
      const info = await t!.system.agent.drivers.get('process')!.status(vm.id);
      expect(info.pid).toBeGreaterThan(0);
      process.kill(info.pid!, 'SIGKILL');
    });
  }, 60_000);
});
