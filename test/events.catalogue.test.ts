/**
 * The event catalogue end to end, on the embedded system: drive a VM's whole life, a command, a
 * cancelled create, eligibility and a forced drain through the API, record every event the bus
 * delivers, and check each against the strict schema of its type, the ids' order, the types that
 * must have been seen and the shape of a few.
 */
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClusterEvent, type ClusterEventOf, EVENT_SCHEMAS, type EventType } from '../src/domain/index.ts';
import { startTestSystem, type TestSystem } from './harness/dev-system.ts';
import { eventuallyPasses } from './harness/eventually.ts';

let t: TestSystem;
let unsubscribe: (() => void) | null = null;
const events: ClusterEvent[] = [];

/** What the scenario produced, for the assertions. */
const ids = { vm: '', vmName: 'catalogue-vm', execTask: '', bigVm: '', bigCreateTask: '' };

const REQUIRED: EventType[] = [
  'task.created',
  'task.scheduled',
  'task.started',
  'task.completed',
  'vm.state_changed',
  'vm.created',
  'vm.deleted',
  'task.cancelled',
  'worker.updated',
  'worker.draining',
  'worker.drained',
  'worker.activated',
  'worker.resources',
];

interface Response {
  status: number;
  body: Body;
}

/** A JSON answer of the API, read field by field with `field()`. */
type Body = { [key: string]: unknown };

function isBody(value: unknown): value is Body {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function call(method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object): Promise<Response> {
  const response = await t.app.inject({ method, url, ...(payload === undefined ? {} : { payload }) });
  const parsed: unknown = response.body ? JSON.parse(response.body) : {};
  if (!isBody(parsed)) throw new Error(`${method} ${url}: not a JSON object`);
  return { status: response.statusCode, body: parsed };
}

/** A string field of an answer (`vm.id` reads a nested one). */
function field(body: Body, path: string): string {
  let value: unknown = body;
  for (const key of path.split('.')) {
    value = isBody(value) ? value[key] : undefined;
  }
  if (typeof value !== 'string') throw new Error(`no string at ${path} in ${JSON.stringify(body)}`);
  return value;
}

function ofType<T extends EventType>(type: T): ClusterEventOf<T>[] {
  return events.filter((e): e is ClusterEventOf<T> => e.type === type);
}

async function until(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  await eventuallyPasses(() => expect(check(), what).toBe(true), timeoutMs, 25);
}

beforeAll(async () => {
  t = await startTestSystem();
  unsubscribe = t.system.engines.events.subscribe((event) => events.push(event));

  // A VM's life: create, a command, stop, start.
  const created = await call('POST', '/api/v1/vms?wait=true&timeout=60', { name: ids.vmName, driver: 'process' });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  expect(field(created.body, 'vm.status')).toBe('running');
  ids.vm = field(created.body, 'vm.id');

  const exec = await call('POST', `/api/v1/vms/${ids.vmName}/exec`, {
    command: 'sh',
    args: ['-c', 'echo hi; exit 3'],
  });
  expect(exec.status, JSON.stringify(exec.body)).toBe(200);
  expect(exec.body).toMatchObject({ exit_code: 3, stdout: 'hi\n' });
  ids.execTask = field(exec.body, 'task_id');

  for (const action of ['stop', 'start']) {
    const res = await call('POST', `/api/v1/vms/${ids.vm}/${action}?wait=true&timeout=60`);
    expect(res.body.status, `${action}: ${JSON.stringify(res.body)}`).toBe('completed');
  }

  // Eligibility off and on.
  for (const eligible of [false, true]) {
    const res = await call('POST', '/api/v1/workers/test-worker/eligibility', { eligible });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ worker: { eligible } });
  }

  // A VM that fits nowhere stays pending; its create is cancelled.
  const big = await call('POST', '/api/v1/vms', { name: 'catalogue-too-big', memory_mb: 1_000_000 });
  expect(big.status, JSON.stringify(big.body)).toBe(202);
  ids.bigVm = field(big.body, 'vm.id');
  ids.bigCreateTask = field(big.body, 'task_id');
  const cancelled = await call('POST', `/api/v1/tasks/${ids.bigCreateTask}/cancel`);
  expect(cancelled.status, JSON.stringify(cancelled.body)).toBe(200);
  expect(cancelled.body).toMatchObject({ status: 'cancelled', outcome: 'cancelled' });

  // The first VM goes.
  const deleted = await call('DELETE', `/api/v1/vms/${ids.vm}?wait=true&timeout=60`);
  expect(deleted.body.status, JSON.stringify(deleted.body)).toBe('completed');

  // A forced drain of the (now empty) worker, then back to active.
  const drained = await call('POST', '/api/v1/workers/test-worker/drain', { force: true });
  expect(drained.status, JSON.stringify(drained.body)).toBe(200);
  expect(drained.body.status).toBe('draining');
  const active = await call('POST', '/api/v1/workers/test-worker/activate');
  expect(active.status, JSON.stringify(active.body)).toBe(200);
  expect(active.body).toMatchObject({ status: 'active', worker: { eligible: true } });

  await until('every required event type to arrive', () => REQUIRED.every((type) => ofType(type).length > 0));
  await until('the deletion of the first VM to be announced', () =>
    ofType('vm.deleted').some((e) => e.data.vm_id === ids.vm),
  );
}, 180_000);

