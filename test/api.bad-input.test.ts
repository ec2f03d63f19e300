/**
 * The API fuzzed as an attacker would: input that used to reach the database or the driver and came
 * back as a 5xx, or in Fastify's own error format. Each case is now a 4xx in
 * `{ error: { code, message } }` (or a correct result), on HTTP and on the exec WebSocket, and the
 * server stays healthy afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { EVENT_SCHEMAS } from '../src/domain/index.ts';
import { startTestSystem, type TestSystem } from './harness/dev-system.ts';

/** These tests are about input, not credentials: every caller is the local admin. */
const NO_AUTH = { auth: { enabled: false } };

let t: TestSystem;
let base: string;
let vmId: string;

beforeAll(async () => {
  t = await startTestSystem({ api_gateway: NO_AUTH });
  base = (await t.app.listen({ port: 0, host: '127.0.0.1' })).replace('http', 'ws');
  const res = await t.app.inject({ method: 'POST', url: '/api/v1/vms?wait=true', payload: { name: 'fuzz' } });
  vmId = (JSON.parse(res.body) as { vm: { id: string } }).vm.id;
}, 120_000);

afterAll(async () => {
  await t?.app.inject({ method: 'DELETE', url: `/api/v1/vms/${vmId}?wait=true` });
  await t?.stop();
});

type Method = 'GET' | 'POST' | 'DELETE';

interface ErrorBody {
  error?: { code?: string; message?: string; details?: unknown };
}

interface ExecAnswer {
  task_id: string;
  execution_id: string;
  exit_code: number;
  stdout: string;
  stderr: string;
  stdout_base64?: string;
  stderr_base64?: string;
  timed_out: boolean;
}

interface Answer {
  status: number;
  headers: Record<string, unknown>;
  body: unknown;
  raw: string;
}

async function call(system: TestSystem, method: Method, url: string, payload?: object | string): Promise<Answer> {
  const response = await system.app.inject({
    method,
    url,
    ...(payload === undefined
      ? {}
      : typeof payload === 'string'
        ? { payload, headers: { 'content-type': 'application/json' } }
        : { payload }),
  });
  let body: unknown = null;
  try {
    body = response.body ? JSON.parse(response.body) : null;
  } catch {
    body = response.body;
  }
  return { status: response.statusCode, headers: response.headers, body, raw: response.body };
}

const api = (method: Method, url: string, payload?: object | string) => call(t, method, url, payload);

/** Exactly our shape: `{ error: { code, message } }` (and `details` for schema errors), nothing of Fastify's. */
function expectError(res: Answer, status: number, code: string, mentions?: RegExp): string {
  expect(res.status, res.raw).toBe(status);
  const body = res.body as ErrorBody;
  expect(Object.keys(body)).toEqual(['error']);
  expect(body.error?.code).toBe(code);
  const message = body.error?.message;
  expect(typeof message).toBe('string');
  expect(message!.length).toBeGreaterThan(5);
  // Nothing the engines say leaks out, and a refused string is never echoed raw.
  expect(message).not.toMatch(/FST_ERR|invalid byte sequence|unsupported Unicode|22P05|22021/);
  expect(message).not.toContain('\0');
  if (mentions) expect(message).toMatch(mentions);
  return message!;
}

async function expectHealthy(system: TestSystem = t): Promise<void> {
  const health = await call(system, 'GET', '/health');
  expect(health.status).toBe(200);
}

const exec = (payload: object | string) => api('POST', `/api/v1/vms/${vmId}/exec`, payload);

