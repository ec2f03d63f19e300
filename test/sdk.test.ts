/**
 * The SDK against a real embedded system on a loopback port, authentication on: every route of the
 * contract (src/contract/routes.ts) through the SDK with its typed, decoded result (a coverage list
 * checks that none is left out), and each typed error produced by a real answer of the server.
 */
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it, vi } from 'vitest';
import { ROUTES, type RouteName } from '../src/contract/routes.ts';
import { LogBuffer } from '../src/runtime/log-buffer.ts';
import {
  type Aetherium,
  AbortError,
  type ApiError,
  type ClusterEvent,
  ConflictError,
  type CreateProgress,
  ForbiddenError,
  NotFoundError,
  RateLimitError,
  TaskCancelledError,
  TimeoutError,
  UnauthorizedError,
  UnavailableError,
  ValidationError,
  type Vm,
} from '../src/sdk/index.ts';
import { NodeTransport as Transport } from '../src/sdk/node-transport.ts';
import { failure, type SdkTestSystem, startSdkSystem } from './harness/sdk-system.ts';

const WORKER = 'test-worker';
const CA_FINGERPRINT = `sha256:${'ab'.repeat(32)}`;

let t: SdkTestSystem;
let admin: Aetherium;
let viewer: Aetherium;
let operator: Aetherium;
const logs = new LogBuffer();
const cleanup: (() => void)[] = [];

// Which routes the SDK called: every request goes through Transport (REST) or opens a socket (WebSocket).
const called = new Set<RouteName>();
const routeMatchers = (Object.entries(ROUTES) as [RouteName, (typeof ROUTES)[RouteName]][])
  .map(([name, spec]) => ({
    name,
    method: spec.method,
    literal: !spec.path.includes(':'),
    pattern: new RegExp(`^/api/v1${spec.path.replace(/:[A-Za-z_]+/g, '[^/]+')}$`),
  }))
  // Literal paths first: `/tokens/join` is not `/tokens/:id`.
  .sort((a, b) => Number(b.literal) - Number(a.literal));
function record(method: string, path: string) {
  const pathname = path.split('?')[0]!;
  const match = routeMatchers.find((r) => r.method === method && r.pattern.test(pathname));
  if (match) called.add(match.name);
}
const originalUrl = Transport.prototype.url;
vi.spyOn(Transport.prototype, 'url').mockImplementation(function (this: Transport, path: string, protocol?: 'ws') {
  const url = originalUrl.call(this, path, protocol);
  if (protocol === 'ws') record('GET', url.pathname);
  return url;
});
const originalSend = Transport.prototype.send;
vi.spyOn(Transport.prototype, 'send').mockImplementation(function (this: Transport, req) {
  record(req.method, `/api/v1${req.path}`);
  return originalSend.call(this, req);
});
const originalLines = Transport.prototype.lines;
vi.spyOn(Transport.prototype, 'lines').mockImplementation(function (this: Transport, req, onLine) {
  record(req.method, `/api/v1${req.path}`);
  return originalLines.call(this, req, onLine);
});

const logLine = (msg: string) => logs.write(`${JSON.stringify({ time: Date.now(), level: 30, msg })}\n`);

beforeAll(async () => {
  logLine('worker log line one');
  t = await startSdkSystem({}, { agentCaFingerprint: CA_FINGERPRINT, logs });
  admin = t.client();
  viewer = t.client((await admin.tokens.create({ name: 'sdk-viewer', role: 'viewer' })).token);
  operator = t.client((await admin.tokens.create({ name: 'sdk-operator', role: 'operator' })).token);
});

afterAll(async () => {
  for (const fn of cleanup) fn();
  await t?.stop();
});