afterAll(async () => {
  unsubscribe?.();
  await t?.stop();
});

describe('events of the embedded system', () => {
  it('recorded a real scenario', () => {
    expect(events.length).toBeGreaterThan(20);
  });

  it('every event is an envelope { id, type, timestamp, data }', () => {
    for (const event of events) {
      expect(Object.keys(event).sort()).toEqual(['data', 'id', 'timestamp', 'type']);
      expect(event.timestamp).toBe(new Date(event.timestamp).toISOString());
    }
  });

  it("every event's data passes the strict schema of its type, and the parse drops nothing", () => {
    const failures: string[] = [];
    for (const event of events) {
      const parsed = EVENT_SCHEMAS[event.type].strict().safeParse(event.data);
      if (!parsed.success) failures.push(`#${event.id} ${event.type}: ${parsed.error.message}`);
      // Nested objects (a task's result) are not strict: an equal parse proves no extra key.
      else if (!isDeepStrictEqual(parsed.data, event.data)) {
        failures.push(`#${event.id} ${event.type}: keys the schema does not know in ${JSON.stringify(event.data)}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('the events retained from before the subscription pass their schemas too', async () => {
    const replay = await t.system.engines.events.replay(0, 10_000);
    expect('events' in replay).toBe(true);
    const retained = 'events' in replay ? replay.events : [];
    expect(retained.length).toBeGreaterThanOrEqual(events.length);
    for (const event of retained) expect(EVENT_SCHEMAS[event.type].strict().safeParse(event.data).success).toBe(true);
  });

  it('ids strictly increase', () => {
    for (let i = 1; i < events.length; i++) expect(events[i]!.id).toBeGreaterThan(events[i - 1]!.id);
  });

  it('saw every event type the scenario produces', () => {
    const seen = new Set(events.map((e) => e.type));
    expect(REQUIRED.filter((type) => !seen.has(type))).toEqual([]);
  });

  it('vm.deleted carries vm_id, name, worker_id and reason', () => {
    const deleted = ofType('vm.deleted').find((e) => e.data.vm_id === ids.vm);
    expect(deleted).toBeDefined();
    expect(Object.keys(deleted!.data).sort()).toEqual(['name', 'reason', 'vm_id', 'worker_id']);
    expect(deleted!.data).toMatchObject({ vm_id: ids.vm, name: ids.vmName, worker_id: 'test-worker' });
    expect(deleted!.data.reason).toBeTypeOf('string');
    expect(deleted!.data.reason.length).toBeGreaterThan(0);
  });

  it("the command's task.completed carries its exit code and output sizes, not its output", () => {
    const completed = ofType('task.completed').filter((e) => e.data.task_id === ids.execTask);
    expect(completed).toHaveLength(1);
    const data = completed[0]!.data;
    expect(data).toMatchObject({ type: 'vm:execute', status: 'completed', vm_id: ids.vm, worker_id: 'test-worker' });
    expect(data.result).toMatchObject({ exit_code: 3, stdout_bytes: 3, stderr_bytes: 0, timed_out: false });
    expect(data.result).not.toHaveProperty('stdout');
    expect(data.result).not.toHaveProperty('stderr');
  });

  it('the VM went through its states: booted, stopped, started again, deleted', () => {
    const transitions = ofType('vm.state_changed')
      .filter((e) => e.data.vm_id === ids.vm)
      .map((e) => `${e.data.from}→${e.data.to}`);
    expect(transitions).toEqual(
      expect.arrayContaining(['created→starting', 'starting→running', 'running→stopping', 'stopping→stopped']),
    );
    expect(transitions.filter((step) => step.endsWith('→running')).length).toBeGreaterThanOrEqual(2);
    expect(ofType('vm.created').filter((e) => e.data.vm_id === ids.vm)).toHaveLength(1);
    expect(ofType('vm.created')[0]!.data).toMatchObject({ name: ids.vmName, driver: 'process' });
  });

  it("the pending VM's create was announced, then cancelled, and its VM forgotten", () => {
    const created = ofType('task.created').find((e) => e.data.task_id === ids.bigCreateTask);
    expect(created?.data).toMatchObject({ type: 'vm:create', status: 'pending', name: 'catalogue-too-big' });
    const cancelled = ofType('task.cancelled').filter((e) => e.data.task_id === ids.bigCreateTask);
    expect(cancelled).toHaveLength(1);
    expect(cancelled[0]!.data).toMatchObject({ status: 'cancelled', vm_id: ids.bigVm, worker_id: null });
    expect(ofType('task.scheduled').some((e) => e.data.task_id === ids.bigCreateTask)).toBe(false);
    expect(ofType('vm.deleted').some((e) => e.data.vm_id === ids.bigVm)).toBe(true);
  });

  it('eligibility off and on is two worker.updated events, in that order', () => {
    const updates = ofType('worker.updated').filter((e) => e.data.change === 'eligibility');
    expect(updates.map((e) => [e.data.worker_id, e.data.eligible])).toEqual([
      ['test-worker', false],
      ['test-worker', true],
    ]);
  });

  it('a forced drain of the empty worker is draining, then drained, then activated', () => {
    const [draining] = ofType('worker.draining');
    const [drained] = ofType('worker.drained');
    const [activated] = ofType('worker.activated');
    expect(draining?.data).toMatchObject({ worker_id: 'test-worker', force: true, message: null });
    expect(draining?.data.deadline).toBeTypeOf('string');
    expect(drained?.data.worker_id).toBe('test-worker');
    expect(activated?.data.worker_id).toBe('test-worker');
    expect(draining!.id).toBeLessThan(drained!.id);
    expect(drained!.id).toBeLessThan(activated!.id);
    expect(Date.parse(drained!.data.drained_at)).toBeGreaterThanOrEqual(Date.parse(drained!.data.started_at));
  });

  it("worker.resources reports the worker's reservations", () => {
    const resources = ofType('worker.resources');
    expect(resources.every((e) => e.data.worker_id === 'test-worker')).toBe(true);
    // While the VM (1 vCPU, 256 MB by default) ran, the worker reported it.
    expect(resources.some((e) => e.data.vm_count === 1 && e.data.used_memory_mb === 256)).toBe(true);
  });

  it('every task of the scenario that started also ended, each once', () => {
    const ended = [...ofType('task.completed'), ...ofType('task.failed'), ...ofType('task.cancelled')];
    for (const started of ofType('task.started')) {
      expect(
        ended.filter((e) => e.data.task_id === started.data.task_id),
        started.data.task_id,
      ).toHaveLength(1);
    }
  });
});
