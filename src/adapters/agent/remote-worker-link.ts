/**
 * WorkerLink over the agent channel: what `aetherium worker` uses in a cluster. Each method is a
 * call the control plane answers with its own DirectWorkerLink, after checking it against this
 * worker's certificate. Task deliveries and cancels arrive as pushes.
 *
 * On a new connection (a dropped one, or another replica after a failover) the link resumes by
 * itself before anything else goes out: it registers again with `resume` (no restart to announce,
 * and the replica now holding the channel takes over the registry lease), asks for deliveries
 * again if it was consuming, and watches cancels again. Deliveries in hand when the connection
 * dropped finish locally; their outcomes are calls that wait for the next connection.
 */
import type {
  DrainRequest,
  Execution,
  Vm,
  WorkerMetricSample,
  WorkerRegistration,
  WorkerResources,
} from '../../domain/index.ts';
import type { ConsumeOptions, QueueConsumer, QueuedTask, TaskProcessor } from '../../ports/task-queue.ts';
import type {
  Assignments,
  Claim,
  DrainProgress,
  HeartbeatAck,
  OutcomeAck,
  TaskOutcome,
  VmReport,
  WorkerLink,
} from '../../ports/worker-link.ts';
import type { AgentConnection } from './agent-connection.ts';

interface Consuming {
  workerId: string;
  processor: TaskProcessor;
  options: ConsumeOptions;
  inFlight: Set<Promise<void>>;
}

export class RemoteWorkerLink implements WorkerLink {
  readonly kind = 'agent';
  private registration: WorkerRegistration | null = null;
  private consuming: Consuming | null = null;
  private readonly cancelListeners = new Set<(taskId: string, reason: string) => void>();
  private cancelWorker: string | null = null;
  private readonly aborts = new Map<number, AbortController>();

  constructor(private readonly connection: AgentConnection) {
    connection.on('deliver', (frame) => this.onDeliver(frame.delivery, frame.task));
    connection.on('abort', (frame) => this.aborts.get(frame.delivery)?.abort());
    connection.on('cancel', (frame) => {
      for (const listener of this.cancelListeners) listener(frame.task_id, frame.reason);
    });
    connection.onConnect(() => this.resume());
  }

  private async resume(): Promise<void> {
    const c = this.connection;
    if (this.registration) await c.hookCall('register', [this.registration, { resume: true }]);
    if (this.cancelWorker) await c.hookCall('watchCancels', [this.cancelWorker]);
    if (this.consuming) await c.hookCall('consume', [this.consuming.workerId, this.consuming.options]);
  }

  private onDeliver(delivery: number, task: QueuedTask): void {
    const generation = this.connection.generation;
    const consuming = this.consuming;
    if (!consuming) {
      // Not consuming (stopping): hand it straight back; the replica queues it again.
      this.connection.sendNow({ t: 'done', delivery }, generation);
      return;
    }
    const abort = new AbortController();
    this.aborts.set(delivery, abort);
    const run = consuming
      .processor(task, abort.signal)
      .catch(() => undefined)
      .finally(() => {
        this.aborts.delete(delivery);
        consuming.inFlight.delete(run);
        // Delivery ids are per connection: a delivery of an earlier one is not answered on this one.
        this.connection.sendNow({ t: 'done', delivery }, generation);
      });
    consuming.inFlight.add(run);
  }

  async register(registration: WorkerRegistration, options: { resume?: boolean } = {}): Promise<{ created: boolean }> {
    const answer = await this.connection.call<{ created: boolean }>('register', [
      registration,
      { resume: options.resume ?? false },
    ]);
    this.registration = registration;
    return answer;
  }

  heartbeat(workerId: string): Promise<HeartbeatAck | null> {
    return this.connection.call('heartbeat', [workerId]);
  }

  async deregister(workerId: string): Promise<void> {
    await this.connection.call('deregister', [workerId]);
    this.registration = null;
  }

  reportResources(workerId: string, resources: WorkerResources): Promise<void> {
    return this.connection.call('reportResources', [workerId, resources]);
  }

  recordMetrics(sample: WorkerMetricSample): Promise<void> {
    return this.connection.call('recordMetrics', [sample]);
  }

  consume(workerId: string, processor: TaskProcessor, options: ConsumeOptions): QueueConsumer {
    const consuming: Consuming = { workerId, processor, options, inFlight: new Set() };
    this.consuming = consuming;
    void this.connection.call('consume', [workerId, options]).catch(() => undefined); // resumed on connect
    return {
      pause: async () => {
        await this.connection.call('pauseConsume', [workerId]);
      },
      resume: () => void this.connection.call('resumeConsume', [workerId]).catch(() => undefined),
      close: async () => {
        if (this.consuming === consuming) this.consuming = null;
        await this.connection.call('stopConsume', [workerId]).catch(() => undefined);
        await Promise.allSettled([...consuming.inFlight]);
      },
    };
  }

  assignments(workerId: string): Promise<Assignments> {
    return this.connection.call('assignments', [workerId]);
  }

  claimTask(workerId: string, taskId: string, resume: boolean): Promise<Claim | null> {
    return this.connection.call('claimTask', [workerId, taskId, resume]);
  }

  reportOutcome(workerId: string, taskId: string, outcome: TaskOutcome): Promise<OutcomeAck> {
    return this.connection.call('reportOutcome', [workerId, taskId, outcome]);
  }

  reportVm(workerId: string, vmId: string, report: VmReport): Promise<Vm | null> {
    return this.connection.call('reportVm', [workerId, vmId, report]);
  }

  recordExecution(workerId: string, execution: Execution): Promise<void> {
    return this.connection.call('recordExecution', [workerId, execution]);
  }

  requestDrain(workerId: string, request: DrainRequest): Promise<DrainProgress> {
    return this.connection.call('requestDrain', [workerId, request]);
  }

  drainProgress(workerId: string): Promise<DrainProgress | null> {
    return this.connection.call('drainProgress', [workerId]);
  }

  onCancel(workerId: string, listener: (taskId: string, reason: string) => void): () => void {
    this.cancelListeners.add(listener);
    if (this.cancelWorker !== workerId) {
      this.cancelWorker = workerId;
      void this.connection.call('watchCancels', [workerId]).catch(() => undefined); // resumed on connect
    }
    return () => {
      this.cancelListeners.delete(listener);
    };
  }
}