describe('NUL and unpaired surrogates are refused at the edge (400 validation_failed, naming the field)', () => {
  const cases: [string, Method, () => string, (object | string)?, RegExp?][] = [
    ['a NUL in a VM id', 'GET', () => '/api/v1/vms/%00', undefined, /params: id: .*NUL/],
    ['a NUL inside a VM id, on executions', 'GET', () => '/api/v1/vms/a%00b/executions', undefined, /params: id/],
    ['a NUL in a VM id, on delete', 'DELETE', () => '/api/v1/vms/x%00', undefined, /params: id/],
    ['a NUL in a task id', 'GET', () => '/api/v1/tasks/%00', undefined, /params: id/],
    ['a NUL in a task id, on cancel', 'POST', () => '/api/v1/tasks/%00/cancel', undefined, /params: id/],
    ['a NUL in a worker id', 'GET', () => '/api/v1/workers/w%00/metrics', undefined, /params: id/],
    ['a NUL in a query value', 'GET', () => '/api/v1/vms?name=%00', undefined, /querystring: name: .*NUL/],
    ['a NUL in a task filter', 'GET', () => '/api/v1/tasks?worker_id=w%00', undefined, /querystring: worker_id/],
    ['a NUL in a query key', 'GET', () => '/api/v1/workers?%00=1', undefined, /querystring: .*\(a key\)/],
    ['a NUL in a worker filter', 'GET', () => '/api/v1/workers?zone=z%00', undefined, /querystring: zone/],
    ['a NUL in the image', 'POST', () => '/api/v1/vms', { image: 'img\u0000' }, /body: image: .*NUL/],
    [
      'a lone surrogate in a label',
      'POST',
      () => '/api/v1/vms',
      { labels: { team: '\ud800' } },
      /labels\.team: .*D800/,
    ],
    ['a lone low surrogate in the zone', 'POST', () => '/api/v1/vms', '{"zone":"\\udfff"}', /body: zone: .*DFFF/],
    [
      'a NUL in a label key',
      'POST',
      () => '/api/v1/vms',
      { labels: { 'a\u0000': 'x' } },
      /labels\["a\\u0000"\] \(a key\)/,
    ],
    [
      'a NUL deep in a plan',
      'POST',
      () => '/api/v1/schedule/plan',
      { worker_labels: { tier: { in: ['gpu', 'x\u0000'] } } },
      /worker_labels\.tier\.in\.1/,
    ],
    ['a NUL in the command', 'POST', () => `/api/v1/vms/${vmId}/exec`, { command: 'echo\u0000' }, /body: command/],
    [
      'a NUL in an argument',
      'POST',
      () => `/api/v1/vms/${vmId}/exec`,
      { command: 'echo', args: ['a\u0000b'] },
      /args\.0/,
    ],
    [
      'a lone surrogate at the end of an argument',
      'POST',
      () => `/api/v1/vms/${vmId}/exec`,
      { command: 'echo', args: ['ok', 'x\ud83d'] },
      /args\.1: .*D83D/,
    ],
    [
      'a NUL in an env value',
      'POST',
      () => `/api/v1/vms/${vmId}/exec`,
      { command: 'env', env: { X: '\u0000' } },
      /env\.X/,
    ],
    ['a NUL in the cwd', 'POST', () => `/api/v1/vms/${vmId}/exec`, { command: 'pwd', cwd: '/tmp\u0000' }, /body: cwd/],
    ['a NUL in a drain message', 'POST', () => '/api/v1/workers/ghost/drain', { message: 'bye\u0000' }, /message/],
  ];

  it.each(cases)('%s', async (_name, method, url, payload, mentions) => {
    expectError(await api(method, url(), payload), 400, 'validation_failed', mentions);
    await expectHealthy();
  });

  it('a deeply nested body is checked without exhausting the stack', async () => {
    const deep = `{"image":${'['.repeat(100_000)}"\\u0000"${']'.repeat(100_000)}}`;
    const res = await api('POST', '/api/v1/vms', deep);
    expect(res.status).toBe(400);
    expect((res.body as ErrorBody).error?.code).toMatch(/validation_failed|bad_request/);
    await expectHealthy();
  });

  it('well-formed Unicode, surrogate pairs included, still passes', async () => {
    const res = await exec({ command: 'echo', args: ['héllo 😀'] });
    expect(res.status).toBe(200);
    expect((res.body as ExecAnswer).stdout).toBe('héllo 😀\n');
  });
});

