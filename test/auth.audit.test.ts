/**
 * The audit log: every control action and every refused caller, with who, which role, the route,
 * the target, the source and the outcome; a command is recorded, never its output, and a key's name
 * and role, never the key. Filters and paging, who may read it, and `aetherium audit`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../src/domain/index.ts';
import { parseApiKey } from '../src/server/auth/api-keys.ts';
import { bearer } from './harness/auth.ts';
import { startTestSystem, type TestSystem } from './harness/dev-system.ts';
import { eventuallyPasses } from './harness/eventually.ts';
import { runCli } from './harness/processes.ts';

/** An audit entry as the API answers it (times as strings). */
type Entry = Omit<AuditEntry, 'at'> & { at: string };

interface Call {
  action: string;
  route: string;
  target: string | null;
  status: number;
  actor: string;
  role: string | null;
  outcome: 'succeeded' | 'denied' | 'failed';
  details?: Record<string, unknown>;
}

const parse = <T>(res: { body: string }): T => JSON.parse(res.body) as T;

let t: TestSystem;
let api: string;
let operatorKey: string;
let viewerKey: string;
let tempKey: string;
let vmId: string;
let cancelledTask: string;
/** What the test did, in order: each must have its audit entry. */
const calls: Call[] = [];

async function audit(query = ''): Promise<Entry[]> {
  const res = await t.app.inject({ method: 'GET', url: `/api/v1/audit${query}` });
  expect(res.statusCode, res.body).toBe(200);
  const body = parse<{ entries: Entry[]; total: number }>(res);
  expect(body.total).toBe(body.entries.length);
  return body.entries;
}