describe('every route, typed', () => {
  let vm: Vm;
  let createTaskId: string;

  it('health: each engine and the warnings, times decoded', async () => {
    const report = await admin.health();
    expect(['ok', 'degraded']).toContain(report.status);
    expect(report.mode).toBe('dev');
    expect(Object.keys(report.engines)).toEqual(expect.arrayContaining(['store', 'queue']));
    expect(report.warnings.join(' ')).toMatch(/isolation/i);
  });

  it('whoami: each key is itself, with its role; auth is on', async () => {
    const me = await viewer.whoami();
    expect(me).toMatchObject({ kind: 'key', name: 'sdk-viewer', role: 'viewer', auth_enabled: true });
    expect((await operator.whoami()).role).toBe('operator');
    const anonymous = await t
      .client('ae_not_a_key')
      .whoami()
      .catch((err: unknown) => err);
    expect(anonymous).toBeInstanceOf(UnauthorizedError);
  });

  it('authConfig and oidcToken: how to sign in, before any token; no OIDC provider here', async () => {
    // The sign-in page's own calls, made without a token (test/ui.oidc.test.ts: with a provider).
    const anonymous = t.client(null);
    expect(await anonymous.call('authConfig', {})).toEqual({ auth_enabled: true, oidc: null });
    const refused = await anonymous
      .call('oidcToken', {
        body: { code: 'c', code_verifier: 'v'.repeat(43), redirect_uri: 'http://localhost/auth/callback' },
      })
      .catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(NotFoundError);
    expect((refused as NotFoundError).message).toMatch(/OIDC sign-in is not configured/);
  });

  it('createVm waits until the VM runs and reports its phases', async () => {
    const progress: CreateProgress[] = [];
    vm = await operator.vms.create(
      { name: 'sdk-alpha', vcpus: 1, memory_mb: 128, labels: { app: 'sdk' } },
      { onProgress: (p) => progress.push(p) },
    );
    expect(vm.status).toBe('running');
    expect(vm.name).toBe('sdk-alpha');
    expect(vm.workerId).toBe(WORKER);
    expect(vm.driver).toBe('process');
    expect(vm.data.labels).toEqual({ app: 'sdk' });
    expect(vm.data.created_at).toBeInstanceOf(Date);
    expect(vm.data.deleted_at).toBeNull();
    const phases = progress.map((p) => p.phase);
    expect(phases[0]).toBe('queued');
    expect(phases.at(-1)).toBe('running');
    // Each phase once, in order, however often the poll saw it.
    const order = ['queued', 'pending', 'placed', 'booting', 'running'];
    expect(new Set(phases).size).toBe(phases.length);
    expect([...phases].sort((a, b) => order.indexOf(a) - order.indexOf(b))).toEqual(phases);
    for (let i = 1; i < progress.length; i++)
      expect(progress[i]!.elapsedMs).toBeGreaterThanOrEqual(progress[i - 1]!.elapsedMs);
    const last = progress.at(-1)!;
    expect(last.phase === 'running' && last.workerId).toBe(WORKER);
    createTaskId = last.taskId;
  });

  it('createVm with an Idempotency-Key answers the same VM for the same key', async () => {
    const key = `sdk-test-${Date.now()}`;
    const first = await admin.vms.create({ name: 'sdk-idem' }, { idempotencyKey: key, waitUntil: 'created' });
    expect(first.status).toBe('created');
    const again = await admin.vms.create({ name: 'sdk-idem' }, { idempotencyKey: key, waitUntil: 'running' });
    expect(again.id).toBe(first.id);
    expect(again.status).toBe('running');
    const raw = await admin.request('createVm', {
      body: { name: 'sdk-idem' },
      headers: { 'idempotency-key': key },
    });
    expect([200, 201, 202]).toContain(raw.status);
    expect(raw.data.vm.id).toBe(first.id);
    expect(raw.headers['idempotent-replayed']).toBe('true');
    await again.delete();
  });

  it('getVm by name and by id; listVms with filters', async () => {
    const byName = await viewer.vms.get('sdk-alpha');
    expect(byName.id).toBe(vm.id);
    expect(byName.pendingReason).toBeNull();
    expect((await viewer.vms.get(vm.id)).name).toBe('sdk-alpha');
    const running = await viewer.vms.list({ status: 'running', worker_id: WORKER, limit: 50 });
    expect(running.map((v) => v.id)).toContain(vm.id);
    expect(running.every((v) => v.status === 'running')).toBe(true);
    expect(await viewer.vms.list({ name: 'no-such-name', include_deleted: true })).toEqual([]);
  });

  it('execVm (REST) and execStream (WebSocket) run commands; listExecutions has them', async () => {
    const answer = await vm.run('sh', { args: ['-c', 'echo rest; echo oops >&2; exit 4'], timeoutMs: 10_000 });
    expect('exit_code' in answer && answer.exit_code).toBe(4);
    if (!('exit_code' in answer)) throw new Error('expected the command to finish');
    expect(answer.stdout).toBe('rest\n');
    expect(answer.stderr).toBe('oops\n');
    expect(answer.timed_out).toBe(false);

    const streamed: string[] = [];
    const result = await vm.exec('sh', { args: ['-c', 'echo stream'], onStdout: (d) => streamed.push(d) });
    expect(result).toMatchObject({ exitCode: 0, stdout: 'stream\n', timedOut: false });
    expect(streamed.join('')).toBe('stream\n');

    const executions = await vm.executions();
    expect(executions.map((e) => e.task_id)).toEqual(expect.arrayContaining([answer.task_id, result.taskId]));
    expect(executions[0]!.started_at).toBeInstanceOf(Date);
  });

  it('stopVm and startVm wait for their task by default', async () => {
    const stopped = await vm.stop();
    expect(stopped).toMatchObject({ status: 'completed', vm_id: vm.id, error: null });
    expect(vm.status).toBe('stopped');
    const started = await vm.start();
    expect(started.status).toBe('completed');
    expect(vm.status).toBe('running');
    const noWait = await vm.stop({ wait: false });
    expect(['pending', 'scheduled', 'running', 'completed']).toContain(noWait.status);
    const done = await admin.tasks.wait(noWait.task_id, { timeoutMs: 20_000 });
    expect(done.status).toBe('completed');
    await vm.start();
  });

  it('listTasks and getTask: the create with its placement', async () => {
    const tasks = await viewer.tasks.list({ vm_id: vm.id, type: 'vm:create' });
    expect(tasks.map((x) => x.id)).toEqual([createTaskId]);
    const task = await viewer.tasks.get(createTaskId);
    expect(task.status).toBe('completed');
    expect(task.created_at).toBeInstanceOf(Date);
    if (task.type !== 'vm:create') throw new Error(`expected a create, got ${task.type}`);
    expect(task.placement?.chosen?.worker_id).toBe(WORKER);
    expect(task.result?.vm_id).toBe(vm.id);
  });

  it('cancelTask: a completed task is a ConflictError; a waiting one is cancelled', async () => {
    const err = await failure(operator.tasks.cancel(createTaskId));
    expect(err).toBeInstanceOf(ConflictError);
    expect(err).toMatchObject({ status: 409, code: 'conflict' });

    const big = await operator.vms.create({ name: 'sdk-too-big', vcpus: 64 }, { waitUntil: 'created' });
    const [pending] = await operator.tasks.list({ vm_id: big.id });
    const cancelled = await operator.tasks.cancel(pending!.id, { wait: true });
    expect(cancelled).toMatchObject({ task_id: pending!.id, status: 'cancelled', outcome: 'cancelled' });
    expect((await operator.tasks.cancel(pending!.id)).outcome).toBe('already');
    await big.delete().catch(() => undefined);
  });

  it('workers: list, get, vms, metrics', async () => {
    const workers = await viewer.workers.list({ status: 'active' });
    expect(workers.map((w) => w.id)).toEqual([WORKER]);
    const worker = await viewer.workers.get(WORKER);
    expect(worker.last_seen).toBeInstanceOf(Date);
    expect(worker.capabilities).toContain('process');
    const onIt = await viewer.workers.vms(WORKER);
    expect(onIt.worker_id).toBe(WORKER);
    expect(onIt.vms.map((v) => v.id)).toContain(vm.id);
    expect(onIt.total).toBe(onIt.vms.length);
    const metrics = await viewer.workers.metrics(WORKER, { limit: 5 });
    expect(metrics.total).toBe(metrics.metrics.length);
    for (const sample of metrics.metrics) expect(sample.timestamp).toBeInstanceOf(Date);
  });

  it('workerLogs: recent lines, and followed as NDJSON', async () => {
    const recent = await operator.workers.logs(WORKER, { limit: 10 });
    expect(recent.worker_id).toBe(WORKER);
    expect(recent.lines.map((l) => l.msg)).toContain('worker log line one');

    const follow = operator.workers.followLogs(WORKER, { limit: 1 });
    const seen: unknown[] = [];
    setTimeout(() => logLine('worker log line two'), 300);
    for await (const line of follow) {
      seen.push(line.msg);
      if (line.msg === 'worker log line two') break;
    }
    expect(seen).toEqual(['worker log line one', 'worker log line two']);
    await follow.done;
  });

  it('cluster stats and distribution; schedule plan', async () => {
    const stats = await viewer.cluster.stats();
    expect(stats.total_workers).toBe(1);
    expect(stats.total_vms).toBeGreaterThanOrEqual(1);
    const distribution = await viewer.cluster.distribution();
    expect(distribution.total_workers).toBe(1);
    expect(distribution.distribution[0]!.vms.map((v) => v.id)).toContain(vm.id);
    expect(distribution.total_vms).toBe(distribution.distribution[0]!.vms.length);

    const fits = await viewer.schedule.plan({ vcpus: 1, memory_mb: 128 });
    expect(fits.placement?.worker_id).toBe(WORKER);
    const none = await viewer.schedule.plan({ vcpus: 64 });
    expect(none.placement).toBeNull();
    expect(none.explanation.rejected['insufficient cpu']).toBe(1);
  });

  it('events: a subscription sees the VM events of a create', async () => {
    const events: ClusterEvent[] = [];
    const opened = new Promise<void>((resolve) => {
      const sub = viewer.events.subscribe({ topics: ['vm'] }, (e) => void events.push(e), { onOpen: () => resolve() });
      cleanup.push(() => sub.close());
    });
    await opened;
    const beta = await operator.vms.create({ name: 'sdk-beta' });
    await beta.delete();
    await expect
      .poll(() => events.filter((e) => 'vm_id' in e.data && e.data.vm_id === beta.id).map((e) => e.type))
      .toEqual(expect.arrayContaining(['vm.created', 'vm.deleted']));
  });

  it('tokens: API keys and join tokens; bootstrap refuses once keys exist', async () => {
    const created = await admin.tokens.create({ name: 'sdk-ci', role: 'operator', expires: '1d' });
    expect(created.token).toMatch(/^ae_/);
    expect(created.expires_at).toBeInstanceOf(Date);
    const keys = await admin.tokens.list();
    expect(keys.map((k) => k.name)).toEqual(expect.arrayContaining(['sdk-ci', 'sdk-viewer', 'sdk-operator']));
    expect(keys.some((k) => 'token' in k)).toBe(false);
    const revoked = await admin.tokens.revoke('sdk-ci');
    expect(revoked.revoked_at).toBeInstanceOf(Date);
    expect((await admin.tokens.list({ include_revoked: true })).map((k) => k.name)).toContain('sdk-ci');

    const join = await admin.tokens.createJoin({ description: 'rack 7', max_uses: 2, ttl: '1h' });
    expect(join.ca_fingerprint).toBe(CA_FINGERPRINT);
    expect(join.token).toMatch(/^aetherium-join\./);
    const joins = await admin.tokens.listJoin();
    expect(joins.find((j) => j.id === join.id)).toMatchObject({ description: 'rack 7', max_uses: 2, state: 'active' });
    const gone = await admin.tokens.revokeJoin(join.id);
    expect(gone.state).toBe('revoked');

    const err = await failure(admin.tokens.bootstrap());
    expect(err).toBeInstanceOf(ConflictError);
    expect(err.status).toBe(409);
  });

  it('audit: who did what', async () => {
    const entries = await admin.audit.list({ action: 'vm.create', limit: 5 });
    expect(entries.length).toBeGreaterThan(0);
    expect(entries[0]!.at).toBeInstanceOf(Date);
    expect(entries.every((e) => e.action === 'vm.create')).toBe(true);
    const since = await admin.audit.list({ since: new Date(Date.now() - 60_000), outcome: 'succeeded' });
    expect(since.length).toBeGreaterThan(0);
  });

  it('drain, eligibility, activate, revoke: the seed shape with the worker', async () => {
    const drained = await admin.workers.drain(WORKER, { no_deadline: true, message: 'sdk test' });
    expect(drained).toMatchObject({ worker_id: WORKER, status: 'draining' });
    expect(drained.worker.drain?.started_at).toBeInstanceOf(Date);
    expect(drained.message).toMatch(/draining/);
    const active = await admin.workers.activate(WORKER);
    expect(active).toMatchObject({ worker_id: WORKER, status: 'active' });
    const off = await admin.workers.setEligibility(WORKER, false);
    expect(off.worker.eligible).toBe(false);
    expect((await admin.workers.setEligibility(WORKER, true)).worker.eligible).toBe(true);
    const revoked = await admin.workers.revoke(WORKER);
    expect(revoked.worker_id).toBe(WORKER);
    expect(revoked.revoked_before).toBeInstanceOf(Date);
  });

  it('deleteVm waits until the VM is gone', async () => {
    const result = await vm.delete();
    expect(result).toMatchObject({ status: 'completed', vm_id: vm.id });
    expect(vm.deleted).toBe(true);
    expect(await failure(viewer.vms.get(vm.id))).toBeInstanceOf(NotFoundError);
  });

  it('the typed caller: any route by name', async () => {
    const stats = await viewer.call('clusterStats', {});
    expect(stats.total_workers).toBe(1);
    const answer = await viewer.request('listWorkers', { query: { zone: 'test-zone' } });
    expect(answer.status).toBe(200);
    expect(answer.data.workers[0]!.zone).toBe('test-zone');
  });
});