describe('the router refuses bad paths in our shape', () => {
  it.each([
    ['/api/v1/vms/%ff'],
    ['/api/v1/vms/%zz'],
    ['/api/v1/vms/%ED%A0%80'],
    ['/api/v1/tasks/%E0%A4'],
    ['/api/v1/vms/%ff/exec'],
  ])('bad percent-encoding: %s is 400 bad_request', async (url) => {
    expectError(await api(url.endsWith('exec') ? 'POST' : 'GET', url), 400, 'bad_request', /%-escape/);
    await expectHealthy();
  });

  it('an id over 100 characters is 400 validation_failed; 100 is looked up', async () => {
    for (const url of [
      `/api/v1/vms/${'a'.repeat(101)}`,
      `/api/v1/tasks/${'t'.repeat(129)}`,
      `/api/v1/workers/${'w'.repeat(300)}/vms`,
    ]) {
      expectError(await api('GET', url), 400, 'validation_failed', /at most 100/);
    }
    expectError(await api('GET', `/api/v1/vms/${'a'.repeat(100)}`), 404, 'not_found');
    expectError(await api('GET', `/api/v1/vms?worker_id=${'w'.repeat(101)}`), 400, 'validation_failed', /worker_id/);
    await expectHealthy();
  });

  it('OpenAPI says 100 too', async () => {
    const doc = (await api('GET', '/api/docs/json')).body as {
      paths: Record<
        string,
        Record<string, { parameters?: { name: string; in: string; schema: { maxLength?: number } }[] }>
      >;
    };
    for (const [path, method] of [
      ['/api/v1/vms/{id}', 'get'],
      ['/api/v1/tasks/{id}', 'get'],
      ['/api/v1/workers/{id}', 'get'],
    ] as const) {
      const id = doc.paths[path]?.[method]?.parameters?.find((p) => p.in === 'path' && p.name === 'id');
      expect(id?.schema.maxLength, path).toBe(100);
    }
  });
});

describe('exec: a user mistake is a 400, not a driver failure', () => {
  it('a cwd that does not exist in the VM is 400 validation_failed', async () => {
    expectError(await exec({ command: 'pwd', cwd: '/definitely/not/here' }), 400, 'validation_failed', /cwd/);
    expectError(await exec({ command: 'pwd', cwd: 'not/here/either' }), 400, 'validation_failed', /cwd/);
    await expectHealthy();
  });

  it('a timeout under 1 ms is 400; 1 ms and 1.5 ms run', async () => {
    expectError(await exec({ command: 'true', timeout: 0.0001 }), 400, 'validation_failed', /timeout/);
    expectError(await exec({ command: 'true', timeout: 0 }), 400, 'validation_failed', /timeout/);
    for (const timeout of [0.001, 0.0015]) {
      const res = await exec({ command: 'sleep', args: ['5'], timeout });
      expect(res.status).toBe(200);
      expect(res.body as ExecAnswer).toMatchObject({ timed_out: true, exit_code: 124 });
    }
    await expectHealthy();
  });

  it('an environment over its limits is 400, naming the variable', async () => {
    const mb = 'x'.repeat(1_000_000);
    expectError(await exec({ command: 'true', env: { BIG: mb } }), 400, 'validation_failed', /env\.BIG/);
    // Each variable within the 128 KiB limit, together over 256 KiB.
    const many = Object.fromEntries(Array.from({ length: 4 }, (_, i) => [`V${i}`, 'y'.repeat(100_000)]));
    expectError(await exec({ command: 'true', env: many }), 400, 'validation_failed', /env: the environment/);
    // Multi-byte characters count as the kernel counts them: bytes.
    expectError(
      await exec({ command: 'true', env: { WIDE: 'é'.repeat(70_000) } }),
      400,
      'validation_failed',
      /env\.WIDE/,
    );
    expectError(await exec({ command: 'true', args: ['z'.repeat(131_072)] }), 400, 'validation_failed', /args\.0/);
    // Just under the limits, it runs.
    const fits = await exec({
      command: 'sh',
      args: ['-c', 'printf %s "$BIG" | wc -c'],
      env: { BIG: 'q'.repeat(131_067) },
    });
    expect(fits.status).toBe(200);
    expect((fits.body as ExecAnswer).stdout.trim()).toBe('131067');
    await expectHealthy();
  });
});

