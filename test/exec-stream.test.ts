/** The interactive exec WebSocket on the embedded system, with the sandbox driver. */
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestSystem, type TestSystem } from './harness/dev-system.ts';

let t: TestSystem;
let base: string;
let vmId: string;

beforeAll(async () => {
  t = await startTestSystem({ worker: { drivers: { enabled: ['sandbox'], allow_process: false } } });
  base = (await t.app.listen({ port: 0, host: '127.0.0.1' })).replace('http', 'ws');
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/v1/vms?wait=true',
    payload: { name: 'interactive', driver: 'sandbox' },
  });
  vmId = JSON.parse(res.body).vm.id;
}, 120_000);

afterAll(async () => {
  await t?.app.inject({ method: 'DELETE', url: `/api/v1/vms/${vmId}?wait=true` });
  await t?.stop();
});

interface Session {
  messages: Record<string, any>[];
  closed: Promise<number>;
  ws: WebSocket;
}

function open(path: string): Promise<Session> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base}/api/v1${path}`, { headers: { authorization: `Bearer ${t.adminKey}` } });
    const messages: Record<string, any>[] = [];
    ws.on('message', (raw) => messages.push(JSON.parse(String(raw))));
    const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
    ws.once('open', () => resolve({ messages, closed, ws }));
    ws.once('error', reject);
  });
}

const until = async (check: () => boolean, ms = 10_000) => {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('exec stream', () => {
  it('carries stdin to the command and its stdout and stderr back, then the exit code', async () => {
    const s = await open(`/vms/${vmId}/exec/stream`);
    s.ws.send(
      JSON.stringify({
        type: 'start',
        command: 'sh',
        args: ['-c', 'while read line; do echo "got $line"; echo "err $line" >&2; done; exit 3'],
      }),
    );
    s.ws.send(JSON.stringify({ type: 'stdin', data: 'one\n' }));
    await until(() => s.messages.some((m) => m.type === 'stdout' && m.data.includes('got one')));
    // Output arrives while the command still runs: it has not seen the end of its input yet.
    expect(s.messages.some((m) => m.type === 'exit')).toBe(false);
    s.ws.send(JSON.stringify({ type: 'stdin', data: 'two\n' }));
    s.ws.send(JSON.stringify({ type: 'stdin_end' }));
    expect(await s.closed).toBe(1000);
    expect(s.messages[0]).toMatchObject({ type: 'started', task_id: expect.any(String) });
    const stdout = s.messages
      .filter((m) => m.type === 'stdout')
      .map((m) => m.data)
      .join('');
    const stderr = s.messages
      .filter((m) => m.type === 'stderr')
      .map((m) => m.data)
      .join('');
    expect(stdout).toBe('got one\ngot two\n');
    expect(stderr).toBe('err one\nerr two\n');
    expect(s.messages.at(-1)).toMatchObject({ type: 'exit', exit_code: 3, timed_out: false });
    // The run is recorded like any other.
    const task = JSON.parse(
      (await t.app.inject({ method: 'GET', url: `/api/v1/tasks/${s.messages[0]!.task_id}` })).body,
    );
    expect(task).toMatchObject({ type: 'vm:execute', status: 'completed', result: { exit_code: 3 } });
  }, 30_000);

  it('stops the command when the client goes away', async () => {
    const marker = `600.${process.pid}${Date.now() % 1000}`;
    const s = await open(`/vms/${vmId}/exec/stream`);
    s.ws.send(JSON.stringify({ type: 'start', command: 'sleep', args: [marker] }));
    const onHost = () =>
      readdirSync('/proc')
        .filter((p) => /^\d+$/.test(p))
        .some((p) => {
          try {
            return readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').includes(marker);
          } catch {
            return false;
          }
        });
    await until(onHost);
    s.ws.terminate();
    await until(() => !onHost(), 2000);
    const taskId = s.messages[0]!.task_id;
    let task: { status: string } = { status: '' };
    for (let i = 0; i < 50 && task.status !== 'cancelled'; i++) {
      task = JSON.parse((await t.app.inject({ method: 'GET', url: `/api/v1/tasks/${taskId}` })).body);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(task.status).toBe('cancelled');
  }, 30_000);

  it('refuses a bad first message, an unknown VM and a stopped VM with clear close codes', async () => {
    const bad = await open(`/vms/${vmId}/exec/stream`);
    bad.ws.send(JSON.stringify({ type: 'start', command: '' }));
    expect(await bad.closed).toBe(4400);
    expect(bad.messages[0]).toMatchObject({ type: 'error', code: 'validation_failed' });

    const ghost = await open('/vms/ghost/exec/stream');
    ghost.ws.send(JSON.stringify({ type: 'start', command: 'true' }));
    expect(await ghost.closed).toBe(4404);
    expect(ghost.messages[0]).toMatchObject({ type: 'error', code: 'not_found' });

    const garbage = await open(`/vms/${vmId}/exec/stream`);
    garbage.ws.send('not json');
    expect(await garbage.closed).toBe(4400);
  }, 30_000);
});
