/**
 * The typed core, checked at the source and at run time: no double casts in src/, typed task
 * payloads, every event type built by its one constructor in event-constructors.ts, every
 * constructor's output valid under the catalogue's strict schema, the event catalogue for docs,
 * and the error catalogue.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as evt from '../src/domain/event-constructors.ts';
import { AetheriumError, ERROR_CATALOGUE, type ErrorCode, isRetryable } from '../src/domain/errors.ts';
import { EVENT_SCHEMAS, EVENT_TYPES, eventCatalogue, type NewEvent } from '../src/domain/events.ts';
import { newTask, type Task } from '../src/domain/task.ts';
import type { Vm } from '../src/domain/vm.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SRC = join(ROOT, 'src');
const CONSTRUCTORS_FILE = 'src/domain/event-constructors.ts';

/** Every .ts file under src/, as [path relative to the repo with forward slashes, text]. */
function sourceFiles(dir = SRC): [string, string][] {
  const files: [string, string][] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...sourceFiles(path));
    else if (/\.(ts|mts|cts)$/.test(entry.name)) {
      files.push([relative(ROOT, path).split(sep).join('/'), readFileSync(path, 'utf8')]);
    }
  }
  return files;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** `file:line` of every match of `pattern` in src/. */
function occurrences(pattern: RegExp): string[] {
  const found: string[] = [];
  for (const [file, text] of sourceFiles()) {
    for (const match of text.matchAll(new RegExp(pattern.source, `${pattern.flags.replace('g', '')}g`))) {
      found.push(`${file}:${text.slice(0, match.index).split('\n').length}`);
    }
  }
  return found;
}