describe('binary output is kept exactly', () => {
  const BINARY = "printf 'a\\000b\\377'; printf '\\000' >&2";

  it('a NUL byte and invalid UTF-8: a preview in stdout, the exact bytes in stdout_base64', async () => {
    const res = await exec({ command: 'sh', args: ['-c', BINARY] });
    expect(res.status, res.raw).toBe(200);
    const answer = res.body as ExecAnswer;
    expect(answer).toMatchObject({
      exit_code: 0,
      stdout: 'a\uFFFDb\uFFFD',
      stdout_base64: Buffer.from([0x61, 0, 0x62, 0xff]).toString('base64'),
      stderr: '\uFFFD',
      stderr_base64: Buffer.from([0]).toString('base64'),
    });

    const task = (await api('GET', `/api/v1/tasks/${answer.task_id}`)).body as { status: string; result: ExecAnswer };
    expect(task.status).toBe('completed');
    expect(task.result).toMatchObject({
      stdout: answer.stdout,
      stdout_base64: answer.stdout_base64,
      stderr_base64: answer.stderr_base64,
    });

    const { executions } = (await api('GET', `/api/v1/vms/${vmId}/executions`)).body as {
      executions: (ExecAnswer & { id: string })[];
    };
    const record = executions.find((e) => e.id === answer.execution_id);
    expect(record).toMatchObject({
      exit_code: 0,
      stdout: answer.stdout,
      stdout_base64: answer.stdout_base64,
      stderr: answer.stderr,
      stderr_base64: answer.stderr_base64,
    });

    // The task.completed event carries the sizes of the exact bytes, and still matches its strict schema.
    const replay = await t.system.engines.events.replay(0, 10_000);
    const completed = ('events' in replay ? replay.events : []).find(
      (e) => e.type === 'task.completed' && e.data.task_id === answer.task_id,
    );
    expect(completed).toBeDefined();
    const data = EVENT_SCHEMAS['task.completed'].strict().parse(completed?.data);
    expect(data.result).toMatchObject({ stdout_bytes: 4, stderr_bytes: 1 });
    expect(data.result).not.toHaveProperty('stdout_base64');
    await expectHealthy();
  });

  it('text stays text, with no base64 field; even text that looks like the stored form', async () => {
    const plain = (await exec({ command: 'printf', args: ['héllo\n'] })).body as ExecAnswer;
    expect(plain.stdout).toBe('héllo\n');
    expect(plain).not.toHaveProperty('stdout_base64');
    expect(plain).not.toHaveProperty('stderr_base64');

    const tricky = '\uFFFFaetherium:base64:AAAA\nnot really';
    const res = (await exec({ command: 'printf', args: ['%s', tricky] })).body as ExecAnswer;
    expect(res.stdout).toBe(tricky);
    expect(res).not.toHaveProperty('stdout_base64');
    const { executions } = (await api('GET', `/api/v1/vms/${vmId}/executions`)).body as {
      executions: (ExecAnswer & { id: string })[];
    };
    const record = executions.find((e) => e.id === res.execution_id);
    expect(record?.stdout).toBe(tricky);
    expect(record).not.toHaveProperty('stdout_base64');
    const bin = executions.find((e) => e.stdout_base64 !== undefined);
    expect(bin?.stdout).not.toMatch(/^\uFFFF/);
  });
});