beforeAll(async () => {
  t = await startTestSystem();
  api = await t.app.listen({ port: 0, host: '127.0.0.1' });
  const as = (token: string) => bearer(token);
  const admin = { actor: 'dev-admin', role: 'admin' } as const;
  const operator = { actor: 'ops', role: 'operator' } as const;
  const post = (url: string, headers: Record<string, string>, payload: object = {}) =>
    t.rawInject({ method: 'POST', url, headers, payload });

  // Keys, made through the API so that their creation is audited.
  const ops = await post('/api/v1/tokens', as(t.adminKey), { name: 'ops', role: 'operator' });
  operatorKey = parse<{ token: string }>(ops).token;
  calls.push({
    ...admin,
    action: 'token.create',
    route: 'POST /api/v1/tokens',
    target: null,
    status: ops.statusCode,
    outcome: 'succeeded',
    details: { name: 'ops', role: 'operator' },
  });
  const watcher = await post('/api/v1/tokens', as(t.adminKey), { name: 'watcher', role: 'viewer', expires: '1h' });
  viewerKey = parse<{ token: string }>(watcher).token;
  calls.push({
    ...admin,
    action: 'token.create',
    route: 'POST /api/v1/tokens',
    target: null,
    status: watcher.statusCode,
    outcome: 'succeeded',
    details: { name: 'watcher', role: 'viewer', expires: '1h' },
  });

  // The VM's life, as the operator.
  const created = await post('/api/v1/vms?wait=true', as(operatorKey), { name: 'audited' });
  vmId = parse<{ vm: { id: string } }>(created).vm.id;
  calls.push({
    ...operator,
    action: 'vm.create',
    route: 'POST /api/v1/vms',
    target: null,
    status: created.statusCode,
    outcome: 'succeeded',
    details: { name: 'audited' },
  });

  const exec = await post(`/api/v1/vms/${vmId}/exec`, as(operatorKey), { command: 'echo', args: ['secret-output'] });
  expect(parse<{ stdout: string }>(exec).stdout).toBe('secret-output\n');
  calls.push({
    ...operator,
    action: 'vm.exec',
    route: 'POST /api/v1/vms/:id/exec',
    target: vmId,
    status: exec.statusCode,
    outcome: 'succeeded',
    details: { command: 'echo', args: '["secret-output"]' },
  });
  // Output that is not in the command line: it must appear nowhere in the log.
  const printf = await post(`/api/v1/vms/${vmId}/exec`, as(operatorKey), {
    command: 'printf',
    args: ['%s-%s', 'hidden', 'value'],
  });
  expect(parse<{ stdout: string }>(printf).stdout).toBe('hidden-value');
  calls.push({
    ...operator,
    action: 'vm.exec',
    route: 'POST /api/v1/vms/:id/exec',
    target: vmId,
    status: printf.statusCode,
    outcome: 'succeeded',
    details: { command: 'printf' },
  });

  for (const step of ['stop', 'start'] as const) {
    const res = await post(`/api/v1/vms/${vmId}/${step}?wait=true`, as(operatorKey));
    calls.push({
      ...operator,
      action: `vm.${step}`,
      route: `POST /api/v1/vms/:id/${step}`,
      target: vmId,
      status: res.statusCode,
      outcome: 'succeeded',
      details: {},
    });
  }

  // A VM that fits nowhere waits; its create task is the one to cancel.
  const waiting = await post('/api/v1/vms', as(operatorKey), { name: 'too-big', vcpus: 64 });
  const waitingBody = parse<{ vm: { id: string }; task_id: string }>(waiting);
  cancelledTask = waitingBody.task_id;
  calls.push({
    ...operator,
    action: 'vm.create',
    route: 'POST /api/v1/vms',
    target: null,
    status: waiting.statusCode,
    outcome: 'succeeded',
    details: { name: 'too-big' },
  });
  const cancel = await post(`/api/v1/tasks/${cancelledTask}/cancel`, as(operatorKey));
  calls.push({
    ...operator,
    action: 'task.cancel',
    route: 'POST /api/v1/tasks/:id/cancel',
    target: cancelledTask,
    status: cancel.statusCode,
    outcome: 'succeeded',
    details: {},
  });

  const deleted = await t.rawInject({
    method: 'DELETE',
    url: `/api/v1/vms/${vmId}?wait=true`,
    headers: as(operatorKey),
  });
  calls.push({
    ...operator,
    action: 'vm.delete',
    route: 'DELETE /api/v1/vms/:id',
    target: vmId,
    status: deleted.statusCode,
    outcome: 'succeeded',
    details: {},
  });

  // The worker, as the admin.
  const worker = '/api/v1/workers/test-worker';
  const drain = await post(`${worker}/drain`, as(t.adminKey), { force: true, message: 'audit test' });
  calls.push({
    ...admin,
    action: 'worker.drain',
    route: 'POST /api/v1/workers/:id/drain',
    target: 'test-worker',
    status: drain.statusCode,
    outcome: 'succeeded',
    details: { force: true, message: 'audit test' },
  });
  const activate = await post(`${worker}/activate`, as(t.adminKey));
  calls.push({
    ...admin,
    action: 'worker.activate',
    route: 'POST /api/v1/workers/:id/activate',
    target: 'test-worker',
    status: activate.statusCode,
    outcome: 'succeeded',
    details: {},
  });
  for (const eligible of [false, true]) {
    const res = await post(`${worker}/eligibility`, as(t.adminKey), { eligible });
    calls.push({
      ...admin,
      action: 'worker.eligibility',
      route: 'POST /api/v1/workers/:id/eligibility',
      target: 'test-worker',
      status: res.statusCode,
      outcome: 'succeeded',
      details: { eligible },
    });
  }

  // A key made and revoked.
  const temp = await post('/api/v1/tokens', as(t.adminKey), { name: 'temp', role: 'admin' });
  tempKey = parse<{ token: string }>(temp).token;
  calls.push({
    ...admin,
    action: 'token.create',
    route: 'POST /api/v1/tokens',
    target: null,
    status: temp.statusCode,
    outcome: 'succeeded',
    details: { name: 'temp', role: 'admin' },
  });
  const revoke = await t.rawInject({ method: 'DELETE', url: '/api/v1/tokens/temp', headers: as(t.adminKey) });
  calls.push({
    ...admin,
    action: 'token.revoke',
    route: 'DELETE /api/v1/tokens/:id',
    target: 'temp',
    status: revoke.statusCode,
    outcome: 'succeeded',
    details: {},
  });

  // Refused callers: nobody, and a viewer trying to create.
  const anonymous = await t.rawInject({ method: 'POST', url: '/api/v1/vms', payload: { name: 'anon' } });
  calls.push({
    actor: 'anonymous',
    role: null,
    action: 'vm.create',
    route: 'POST /api/v1/vms',
    target: null,
    status: anonymous.statusCode,
    outcome: 'denied',
    details: {},
  });
  const viewer = await post('/api/v1/vms', as(viewerKey), { name: 'viewer-vm' });
  calls.push({
    actor: 'watcher',
    role: 'viewer',
    action: 'vm.create',
    route: 'POST /api/v1/vms',
    target: null,
    status: viewer.statusCode,
    outcome: 'denied',
    details: {},
  });

  // The answer leaves before its audit row is written: wait for the last one.
  await eventuallyPasses(
    async () => expect((await audit('?outcome=denied')).some((e) => e.actor === 'watcher')).toBe(true),
    5000,
    50,
  );
}, 120_000);