describe('typed errors from real answers', () => {
  it('NotFoundError: a VM that does not exist', async () => {
    const err = await failure(admin.vms.get('no-such-vm'));
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err).toMatchObject({ status: 404, code: 'not_found', request: 'GET /api/v1/vms/:id' });
    expect(err.message).toMatch(/no-such-vm/);
  });

  it('UnauthorizedError: a wrong token', async () => {
    const err = await failure(t.client('ae_nope_wrongwrongwrong').vms.list());
    expect(err).toBeInstanceOf(UnauthorizedError);
    expect(err).toMatchObject({ status: 401, code: 'unauthorized' });
    const none = await failure(t.client(null).vms.list());
    expect(none).toBeInstanceOf(UnauthorizedError);
  });

  it('ForbiddenError: a viewer key creating a VM', async () => {
    const err = await failure(viewer.vms.create({ name: 'sdk-forbidden' }));
    expect(err).toBeInstanceOf(ForbiddenError);
    expect(err).toMatchObject({ status: 403, code: 'forbidden' });
    expect(err.message).toMatch(/operator/);
  });

  it('ValidationError: vcpus 0, with the field', async () => {
    const err = await failure(admin.vms.create({ vcpus: 0 }));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err).toMatchObject({ status: 400, code: 'validation_failed', field: 'vcpus' });
    expect((err as ValidationError).fields[0]?.message).toBeTruthy();
  });

  it('ConflictError: cancelling a completed task (above); deleting a VM twice is NotFound', async () => {
    const gamma = await admin.vms.create({ name: 'sdk-gamma' });
    await gamma.delete();
    expect(await failure(admin.call('deleteVm', { params: { id: gamma.id } }))).toBeInstanceOf(NotFoundError);
    // Disposing of a VM already gone is fine.
    await gamma[Symbol.asyncDispose]();
  });

  it('TimeoutError (wait): a create that cannot be placed, waitUntil running within 500 ms', async () => {
    const started = Date.now();
    const err = await failure(admin.vms.create({ name: 'sdk-unplaceable', vcpus: 64 }, { timeoutMs: 500 }));
    expect(err).toBeInstanceOf(TimeoutError);
    expect(err).toMatchObject({ kind: 'wait', timeoutMs: 500, code: 'timeout', status: 0 });
    expect(Date.now() - started).toBeLessThan(3000);
    expect(err.message).toMatch(/insufficient/);
    const { vm_id, task_id } = err.details as { vm_id: string; task_id: string };
    const pending = await admin.vms.get(vm_id);
    expect(pending.pendingReason).toMatch(/insufficient cpu/);
    expect((await admin.tasks.cancel(task_id, { wait: true })).status).toBe('cancelled');
    // A create cancelled before it ran leaves no VM: disposing of the handle is fine all the same.
    await pending[Symbol.asyncDispose]();
    expect(await failure(admin.vms.get(vm_id))).toBeInstanceOf(NotFoundError);
  });

  it('TaskCancelledError: a create whose task is cancelled while the SDK waits', async () => {
    const progress: CreateProgress[] = [];
    const creating = admin.vms.create(
      { name: 'sdk-cancelled', vcpus: 64 },
      { timeoutMs: 20_000, onProgress: (p) => progress.push(p) },
    );
    await expect.poll(() => progress.some((p) => p.phase === 'pending')).toBe(true);
    const pending = progress.find((p) => p.phase === 'pending')!;
    expect(pending.phase === 'pending' && pending.reason).toMatch(/insufficient cpu/);
    await admin.tasks.cancel(pending.taskId);
    const err = await failure(creating);
    expect(err).toBeInstanceOf(TaskCancelledError);
    expect(err).toMatchObject({ code: 'cancelled', taskId: pending.taskId });
    expect(await failure(admin.vms.get(pending.vmId))).toBeInstanceOf(NotFoundError);
  });

  it('AbortError: aborting a create while it waits', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const err = await failure(
      admin.vms.create({ name: 'sdk-aborted', vcpus: 64 }, { timeoutMs: 20_000, signal: controller.signal }),
    );
    expect(err).toBeInstanceOf(AbortError);
    expect(err.name).toBe('AbortError');
    const { vm_id } = err.details as { vm_id: string };
    await (await admin.vms.get(vm_id))[Symbol.asyncDispose]();
  });

  it('TimeoutError (request): a server that never answers, requestTimeoutMs 300', async () => {
    const silent: Server = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    try {
      const client = t.client('ae_x', { apiUrl: `http://127.0.0.1:${port}`, requestTimeoutMs: 300, retries: 0 });
      const err = await failure(client.cluster.stats());
      expect(err).toBeInstanceOf(TimeoutError);
      expect(err).toMatchObject({ kind: 'request', timeoutMs: 300 });
    } finally {
      silent.close();
    }
  });

  it('UnavailableError: nothing listens at the API URL', async () => {
    const closed: Server = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as { port: number }).port;
    await new Promise((resolve) => closed.close(resolve));
    const err = await failure(t.client('ae_x', { apiUrl: `http://127.0.0.1:${port}`, retries: 0 }).vms.list());
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err).toMatchObject({ code: 'unreachable', status: 0 });
    expect(err.message).toMatch(/cannot reach the control plane .*ECONNREFUSED.*aetherium dev/);
  });
});