describe('exec while the VM is stopping is 409 conflict', () => {
  const setStatus = (status: 'running' | 'stopping') => t.system.engines.store.updateVm(vmId, { status });

  it('when the API sees it stopping', async () => {
    await setStatus('stopping');
    try {
      expectError(await exec({ command: 'true' }), 409, 'conflict', /stopping/);
    } finally {
      await setStatus('running');
    }
    await expectHealthy();
  });

  it('when only the worker finds it stopping (a stop that won the race)', async () => {
    let taskId: string | undefined;
    await raceWithStop(async () => {
      const res = await exec({ command: 'true' });
      expectError(res, 409, 'conflict', /stopping/);
      taskId = ((res.body as ErrorBody).error?.details as { task_id?: string } | undefined)?.task_id;
    });
    // The task's error keeps the code the answer came from.
    const task = (await api('GET', `/api/v1/tasks/${taskId}`)).body as { status: string; error: string };
    expect(task).toMatchObject({ status: 'failed', error: expect.stringMatching(/^conflict: VM fuzz is stopping/) });
    await expectHealthy();
  });
});

/**
 * The VM is `stopping` in the database while the API's one look at it sees it `running`: the
 * request passes the API's check and the worker that claims the task finds the VM stopping.
 */
async function raceWithStop(body: () => Promise<void>): Promise<void> {
  const store = t.system.engines.store;
  const findVm = store.findVm;
  await store.updateVm(vmId, { status: 'stopping' });
  store.findVm = async (idOrName) => {
    store.findVm = findVm;
    const vm = await findVm.call(store, idOrName);
    return vm && { ...vm, status: 'running' };
  };
  try {
    await body();
  } finally {
    store.findVm = findVm;
    await store.updateVm(vmId, { status: 'running' });
  }
}

interface WsMessage {
  type: string;
  code?: string;
  message?: string;
  data?: string;
  exit_code?: number;
  task_id?: string;
}

interface Session {
  messages: WsMessage[];
  closed: Promise<{ code: number; reason: string }>;
  ws: WebSocket;
}