describe('source of the typed core', () => {
  it('walks a real tree', () => {
    const files = sourceFiles().map(([file]) => file);
    expect(files.length).toBeGreaterThan(50);
    expect(files).toEqual(expect.arrayContaining([CONSTRUCTORS_FILE, 'src/domain/task.ts', 'src/domain/events.ts']));
  });

  it('no file in src/ contains `as unknown as`', () => {
    expect(occurrences(/\bas\s+unknown\s+as\b/)).toEqual([]);
  });

  it('src/domain/task.ts has no Record<string, unknown>', () => {
    const text = readFileSync(join(ROOT, 'src/domain/task.ts'), 'utf8');
    expect(text).not.toMatch(/Record<\s*string\s*,\s*unknown\s*>/);
  });

  it.each(EVENT_TYPES)('%s is built in exactly one place, in event-constructors.ts', (type) => {
    // `type: 'x'`, `type: "x"` (or a template literal without placeholders).
    const literal = new RegExp(`\\btype\\s*:\\s*(['"\`])${escapeRegExp(type)}\\1`);
    const places = occurrences(literal);
    expect(places).toHaveLength(1);
    expect(places[0]).toMatch(new RegExp(`^${escapeRegExp(CONSTRUCTORS_FILE)}:\\d+$`));
  });

  it('the literal search sees both quote styles', () => {
    const literal = /\btype\s*:\s*(['"`])task\.created\1/;
    expect(literal.test(`{ type: 'task.created' }`)).toBe(true);
    expect(literal.test(`{ type:"task.created" }`)).toBe(true);
    expect(literal.test(`{ type: 'task.created" }`)).toBe(false);
  });
});

// ── sample domain objects ───────────────────────────────────────────────────────────────────────

const AT = new Date('2025-01-01T00:00:00.000Z');

const vm: Vm = {
  id: 'vm-1',
  name: 'sample-vm',
  status: 'running',
  driver: 'process',
  worker_id: 'worker-1',
  zone: 'zone-a',
  labels: { team: 'core' },
  image: null,
  vcpus: 1,
  memory_mb: 256,
  disk_gb: 1,
  error: null,
  created_at: AT,
  updated_at: AT,
  deleted_at: null,
  phases: {},
};

const workerLike = {
  id: 'worker-1',
  hostname: 'host-1',
  zone: 'zone-a',
  status: 'active' as const,
  eligible: true,
  capabilities: ['process'],
};

const usage = { id: 'worker-1', vm_count: 2, used_cpu_cores: 1.5, used_memory_mb: 512, used_disk_gb: 2 };

const create = newTask('vm:create', { worker_labels: { gpu: { in: ['a100'] } }, strategy: 'spread' }, { vm_id: vm.id });
const scheduled = { ...create, status: 'scheduled' as const, worker_id: 'worker-1' };
const running = { ...scheduled, status: 'running' as const };
const execResult = {
  execution_id: 'exec-1',
  exit_code: 3,
  stdout: 'héllo\n',
  stderr: 'oops\n',
  timed_out: false,
  duration_ms: 12.5,
};
const exec = newTask(
  'vm:execute',
  { command: 'sh', args: ['-c', 'exit 3'], env: {} },
  { vm_id: vm.id, worker_id: 'worker-1', status: 'completed', result: execResult },
);
const completedCreate = newTask(
  'vm:create',
  { worker_labels: {}, strategy: null },
  {
    vm_id: vm.id,
    worker_id: 'worker-1',
    status: 'completed',
    result: { vm_id: vm.id, driver: 'process', boot_ms: 40 },
  },
);
const completedDelete = newTask(
  'vm:delete',
  { reason: 'drain deadline' },
  { vm_id: vm.id, worker_id: 'worker-1', status: 'completed', result: { vm_id: vm.id, deleted: true } },
);
const completedStop = newTask(
  'vm:stop',
  {},
  { vm_id: vm.id, worker_id: 'worker-1', status: 'completed', result: { vm_id: vm.id, status: 'stopped' } },
);

/** One call of every exported constructor (the type makes a new constructor without a sample a compile error). */
const SAMPLES: { [K in keyof typeof evt]: () => NewEvent } = {
  workerJoined: () => evt.workerJoined(workerLike, 'builtin'),
  workerLeft: () => evt.workerLeft('worker-1', 'missed heartbeats', AT),
  workerUpdated: () => evt.workerUpdated(workerLike, 'eligibility'),
  workerDraining: () => evt.workerDraining('worker-1', { deadline: AT, force: true, message: 'maintenance' }),
  workerDrained: () => evt.workerDrained('worker-1', AT, new Date()),
  workerActivated: () => evt.workerActivated('worker-1'),
  workerResources: () => evt.workerResources(usage),
  vmCreated: () => evt.vmCreated(vm),
  vmStateChanged: () => evt.vmStateChanged(vm, 'starting', 'running', null),
  vmDeleted: () => evt.vmDeleted(vm, 'deleted by request'),
  taskCreated: () => evt.taskCreated(create, vm.name),
  taskScheduled: () => evt.taskScheduled(scheduled, { driver: 'process', score: 0.75 }),
  taskRequeued: () => evt.taskRequeued(scheduled, 'worker-1', 'worker worker-1 is draining'),
  taskStarted: () => evt.taskStarted(running),
  taskRetrying: () => evt.taskRetrying(scheduled, 'driver failed', 2000),
  taskCompleted: () => evt.taskCompleted(exec),
  taskFailed: () => evt.taskFailed({ ...running, status: 'failed' }, 'boot timeout'),
  taskCancelRequested: () => evt.taskCancelRequested(running, 'cancelled by request'),
  taskCancelled: () => evt.taskCancelled({ ...create, status: 'cancelled' }, 'cancelled by request'),
};

/** Parses with the catalogue's strict schema; the parse keeps nothing the schema does not know. */
function strictParse(event: NewEvent): unknown {
  return EVENT_SCHEMAS[event.type].strict().parse(event.data);
}

describe('event constructors', () => {
  const names = Object.keys(SAMPLES).sort();

  it('has a sample for every exported constructor', () => {
    expect(Object.keys(evt).sort()).toEqual(names);
  });

  it.each(Object.entries(SAMPLES))(
    '%s builds an event whose data passes the strict schema of its type',
    (_, sample) => {
      const event = sample();
      expect(EVENT_TYPES).toContain(event.type);
      expect(Object.keys(event).sort()).toEqual(['data', 'type']);
      // Nested objects (a task's result) are not strict: an equal parse proves nothing was dropped.
      expect(strictParse(event)).toEqual(event.data);
    },
  );

  it('between them build every event type', () => {
    const built = new Set(Object.values(SAMPLES).map((sample) => sample().type));
    expect([...built].sort()).toEqual([...EVENT_TYPES].sort());
  });

  it.each([
    ['a command', exec],
    ['a create', completedCreate],
    ['a delete', completedDelete],
    ['a stop', completedStop],
  ] as const)('taskCompleted with the result of %s passes the strict schema', (_, task: Task) => {
    const event = evt.taskCompleted(task);
    expect(strictParse(event)).toEqual(event.data);
  });

  it("taskCompleted carries a command's output sizes in bytes, not the output", () => {
    const event = evt.taskCompleted(exec);
    expect(event.type).toBe('task.completed');
    const data = EVENT_SCHEMAS['task.completed'].strict().parse(event.data);
    expect(data.result).toEqual({
      execution_id: 'exec-1',
      exit_code: 3,
      timed_out: false,
      duration_ms: 12.5,
      stdout_bytes: 7, // 'héllo\n': é is two bytes
      stderr_bytes: 5,
    });
    expect(event.data).not.toHaveProperty('result.stdout');
    expect(event.data).not.toHaveProperty('result.stderr');
  });

  it('taskCompleted refuses a task without a result', () => {
    expect(() => evt.taskCompleted({ ...running, status: 'completed' })).toThrow(/without a result/);
  });

  it('taskRequeued announces the task pending and unplaced, with the worker it left', () => {
    const event = evt.taskRequeued(scheduled, 'worker-1', 'draining');
    expect(event.data).toMatchObject({ status: 'pending', worker_id: null, from_worker_id: 'worker-1' });
  });

  it('the strict schemas refuse a key they do not know and a missing one', () => {
    const event = evt.vmDeleted(vm, 'deleted by request');
    const schema = EVENT_SCHEMAS['vm.deleted'].strict();
    expect(() => schema.parse({ ...event.data, extra: 1 })).toThrow();
    const { reason: _reason, ...withoutReason } = EVENT_SCHEMAS['vm.deleted'].parse(event.data);
    expect(() => schema.parse(withoutReason)).toThrow();
  });
});

describe('event catalogue', () => {
  const catalogue = eventCatalogue();

  it('has one entry per event type, in the order of EVENT_TYPES', () => {
    expect(catalogue.map((entry) => entry.type)).toEqual(EVENT_TYPES);
    expect(new Set(EVENT_TYPES).size).toBe(EVENT_TYPES.length);
    expect(EVENT_TYPES.length).toBe(Object.keys(EVENT_SCHEMAS).length);
  });

  it.each(catalogue)('$type has a description and a JSON schema of its data', ({ type, description, data }) => {
    expect(description.trim().length).toBeGreaterThan(0);
    expect(data).toBeTypeOf('object');
    expect(data).not.toBeNull();
    expect(data).toMatchObject({ type: 'object' });
    const properties = Object.keys((data as { properties?: Record<string, unknown> }).properties ?? {});
    expect(properties.sort()).toEqual(Object.keys(EVENT_SCHEMAS[type].shape).sort());
  });
});

describe('error catalogue', () => {
  const codes = Object.keys(ERROR_CATALOGUE) as ErrorCode[];

  it('is not empty', () => {
    expect(codes.length).toBeGreaterThan(5);
  });

  it.each(codes)('%s has a 4xx or 5xx status, a boolean retryable and a description', (code) => {
    const entry = ERROR_CATALOGUE[code];
    expect(Number.isInteger(entry.status)).toBe(true);
    expect(entry.status).toBeGreaterThanOrEqual(400);
    expect(entry.status).toBeLessThan(600);
    expect(typeof entry.retryable).toBe('boolean');
    expect(entry.description.length).toBeGreaterThan(0);
    const err = new AetheriumError(code, 'x');
    expect([err.status, err.retryable, isRetryable(err)]).toEqual([entry.status, entry.retryable, entry.retryable]);
  });

  it('driver_failed is retryable', () => {
    expect(new AetheriumError('driver_failed', 'x').retryable).toBe(true);
    expect(isRetryable(new AetheriumError('driver_failed', 'x'))).toBe(true);
  });

  it.each(['driver_unavailable', 'not_found', 'validation_failed'] as const)('%s is not retryable', (code) => {
    expect(new AetheriumError(code, 'x').retryable).toBe(false);
    expect(isRetryable(new AetheriumError(code, 'x'))).toBe(false);
  });

  it('an error that is not an AetheriumError counts as retryable', () => {
    expect(isRetryable(new Error('x'))).toBe(true);
  });

  it('toJSON() gives { error: { code, message } }, with details only when given', () => {
    const err = new AetheriumError('not_found', 'VM "x" was not found');
    expect(err).toBeInstanceOf(Error);
    expect([err.name, err.status]).toEqual(['AetheriumError', 404]);
    expect(err.toJSON()).toStrictEqual({ error: { code: 'not_found', message: 'VM "x" was not found' } });
    expect(JSON.parse(JSON.stringify(err))).toStrictEqual({
      error: { code: 'not_found', message: 'VM "x" was not found' },
    });
    const detailed = new AetheriumError('conflict', 'busy', { task_id: 't1' });
    expect(detailed.toJSON()).toStrictEqual({
      error: { code: 'conflict', message: 'busy', details: { task_id: 't1' } },
    });
  });
});