/** A JWT-shaped token (RS256): the server must fetch its key set to check it. */
function jwtShaped(): string {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const exp = Math.floor(Date.now() / 1000) + 3600;
  return `${part({ alg: 'RS256', typ: 'JWT', kid: 'k1' })}.${part({ sub: 'sdk', role: 'admin', exp })}.${'x'.repeat(43)}`;
}

describe('a second system: tiny rate limit, an identity provider that is down', () => {
  let limited: SdkTestSystem;

  beforeAll(async () => {
    const down: Server = createServer();
    await new Promise<void>((resolve) => down.listen(0, '127.0.0.1', resolve));
    const port = (down.address() as { port: number }).port;
    await new Promise((resolve) => down.close(resolve));
    limited = await startSdkSystem({
      api_gateway: {
        rate_limit: { enabled: true, max: 5, window: '1m' },
        auth: { jwt: { jwks_url: `http://127.0.0.1:${port}/jwks` } },
      },
    });
  });

  afterAll(async () => {
    await limited?.stop();
  });

  it('UnavailableError: a real 503 (the JWKS cannot be fetched to check a JWT)', async () => {
    const err = await failure(limited.client(jwtShaped(), { retries: 0 }).vms.list());
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err).toMatchObject({ status: 503, code: 'unavailable', retryable: true });
    // The server says what it could not reach, not a generic engine message.
    expect(err.message).toMatch(/identity provider's key set .* cannot be fetched/);
  });

  it('RateLimitError with retryAfterMs from the server', async () => {
    const client = limited.client();
    let err: ApiError | null = null;
    for (let i = 0; i < 10 && !err; i++) {
      try {
        await client.cluster.stats();
      } catch (e) {
        err = e as ApiError;
      }
    }
    expect(err).toBeInstanceOf(RateLimitError);
    expect(err).toMatchObject({ status: 429, code: 'rate_limited' });
    expect((err as RateLimitError).retryAfterMs).toBeGreaterThan(0);
  });
});