afterAll(async () => {
  await t?.stop();
});

describe('audit log', () => {
  it('answered every call the way the test expects', () => {
    const wanted: Record<string, number[]> = {
      'token.create': [201],
      'vm.create': [201, 202],
      'vm.exec': [200],
      'vm.stop': [200],
      'vm.start': [200],
      'task.cancel': [200],
      'vm.delete': [200],
      'worker.drain': [200],
      'worker.activate': [200],
      'worker.eligibility': [200],
      'token.revoke': [200],
    };
    for (const call of calls) {
      if (call.outcome === 'denied') continue;
      expect(wanted[call.action], `${call.action} ${call.status}`).toContain(call.status);
    }
    const denied = calls.filter((c) => c.outcome === 'denied').map((c) => c.status);
    expect(denied).toEqual([401, 403]);
  });

  it('has one entry per action, with actor, role, route, target, source, outcome, status and details', async () => {
    const entries = (await audit('?limit=1000')).slice().reverse(); // oldest first, like `calls`
    const controls = entries.filter((e) => e.action !== 'read');
    expect(controls.map((e) => `${e.action} ${e.outcome}`)).toEqual(calls.map((c) => `${c.action} ${c.outcome}`));
    for (const [i, call] of calls.entries()) {
      const entry = controls[i]!;
      const label = `${call.action} #${i}`;
      expect(entry, label).toMatchObject({
        actor: call.actor,
        role: call.role,
        action: call.action,
        route: call.route,
        target: call.target,
        source: '127.0.0.1',
        outcome: call.outcome,
        status: call.status,
      });
      expect(entry.actor_kind, label).toBe(call.actor === 'anonymous' ? 'anonymous' : 'key');
      expect(Number.isNaN(Date.parse(entry.at)), label).toBe(false);
      expect(entry.details, label).toMatchObject(call.details ?? {});
    }
    const ids = entries.map((e) => e.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
  });

  it('records the command of an exec, never its output', async () => {
    const execs = await audit('?action=vm.exec');
    expect(execs).toHaveLength(2);
    const [printf, echo] = execs;
    expect(echo!.details).toEqual({ command: 'echo', args: '["secret-output"]' });
    expect(printf!.details).toEqual({ command: 'printf', args: '["%s-%s","hidden","value"]' });
    const everything = JSON.stringify(await audit('?limit=1000'));
    expect(everything).not.toContain('hidden-value');
    expect(everything).not.toContain('secret-output\\n');
    expect(everything).not.toMatch(/stdout|stderr|exit_code/);
  });

  it('records the name and role of a key, never the key', async () => {
    const creates = await audit('?action=token.create');
    expect(creates.map((e) => e.details)).toEqual([
      { name: 'temp', role: 'admin' },
      { name: 'watcher', role: 'viewer', expires: '1h' },
      { name: 'ops', role: 'operator' },
    ]);
    const everything = JSON.stringify(await audit('?limit=1000'));
    for (const token of [operatorKey, viewerKey, tempKey, t.adminKey]) {
      expect(everything).not.toContain(token);
      expect(everything).not.toContain(parseApiKey(token)!.secret);
    }
    expect(everything).not.toContain('scrypt$');
  });

  it('records refused callers as denied, without the details of what they asked', async () => {
    const denied = await audit('?outcome=denied');
    expect(denied.length).toBeGreaterThanOrEqual(2);
    for (const entry of denied) expect(entry.outcome).toBe('denied');
    expect(denied.find((e) => e.actor === 'anonymous' && e.route === 'POST /api/v1/vms')).toMatchObject({
      role: null,
      status: 401,
      details: {},
    });
    expect(denied.find((e) => e.actor === 'watcher')).toMatchObject({
      role: 'viewer',
      action: 'vm.create',
      status: 403,
      details: {},
    });
    expect(JSON.stringify(denied)).not.toMatch(/anon"|viewer-vm/);
  });

  it('filters by action, outcome and actor', async () => {
    const drains = await audit('?action=worker.drain');
    expect(drains).toHaveLength(1);
    expect(drains[0]).toMatchObject({ target: 'test-worker', details: { force: true } });

    const eligibility = await audit('?action=worker.eligibility');
    expect(eligibility.map((e) => e.details.eligible)).toEqual([true, false]);

    const byOps = await audit('?actor=ops');
    expect(byOps.length).toBe(calls.filter((c) => c.actor === 'ops').length);
    for (const entry of byOps) expect(entry).toMatchObject({ actor: 'ops', role: 'operator' });

    const succeededByAdmin = await audit('?actor=dev-admin&outcome=succeeded');
    expect(succeededByAdmin.map((e) => e.action).sort()).toEqual(
      calls
        .filter((c) => c.actor === 'dev-admin')
        .map((c) => c.action)
        .sort(),
    );
    expect(await audit('?actor=nobody-at-all')).toEqual([]);
    expect(await audit(`?action=task.cancel`)).toMatchObject([{ target: cancelledTask }]);
  });

  it('pages with limit and before_id, newest first, without gaps or repeats', async () => {
    const all = await audit('?limit=1000');
    expect(all.length).toBeGreaterThanOrEqual(calls.length);
    const pages: Entry[] = [];
    let before: number | null = null;
    for (let guard = 0; guard < 100; guard++) {
      const page = await audit(`?limit=4${before === null ? '' : `&before_id=${before}`}`);
      if (page.length === 0) break;
      expect(page.length).toBeLessThanOrEqual(4);
      pages.push(...page);
      before = page.at(-1)!.id;
    }
    // Reading the log is not audited, so the pages add up to exactly what one big read gave.
    expect(pages.map((e) => e.id)).toEqual(all.map((e) => e.id));
    for (const [i, entry] of all.entries()) if (i > 0) expect(entry.id).toBeLessThan(all[i - 1]!.id);

    for (const bad of ['?limit=0', '?limit=1001', '?before_id=0', '?outcome=maybe', '?limit=ten', '?colour=red']) {
      const res = await t.app.inject({ method: 'GET', url: `/api/v1/audit${bad}` });
      expect(res.statusCode, bad).toBe(400);
    }
  });

  it('is for admins only: a viewer and an operator get 403, nobody 401', async () => {
    for (const [token, status] of [
      [viewerKey, 403],
      [operatorKey, 403],
    ] as const) {
      const res = await t.rawInject({ method: 'GET', url: '/api/v1/audit', headers: bearer(token) });
      expect(res.statusCode).toBe(status);
    }
    expect((await t.rawInject({ method: 'GET', url: '/api/v1/audit' })).statusCode).toBe(401);
    // The refusals are in the log themselves.
    await eventuallyPasses(
      async () =>
        expect(
          (await audit('?outcome=denied')).filter((e) => e.route === 'GET /api/v1/audit').map((e) => e.actor),
        ).toEqual(['anonymous', 'ops', 'watcher']),
      5000,
      50,
    );
  });

  it('`aetherium audit --json` lists the entries', async () => {
    const env = { AETHERIUM_TOKEN: '', AETHERIUM_KEY_FILE: '/nonexistent/admin.key' };
    const result = await runCli(['--api', api, '--token', t.adminKey, '--json', 'audit', '--action', 'vm.exec'], env);
    expect(result.code, result.stderr).toBe(0);
    const body = JSON.parse(result.stdout) as { entries: Entry[] };
    expect(body.entries).toHaveLength(2);
    expect(body.entries.map((e) => e.details.command)).toEqual(['printf', 'echo']);
    for (const entry of body.entries) expect(entry).toMatchObject({ actor: 'ops', role: 'operator', target: vmId });

    const all = await runCli(['--api', api, '--token', t.adminKey, '--json', 'audit', '--limit', '1000'], env);
    expect(all.code, all.stderr).toBe(0);
    const actions = new Set((JSON.parse(all.stdout) as { entries: Entry[] }).entries.map((e) => e.action));
    for (const call of calls) expect(actions).toContain(call.action);

    const table = await runCli(['--api', api, '--token', t.adminKey, 'audit', '--outcome', 'denied'], env);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/ACTOR/);
    expect(table.stdout).toMatch(/denied \(403\)/);

    const refused = await runCli(['--api', api, '--token', viewerKey, 'audit'], env);
    expect(refused.code).toBe(5); // forbidden
    expect(refused.stderr).toMatch(/admin/);
  }, 60_000);
});