function open(path: string): Promise<Session> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base}/api/v1${path}`);
    const messages: WsMessage[] = [];
    ws.on('message', (raw) => messages.push(JSON.parse(String(raw)) as WsMessage));
    const closed = new Promise<{ code: number; reason: string }>((r) =>
      ws.on('close', (code, reason) => r({ code, reason: String(reason) })),
    );
    ws.once('open', () => resolve({ messages, closed, ws }));
    ws.once('error', reject);
  });
}

/** Sends a start message and waits for the socket to close. */
async function startAndClose(start: object | string) {
  const s = await open(`/vms/${vmId}/exec/stream`);
  s.ws.send(typeof start === 'string' ? start : JSON.stringify({ type: 'start', ...start }));
  const closed = await s.closed;
  return { ...closed, messages: s.messages };
}

function expectWsError(
  session: { code: number; messages: WsMessage[] },
  close: number,
  code: string,
  mentions?: RegExp,
): void {
  const error = session.messages.find((m) => m.type === 'error');
  expect(error, JSON.stringify(session.messages)).toMatchObject({ type: 'error', code });
  expect(typeof error?.message).toBe('string');
  expect(error?.message).not.toMatch(/invalid byte sequence|unsupported Unicode|22P05|22021/);
  if (mentions) expect(error?.message).toMatch(mentions);
  expect(session.code).toBe(close);
}

describe('the exec WebSocket answers the same cases with our codes and 44xx', () => {
  it.each([
    ['a NUL in an argument', { command: 'echo', args: ['a\u0000'] }, /args\.0: .*NUL/],
    ['a lone surrogate in env', { command: 'env', env: { X: '\udc00' } }, /env\.X: .*DC00/],
    ['a NUL in the cwd', { command: 'pwd', cwd: '\u0000' }, /cwd/],
    ['a timeout under 1 ms', { command: 'true', timeout: 0.0001 }, /timeout/],
    ['a 1 MB env value', { command: 'true', env: { BIG: 'x'.repeat(1_000_000) } }, /env\.BIG/],
    ['a cwd that does not exist', { command: 'pwd', cwd: '/definitely/not/here' }, /cwd/],
  ])('%s: 4400 validation_failed', async (_name, start, mentions) => {
    expectWsError(await startAndClose(start), 4400, 'validation_failed', mentions);
    await expectHealthy();
  });

  it('a raw lone surrogate in the JSON: 4400', async () => {
    expectWsError(
      await startAndClose('{"type":"start","command":"echo","args":["\\ud800"]}'),
      4400,
      'validation_failed',
    );
  });

  it('binary output: the exit arrives and the task holds the exact bytes', async () => {
    const s = await open(`/vms/${vmId}/exec/stream`);
    s.ws.send(JSON.stringify({ type: 'start', command: 'sh', args: ['-c', "printf 'a\\000b\\377'"] }));
    const closed = await s.closed;
    expect(closed.code, JSON.stringify(s.messages)).toBe(1000);
    expect(s.messages.at(-1)).toMatchObject({ type: 'exit', exit_code: 0 });
    const taskId = s.messages.find((m) => m.type === 'started')?.task_id;
    const task = (await api('GET', `/api/v1/tasks/${taskId}`)).body as { result: ExecAnswer };
    expect(task.result.stdout_base64).toBe(Buffer.from([0x61, 0, 0x62, 0xff]).toString('base64'));
  });

  it('a VM that is stopping: 4409 conflict, from the API or from the worker', async () => {
    await t.system.engines.store.updateVm(vmId, { status: 'stopping' });
    try {
      expectWsError(await startAndClose({ command: 'true' }), 4409, 'conflict', /stopping/);
    } finally {
      await t.system.engines.store.updateVm(vmId, { status: 'running' });
    }
    await raceWithStop(async () => {
      expectWsError(await startAndClose({ command: 'true' }), 4409, 'conflict', /stopping/);
    });
    await expectHealthy();
  });

  it('a bad id is refused at the handshake with an HTTP 400 in our shape', async () => {
    for (const [path, code] of [
      ['/vms/%00/exec/stream', 'validation_failed'],
      ['/vms/%ff/exec/stream', 'bad_request'],
      [`/vms/${'a'.repeat(101)}/exec/stream`, 'validation_failed'],
    ]) {
      const refused = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const ws = new WebSocket(`${base}/api/v1${path}`);
        ws.once('unexpected-response', (request, response) => {
          let body = '';
          response.on('data', (d: Buffer) => (body += d));
          response.on('end', () => {
            request.destroy();
            resolve({ status: response.statusCode ?? 0, body });
          });
        });
        ws.once('open', () => reject(new Error(`${path} was upgraded`)));
        ws.once('error', () => undefined);
      });
      expect(refused.status).toBe(400);
      expect((JSON.parse(refused.body) as ErrorBody).error?.code).toBe(code);
    }
    await expectHealthy();
  });
});

describe('rate limits', () => {
  let limited: TestSystem;

  beforeAll(async () => {
    limited = await startTestSystem({
      api_gateway: { ...NO_AUTH, rate_limit: { enabled: true, max: 3, window: '1m' } },
    });
  }, 120_000);

  afterAll(async () => {
    await limited?.stop();
  });

  it('the 429 body is exactly { error: { code, message } }, with Retry-After', async () => {
    for (let i = 0; i < 3; i++) expect((await call(limited, 'GET', '/api/v1/vms')).status).toBe(200);
    const res = await call(limited, 'GET', '/api/v1/vms');
    expect(res.status).toBe(429);
    expect(res.body).toEqual({ error: { code: 'rate_limited', message: expect.any(String) } });
    expect((res.body as ErrorBody).error?.message).toMatch(/rate limit of 3 requests/);
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    // Health is never rate limited.
    await expectHealthy(limited);
  });
});
