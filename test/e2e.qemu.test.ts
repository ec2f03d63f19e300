/**
 * The qemu driver through the whole system, as a user runs it: `aetherium dev`, the CLI, real
 * microVMs (KVM when usable, software emulation otherwise), and a worker killed with SIGKILL while
 * two of them run.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exited, freePort, runCli, startProcess, waitForHttp } from './harness/processes.ts';

let dataDir: string;
let api: string;
let port: number;
let dev: ReturnType<typeof startProcess> | null = null;

async function startDev(): Promise<void> {
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
  await waitForHttp<{ healthy_workers: number }>(
    `${api}/api/v1/cluster/stats`,
    (s) => s.healthy_workers === 1,
    60_000,
    () => current.output(),
    { authorization: `Bearer ${key}` },
  );
}

// The CLI finds the key `aetherium dev` wrote, as a user's would on the same machine.
const cli = (...args: string[]) =>
  runCli(['--api', api, ...args], { AETHERIUM_KEY_FILE: join(dataDir, 'admin.key') }, 180_000);

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'aetherium-qemu-e2e-'));
  port = await freePort();
  api = `http://127.0.0.1:${port}`;
  await startDev();
}, 120_000);

afterAll(async () => {
  await cli('vm', 'delete', 'q1').catch(() => undefined);
  await cli('vm', 'delete', 'q2').catch(() => undefined);
  dev?.child.kill('SIGTERM');
  if (dev) await exited(dev.child).catch(() => undefined);
  rmSync(dataDir, { recursive: true, force: true });
}, 120_000);

describe('qemu microVMs end to end', () => {
  it('runs the guest kernel: uname in the VM is not the host', async () => {
    const workers = JSON.parse((await cli('--json', 'workers', 'list')).stdout).workers;
    expect(workers[0].capabilities).toContain('qemu');
    const created = await Promise.all([
      cli('vm', 'create', '--name', 'q1', '--driver', 'qemu'),
      cli('vm', 'create', '--name', 'q2', '--driver', 'qemu'),
    ]);
    for (const c of created) expect(c.stdout + c.stderr).toMatch(/running on worker .+ with driver qemu/);
    const uname = await cli('vm', 'exec', 'q1', '--', 'uname', '-a');
    expect(uname.code).toBe(0);
    const hostKernel = execFileSync('uname', ['-r']).toString().trim();
    const guestKernel = uname.stdout.split(' ')[2];
    console.log(`guest: ${uname.stdout.trim()} | host kernel ${hostKernel}`);
    expect(guestKernel).toBeTruthy();
    expect(guestKernel).not.toBe(hostKernel);
  }, 240_000);

  it('after SIGKILL of the worker, both VMs are reattached and exec still works', async () => {
    dev!.child.kill('SIGKILL');
    await exited(dev!.child);
    await startDev();
    for (const name of ['q1', 'q2']) {
      const vm = JSON.parse((await cli('--json', 'vm', 'get', name)).stdout);
      expect(vm.status).toBe('running');
      const echo = await cli('vm', 'exec', name, '--', 'echo', `back-${name}`);
      expect(echo).toMatchObject({ code: 0, stdout: `back-${name}\n` });
    }
    for (const name of ['q1', 'q2']) expect((await cli('vm', 'delete', name)).code).toBe(0);
  }, 240_000);
});