describe('coverage', () => {
  it('every route of the contract was called through the SDK', () => {
    const missing = (Object.keys(ROUTES) as RouteName[]).filter((name) => !called.has(name));
    expect(missing).toEqual([]);
  });
});

describe('types', () => {
  it('derive from the contract (checked by tsc; nothing runs)', () => {
    const neverCalled = async (c: Aetherium) => {
      const task = await c.tasks.get('x');
      if (task.type === 'vm:execute')
        expectTypeOf(task.result).toEqualTypeOf<{
          execution_id: string;
          exit_code: number;
          stdout: string;
          stderr: string;
          stdout_base64?: string | undefined;
          stderr_base64?: string | undefined;
          timed_out: boolean;
          duration_ms: number;
        } | null>();
      expectTypeOf((await c.vms.get('x')).data.created_at).toEqualTypeOf<Date>();
      expectTypeOf((await c.workers.get('x')).drain).toEqualTypeOf<{
        started_at: Date;
        deadline: Date | null;
        message: string | null;
        enforced_at: Date | null;
        drained_at: Date | null;
      } | null>();
      // @ts-expect-error: not a VM status of the contract
      await c.vms.list({ status: 'bogus' });
      // @ts-expect-error: getVm needs its id
      await c.call('getVm', {});
      // @ts-expect-error: not a field of a create
      await c.vms.create({ cpus: 2 });
      // @ts-expect-error: WebSocket routes are not REST calls
      await c.call('events', {});
    };
    expect(typeof neverCalled).toBe('function');
  });
});
