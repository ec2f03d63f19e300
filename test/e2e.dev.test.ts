/**
 * The embedded system end to end, as a user runs it: `aetherium dev` as a real process, the CLI as
 * real processes, the sandbox driver on bubblewrap, PGlite on disk, and a restart in the middle.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exited, freePort, runCli, startProcess, waitForHttp } from './harness/processes.ts';

let dataDir: string;
let port: number;
let api: string;
let dev: ReturnType<typeof startProcess> | null = null;

type Stats = { active_workers: number; healthy_workers: number };

async function startDevProcess(): Promise<number> {
  dev = startProcess(['dev', '--port', String(port), '--host', '127.0.0.1', '--data-dir', dataDir], {
    AETHERIUM_LOG__LEVEL: 'warn',
  });
  const current = dev;
  // The admin key is written before the API answers: read it once /health is up.
  await waitForHttp(
    `${api}/health`,
    () => true,
    60_000,
    () => current.output(),
  );
  const key = readFileSync(join(dataDir, 'admin.key'), 'utf8').trim();
  return waitForHttp<Stats>(
    `${api}/api/v1/cluster/stats`,
    (s) => s.active_workers === 1 && s.healthy_workers === 1,
    60_000,
    () => current.output(),
    { authorization: `Bearer ${key}` },
  );
}

async function stopDevProcess(): Promise<number | null> {
  if (!dev) return null;
  dev.child.kill('SIGTERM');
  const code = await exited(dev.child);
  dev = null;
  return code;
}

// The CLI finds the key `aetherium dev` wrote, as a user's would on the same machine.
const cli = (...args: string[]) => runCli(['--api', api, ...args], { AETHERIUM_KEY_FILE: join(dataDir, 'admin.key') });

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'aetherium-e2e-'));
  port = await freePort();
  api = `http://127.0.0.1:${port}`;
}, 10_000);

afterAll(async () => {
  await stopDevProcess().catch(() => undefined);
  rmSync(dataDir, { recursive: true, force: true });
});

describe('aetherium dev', () => {
  it('starts with one active, healthy worker running the sandbox driver', async () => {
    const ms = await startDevProcess();
    console.log(`dev mode answered with a healthy worker after ${ms} ms (fresh data directory)`);
    const workers = await cli('--json', 'workers', 'list');
    expect(workers.code).toBe(0);
    const [worker] = JSON.parse(workers.stdout).workers;
    expect(worker.capabilities).toContain('sandbox');
    expect(worker.is_healthy).toBe(true);
  }, 90_000);

  it('is closed to callers without a key, and the key file is for this user only', async () => {
    const anonymous = await fetch(`${api}/api/v1/vms`);
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
    expect((await fetch(`${api}/health`)).status).toBe(200);
    expect(statSync(join(dataDir, 'admin.key')).mode & 0o777).toBe(0o600);
    const without = await runCli(['--api', api, 'vm', 'list'], { AETHERIUM_KEY_FILE: join(dataDir, 'missing.key') });
    expect(without.code).toBe(4); // unauthorized (the CLI's exit codes: README, CLI)
    expect(without.stderr).toMatch(/Authorization: Bearer|aetherium tokens create/);
  });

  it('creates a VM, runs a command in it and deletes it through the CLI', async () => {
    const created = await cli('vm', 'create', '--name', 'demo');
    // stderr holds only the progress lines (not a terminal: one plain line per phase).
    for (const line of created.stderr.trim().split('\n')) expect(line).toMatch(/^VM demo: .+ \(\d+\.\ds\)$/);
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/VM demo \(.+\) running on worker .+ with driver sandbox/);

    const hello = await cli('vm', 'exec', 'demo', '--', 'echo', 'hello');
    expect(hello).toMatchObject({ code: 0, stdout: 'hello\n' });

    const failing = await cli('vm', 'exec', 'demo', '--', 'sh', '-c', 'exit 7');
    expect(failing.code).toBe(7);

    const vm = JSON.parse((await cli('--json', 'vm', 'get', 'demo')).stdout);
    expect(vm.worker_id).toEqual(expect.any(String));
    const before = JSON.parse((await cli('--json', 'workers', 'get', vm.worker_id)).stdout);
    expect(before.vm_count).toBe(1);

    // The worker's log lines, from the process's buffer: the create and the execs are there.
    const logs = await cli('--json', 'workers', 'logs', vm.worker_id, '--limit', '500');
    expect(logs.code).toBe(0);
    const lines = logs.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string; type?: string });
    expect(lines.filter((l) => l.msg === 'task finished').map((l) => l.type)).toEqual(
      expect.arrayContaining(['vm:create', 'vm:execute']),
    );
    const text = await cli('workers', 'logs', vm.worker_id);
    expect(text.stdout).toMatch(/INFO {2}task finished .*type="vm:execute"/);

    const deleted = await cli('vm', 'delete', 'demo');
    expect(deleted.code).toBe(0);
    const after = JSON.parse((await cli('--json', 'workers', 'get', vm.worker_id)).stdout);
    expect(after.vm_count).toBe(0);
    const gone = await cli('vm', 'get', 'demo');
    expect(gone.code).toBe(3);
    expect(gone.stderr).toMatch(/VM "demo" was not found/);
  }, 60_000);

  it('prints clear errors for bad input and an unreachable server', async () => {
    const bad = await cli('vm', 'create', '--name', 'Not_Valid');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/error: invalid body: name: a VM name is/);
    const unreachable = await runCli(['--api', 'http://127.0.0.1:1', 'cluster', 'stats']);
    expect(unreachable.code).toBe(7);
    expect(unreachable.stderr).toMatch(/cannot reach the control plane/);
  }, 30_000);

  it('keeps VMs and tasks across a restart, and the running VM still works', async () => {
    expect((await cli('vm', 'create', '--name', 'keeper')).code).toBe(0);
    expect((await cli('vm', 'exec', 'keeper', '--', 'sh', '-c', 'echo kept > /tmp/mark')).code).toBe(0);
    const tasksBefore = JSON.parse((await cli('--json', 'tasks', 'list')).stdout)
      .tasks.map((t: { id: string }) => t.id)
      .sort();

    expect(await stopDevProcess()).toBe(0);
    const ms = await startDevProcess();
    console.log(`dev mode answered after a restart in ${ms} ms`);

    const tasksAfter = JSON.parse((await cli('--json', 'tasks', 'list')).stdout)
      .tasks.map((t: { id: string }) => t.id)
      .sort();
    expect(tasksAfter).toEqual(expect.arrayContaining(tasksBefore));
    const all = JSON.parse((await cli('--json', 'vm', 'list', '--all')).stdout).vms.map(
      (v: { name: string }) => v.name,
    );
    expect(all).toEqual(expect.arrayContaining(['demo', 'keeper']));

    const keeper = JSON.parse((await cli('--json', 'vm', 'get', 'keeper')).stdout);
    expect(keeper.status).toBe('running');
    const mark = await cli('vm', 'exec', 'keeper', '--', 'cat', '/tmp/mark');
    expect(mark).toMatchObject({ code: 0, stdout: 'kept\n' });
    expect((await cli('vm', 'delete', 'keeper')).code).toBe(0);
  }, 120_000);
});
