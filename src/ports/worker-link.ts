/**
 * WorkerLink: the worker agent's whole view of the cluster, and the only one. The agent holds no
 * Store, queue credentials or registry: it claims the tasks queued for it, reports what came of
 * them, reports its VMs, registers, heartbeats, and pushes resources and metrics. Every decision
 * (retry or fail, where a refused VM goes, when a drain is complete) is the control plane's.
 *
 * In `dev` the link is in-process; in a cluster it is the agent channel, which puts a certificate
 * per worker behind it. Every call names the worker, and a worker may touch only its own tasks
 * (queued for it, or delivered to it and since moved: then the answer is null or 'stale') and
 * its own VMs: a call about another worker's is refused with `forbidden`.
 */
import type {
  DrainRequest,
  DrainState,
  ErrorCode,
  Execution,
  Task,
  Vm,
  VmPhases,
  VmStatus,
  WorkerMetricSample,
  WorkerRegistration,
  WorkerResources,
  WorkerStatus,
} from '../domain/index.ts';
import type { ConsumeOptions, QueueConsumer, TaskProcessor } from './task-queue.ts';

/** What came of a task the worker claimed. */
export type TaskOutcome =
  | { kind: 'completed'; result: NonNullable<Task['result']> }
  /**
   * `retryable` comes from the error catalogue; the control plane decides with the retry budget.
   * `code` is the catalogue code when the error was one of ours: the task's error keeps it, so that
   * the API can answer with it (a conflict is a 409, not a driver failure).
   */
  | { kind: 'failed'; error: string; retryable: boolean; code?: ErrorCode }
  | { kind: 'cancelled'; reason: string }
  /** The host cannot take the VM (a create only): it is placed elsewhere, never here again. */
  | { kind: 'refused'; reason: string }
  /** The agent is shutting down: the task goes back as it was, for this worker to pick up again. */
  | { kind: 'interrupted' };

/** 'retrying': it will be sent again; 'final': it ended; 'stale': it had moved on without us. */
export type OutcomeAck = 'retrying' | 'final' | 'stale';

/** What the worker says about one of its VMs. */
export type VmReport =
  | { kind: 'status'; to: VmStatus; from?: readonly VmStatus[]; error?: string | null }
  /** starting → running: the VM can execute commands. */
  /** With the phases only the worker sees: the VMM launched, the guest agent answering. */
  | { kind: 'booted'; phases?: Pick<VmPhases, 'driver_started' | 'agent_ready'> }
  /** Gone from the host for good (deleted): its capacity is returned. */
  | { kind: 'deleted'; reason: string }
  /** Not on the host after a restart or a return: lost, its capacity is returned. */
  | { kind: 'lost'; error: string }
  /** It died by itself (init or VMM exited, out of memory): failed with the reason, capacity kept until deleted. */
  | { kind: 'died'; reason: string };

export interface Claim {
  task: Task;
  vm: Vm | null;
}

export interface HeartbeatAck {
  status: WorkerStatus;
  /** The control plane had declared this worker dead: its work may have moved, so reconcile. */
  was_offline: boolean;
}

export interface DrainProgress {
  status: WorkerStatus;
  drain: DrainState | null;
  vm_count: number;
}

export interface Assignments {
  /** Live VMs placed on this worker. */
  vms: Vm[];
  /** Tasks the control plane believes this worker is running. */
  running: Task[];
  /** Tasks waiting in this worker's queue. */
  scheduled: Task[];
}

export interface WorkerLink {
  readonly kind: string;
  /**
   * Registers or re-registers; `created` is false for a worker that was known before. `resume`:
   * the same agent process connecting again (a new channel, another replica), not a restart, so
   * there is nothing to announce.
   */
  register(registration: WorkerRegistration, options?: { resume?: boolean }): Promise<{ created: boolean }>;
  /** Null when the control plane no longer knows the worker: register again. */
  heartbeat(workerId: string): Promise<HeartbeatAck | null>;
  /** Leaving for good: offline, out of the registry, `worker.left`. */
  deregister(workerId: string): Promise<void>;
  reportResources(workerId: string, resources: WorkerResources): Promise<void>;
  recordMetrics(sample: WorkerMetricSample): Promise<void>;
  /** Delivers the tasks queued for this worker, one `processor` call each. */
  consume(workerId: string, processor: TaskProcessor, options: ConsumeOptions): QueueConsumer;
  assignments(workerId: string): Promise<Assignments>;
  /** scheduled → running (running → running with `resume`); null when the task is not for us now. */
  claimTask(workerId: string, taskId: string, resume: boolean): Promise<Claim | null>;
  reportOutcome(workerId: string, taskId: string, outcome: TaskOutcome): Promise<OutcomeAck>;
  reportVm(workerId: string, vmId: string, report: VmReport): Promise<Vm | null>;
  recordExecution(workerId: string, execution: Execution): Promise<void>;
  /** Asks the control plane to drain this worker; the control plane enforces it. */
  requestDrain(workerId: string, request: DrainRequest): Promise<DrainProgress>;
  drainProgress(workerId: string): Promise<DrainProgress | null>;
  /** Cancels asked for anywhere in the cluster, for tasks this worker holds. Returns unsubscribe. */
  onCancel(workerId: string, listener: (taskId: string, reason: string) => void): () => void;
}
