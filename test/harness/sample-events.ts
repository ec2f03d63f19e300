/**
 * Valid events of the catalogue that carry a number, for the tests of the event buses and of the
 * live stream: order, exactly-once delivery and resume are checked on the number, filters on the
 * keys. Every event is built by its `evt.*` constructor, so it has the shape the catalogue gives.
 *
 * The number is in the event's own id: `worker-<n>` (worker events), `vm-<n>` (vm events) or
 * `task-<n>` (task events); `sampleNumber` reads it back. The other keys (the worker and VM of a
 * task, the worker of a VM) are null unless given.
 */
import { type ClusterEvent, type EventType, type NewEvent, evt, topicOf } from '../../src/domain/index.ts';

type TaskLike = Parameters<typeof evt.taskStarted>[0];
type WorkerLike = Parameters<typeof evt.workerJoined>[0];
type VmLike = Parameters<typeof evt.vmDeleted>[0];

export interface SampleKeys {
  worker_id?: string | null;
  vm_id?: string | null;
}

const AT = new Date('2025-01-01T00:00:00.000Z');

const workerOf = (n: number): WorkerLike => ({
  id: `worker-${n}`,
  hostname: `host-${n}`,
  zone: 'zone-a',
  status: 'active',
  eligible: true,
  capabilities: ['kvm'],
});

const vmOf = (n: number, keys: SampleKeys): VmLike => ({
  id: `vm-${n}`,
  name: `sample-${n}`,
  worker_id: keys.worker_id ?? null,
});

const taskOf = (n: number, status: TaskLike['status'], keys: SampleKeys): TaskLike => ({
  id: `task-${n}`,
  type: 'vm:execute',
  status,
  vm_id: keys.vm_id ?? null,
  worker_id: keys.worker_id ?? null,
  retry_count: 0,
});

/**
 * An event of `type` carrying `n` (see the top of the file). A task.completed carries a command's
 * result: nested, with integers, a fraction and a boolean that depend on `n`.
 */
export function sampleEvent(n: number, type: EventType = 'task.completed', keys: SampleKeys = {}): NewEvent {
  switch (type) {
    case 'worker.joined':
      return evt.workerJoined(workerOf(n), 'sample');
    case 'worker.left':
      return evt.workerLeft(`worker-${n}`, 'sample', AT);
    case 'worker.updated':
      return evt.workerUpdated(workerOf(n), 'restarted');
    case 'worker.draining':
      return evt.workerDraining(`worker-${n}`, { deadline: null, force: n % 2 === 0, message: `sample ${n}` });
    case 'worker.drained':
      return evt.workerDrained(`worker-${n}`, AT, AT);
    case 'worker.activated':
      return evt.workerActivated(`worker-${n}`);
    case 'worker.resources':
      return evt.workerResources({
        id: `worker-${n}`,
        vm_count: 1,
        used_cpu_cores: 0.5,
        used_memory_mb: 256,
        used_disk_gb: 1,
      });
    case 'vm.created':
      return evt.vmCreated({ ...vmOf(n, keys), driver: 'process' });
    case 'vm.state_changed':
      return evt.vmStateChanged(vmOf(n, keys), 'starting', 'running', null);
    case 'vm.deleted':
      return evt.vmDeleted(vmOf(n, keys), 'sample');
    case 'task.created':
      return evt.taskCreated(taskOf(n, 'pending', keys), `sample-${n}`);
    case 'task.scheduled':
      return evt.taskScheduled(taskOf(n, 'scheduled', keys), { driver: 'process', score: 0.5 });
    case 'task.requeued':
      return evt.taskRequeued(taskOf(n, 'scheduled', keys), keys.worker_id ?? 'worker-gone', 'sample');
    case 'task.started':
      return evt.taskStarted(taskOf(n, 'running', keys));
    case 'task.retrying':
      return evt.taskRetrying(taskOf(n, 'scheduled', keys), 'sample', 100);
    case 'task.completed': {
      const result = {
        execution_id: `exec-${n}`,
        exit_code: Math.abs(n) % 256,
        stdout: `out ${n}\n`,
        stderr: '',
        timed_out: n % 2 !== 0,
        duration_ms: Math.abs(n) + 0.5,
      };
      return evt.taskCompleted({ ...taskOf(n, 'completed', keys), result });
    }
    case 'task.failed':
      return evt.taskFailed(taskOf(n, 'failed', keys), 'sample');
    case 'task.cancel_requested':
      return evt.taskCancelRequested(taskOf(n, 'running', keys), 'sample');
    case 'task.cancelled':
      return evt.taskCancelled(taskOf(n, 'cancelled', keys), 'sample');
  }
}

/** The number a sample event carries; throws on an event that is not a sample. */
export function sampleNumber(event: NewEvent | ClusterEvent): number {
  const data = event.data;
  const subject = 'task_id' in data ? data.task_id : 'vm_id' in data ? data.vm_id : data.worker_id;
  const match = new RegExp(`^${topicOf(event.type)}-(-?\\d+)$`).exec(subject ?? '');
  if (!match) throw new Error(`not a sample event: ${event.type} ${JSON.stringify(data)}`);
  return Number(match[1]);
}

const SENT_AT = 'sent_at=';

/**
 * A task.failed sample whose error says when it was sent (`sent_at=<ms since the epoch>`), for
 * latency measurements; `sentAtOf` reads it back, `sentAtInText` finds it in a raw frame.
 */
export function timedEvent(n: number, sentAt: number = Date.now(), keys: SampleKeys = {}): NewEvent {
  return evt.taskFailed(taskOf(n, 'failed', keys), `${SENT_AT}${sentAt}`);
}

export function sentAtOf(event: NewEvent | ClusterEvent): number {
  const sentAt = event.type === 'task.failed' ? sentAtInText(event.data.error) : null;
  if (sentAt === null) throw new Error(`not a timed event: ${event.type} ${JSON.stringify(event.data)}`);
  return sentAt;
}

/** The send time in one event as JSON text (or in a timed event's error), without parsing it all. */
export function sentAtInText(text: string): number | null {
  const at = text.indexOf(SENT_AT);
  if (at < 0) return null;
  const start = at + SENT_AT.length;
  let end = start;
  while (end < text.length && text.charCodeAt(end) >= 48 && text.charCodeAt(end) <= 57) end++;
  return end > start ? Number(text.slice(start, end)) : null;
}
