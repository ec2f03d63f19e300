/**
 * `vm.exec` over the interactive exec WebSocket, against a real embedded system (process driver:
 * commands run on this host): live stdout/stderr, stdin, a command timeout that kills the whole
 * process tree, an abort, the SDK's own safety net, and `await using` deleting the VM even when
 * the block throws.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import {
  AbortError,
  type Aetherium,
  ApiError,
  ConflictError,
  NotFoundError,
  UnavailableError,
  ValidationError,
  Vm,
} from '../src/sdk/index.ts';
import { failure, type SdkTestSystem, startSdkSystem } from './harness/sdk-system.ts';

let t: SdkTestSystem;
let client: Aetherium;
let vm: Vm;

beforeAll(async () => {
  t = await startSdkSystem();
  client = t.client();
  vm = await client.vms.create({ name: 'sdk-exec' });
});

afterAll(async () => {
  await vm?.[Symbol.asyncDispose]();
  await t?.stop();
});

/** Host processes whose command line contains `needle` (the process driver runs commands on the host). */
function processesMatching(needle: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue; // gone meanwhile
    }
    if (cmdline.includes(needle)) found.push(Number(entry));
  }
  return found;
}

describe('vm.exec', () => {
  it('streams stdout and stderr to the callbacks as the command writes', async () => {
    const chunks: { stream: 'out' | 'err'; data: string; at: number }[] = [];
    const started = Date.now();
    let taskSeen: string | null = null;
    const result = await vm.exec('sh', {
      args: ['-c', 'for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.3; done; exit 7'],
      onStdout: (data) => chunks.push({ stream: 'out', data, at: Date.now() - started }),
      onStderr: (data) => chunks.push({ stream: 'err', data, at: Date.now() - started }),
      onStarted: (taskId) => (taskSeen = taskId),
    });
    expect(result).toMatchObject({
      exitCode: 7,
      timedOut: false,
      stdout: 'out1\nout2\nout3\n',
      stderr: 'err1\nerr2\nerr3\n',
    });
    expect(result.taskId).toBe(taskSeen);
    const out = chunks.filter((c) => c.stream === 'out');
    expect(out.map((c) => c.data).join('')).toBe(result.stdout);
    expect(
      chunks
        .filter((c) => c.stream === 'err')
        .map((c) => c.data)
        .join(''),
    ).toBe(result.stderr);
    // Live: the first line arrived well before the command ended (it sleeps 0.9 s in all).
    expect(out[0]!.at).toBeLessThan(result.durationMs - 400);
    // The run is a task like any other, with its result.
    const task = await client.tasks.get(result.taskId!);
    expect(task.type === 'vm:execute' && task.result?.exit_code).toBe(7);
  });

  it('passes args, env and cwd', async () => {
    const result = await vm.exec('sh', {
      args: ['-c', 'echo "$GREETING $1"; pwd', 'sh', 'world'],
      env: { GREETING: 'hello' },
      cwd: '/tmp',
    });
    expect(result.stdout).toBe('hello world\n/tmp\n');
  });

  it('feeds stdin: a string, bytes, an async iterable; then its end', async () => {
    expect((await vm.exec('cat', { stdin: 'from a string\n' })).stdout).toBe('from a string\n');
    expect((await vm.exec('cat', { stdin: Buffer.from('from bytes\n') })).stdout).toBe('from bytes\n');
    async function* lines() {
      for (let i = 0; i < 3; i++) {
        await new Promise((r) => setTimeout(r, 50));
        yield `line ${i}\n`;
      }
    }
    expect((await vm.exec('cat', { stdin: lines() })).stdout).toBe('line 0\nline 1\nline 2\n');
    const big = 'x'.repeat(300_000);
    expect((await vm.exec('wc', { args: ['-c'], stdin: big })).stdout.trim()).toBe('300000');
    // Without stdin the command reads an empty input instead of waiting forever.
    expect((await vm.exec('cat', { timeoutMs: 10_000 })).timedOut).toBe(false);
  });

  it('timeoutMs kills the command and everything it started; timedOut with what it printed', async () => {
    const result = await vm.exec('sh', {
      args: ['-c', 'sleep 3001 & sleep 3002 & echo started; wait'],
      timeoutMs: 1500,
    });
    expect(result.timedOut).toBe(true);
    expect(result.stdout).toContain('started');
    expect(result.exitCode).toBe(124);
    expect(result.durationMs).toBeGreaterThanOrEqual(1400);
    expect(result.durationMs).toBeLessThan(6000);
    await expect
      .poll(() => [...processesMatching('sleep 3001'), ...processesMatching('sleep 3002')], { timeout: 3000 })
      .toEqual([]);
  });

  it('an aborted signal cancels the command on its worker and rejects with an AbortError', async () => {
    const controller = new AbortController();
    let taskId: string | null = null;
    const running = vm.exec('sh', {
      args: ['-c', 'echo going; sleep 3003'],
      signal: controller.signal,
      onStdout: () => controller.abort(),
      onStarted: (id) => (taskId = id),
    });
    const err = await failure(running);
    expect(err).toBeInstanceOf(AbortError);
    expect(err).toMatchObject({ name: 'AbortError', code: 'aborted' });
    expect(taskId).not.toBeNull();
    const task = await client.tasks.wait(taskId!, { timeoutMs: 10_000 });
    expect(task.status).toBe('cancelled');
    await expect.poll(() => processesMatching('sleep 3003'), { timeout: 3000 }).toEqual([]);
    // An aborted signal given at the start never opens the stream.
    expect(await failure(vm.exec('true', { signal: AbortSignal.abort() }))).toBeInstanceOf(AbortError);
  });

  it('errors are typed: no such VM, a cwd that is not there, a stopped VM, a bad timeout', async () => {
    // A handle for a VM that does not exist: the stream refuses it (close 4404).
    const ghost = await failure(new Vm(client.vms, { ...vm.data, id: 'no-such-vm' }).exec('true'));
    expect(ghost).toBeInstanceOf(NotFoundError);
    const cwd = await failure(vm.exec('true', { cwd: '/no/such/dir' }));
    expect(cwd).toBeInstanceOf(ValidationError);
    expect(await failure(vm.exec('true', { timeoutMs: 0 }))).toBeInstanceOf(ValidationError);

    const other = await client.vms.create({ name: 'sdk-exec-stopped' });
    await other.stop();
    const stopped = await failure(other.exec('true'));
    expect(stopped).toBeInstanceOf(ConflictError);
    expect(stopped.status).toBe(409);
    await other.delete();
  });

  it('without an exit within timeoutMs + grace, the SDK cancels and resolves timedOut', async () => {
    // A stand-in for a worker that went silent: starts the command, then never says more.
    const silent = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((resolve) => silent.once('listening', resolve));
    const received: unknown[] = [];
    silent.on('connection', (socket) => {
      socket.on('message', (raw) => {
        const message = JSON.parse(String(raw)) as { type: string };
        received.push(message);
        if (message.type === 'start') {
          socket.send(JSON.stringify({ type: 'started', task_id: 'task-silent' }));
          socket.send(JSON.stringify({ type: 'stdout', data: 'partial\n' }));
        }
      });
    });
    try {
      const { port } = silent.address() as AddressInfo;
      const fake = t.client('ae_x', { apiUrl: `http://127.0.0.1:${port}` });
      const started = Date.now();
      const outcome = await new Vm(fake.vms, { ...vm.data, id: 'vm-x' }).exec('sleep', {
        args: ['100'],
        timeoutMs: 200,
        graceMs: 300,
      });
      expect(outcome).toMatchObject({ timedOut: true, exitCode: null, stdout: 'partial\n', taskId: 'task-silent' });
      expect(Date.now() - started).toBeGreaterThanOrEqual(450);
      await expect
        .poll(() => received.map((m) => (m as { type: string }).type))
        .toEqual(['start', 'stdin_end', 'cancel']);
      expect(received[0]).toMatchObject({ type: 'start', command: 'sleep', args: ['100'], timeout: 0.2 });
    } finally {
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('a lost connection rejects with an UnavailableError', async () => {
    const dropping = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((resolve) => dropping.once('listening', resolve));
    dropping.on('connection', (socket) => {
      socket.send(JSON.stringify({ type: 'started', task_id: 'task-dropped' }));
      setTimeout(() => socket.terminate(), 100);
    });
    try {
      const { port } = dropping.address() as AddressInfo;
      const fake = t.client('ae_x', { apiUrl: `http://127.0.0.1:${port}` });
      const err = await failure(new Vm(fake.vms, { ...vm.data, id: 'vm-x' }).exec('true'));
      expect(err).toBeInstanceOf(UnavailableError);
      expect(err.message).toMatch(/closed before the command ended/);
    } finally {
      await new Promise((resolve) => dropping.close(resolve));
    }
  });
});

describe('await using', () => {
  it('deletes the VM at the end of the scope, even when the block throws', async () => {
    let id = '';
    const block = async () => {
      await using scoped = await client.vms.create({ name: 'sdk-using' });
      id = scoped.id;
      expect((await scoped.exec('echo', { args: ['inside'] })).stdout).toBe('inside\n');
      throw new Error('the block failed');
    };
    await expect(block()).rejects.toThrow('the block failed');
    expect(id).not.toBe('');
    expect(await failure(client.vms.get(id))).toBeInstanceOf(NotFoundError);
    const all = await client.vms.list({ include_deleted: true, name: 'sdk-using' });
    expect(all.map((v) => [v.id, v.data.deleted_at instanceof Date])).toEqual([[id, true]]);
  });

  it('the explicit [Symbol.asyncDispose]() does the same, and twice is harmless', async () => {
    const scoped = await client.vms.create({ name: 'sdk-dispose' });
    await scoped[Symbol.asyncDispose]();
    await scoped[Symbol.asyncDispose]();
    expect(await failure(client.vms.get(scoped.id))).toBeInstanceOf(NotFoundError);
  });
});
