/**
 * Store: all durable state. The same SQL runs on Postgres (`pg`) and on PGlite (embedded), and the
 * same conformance suite (test/conformance/store.suite.ts) runs against both.
 *
 * Capacity accounting lives here because it must be atomic: `placeTask` reserves a VM's resources
 * on a worker with one conditional UPDATE inside the transaction that moves the task to
 * `scheduled`, so two schedulers can never overbook a worker; `releaseVm` gives them back exactly
 * once, whatever retries happen.
 */
import type {
  ApiKeyRecord,
  AuditEntry,
  AuditFilter,
  Execution,
  IdempotencyClaim,
  IdempotencyRecord,
  JoinTokenRecord,
  PlacementRecord,
  Task,
  TaskFilter,
  TaskStatus,
  Vm,
  VmFilter,
  VmPhases,
  VmStatus,
  Worker,
  WorkerFilter,
  WorkerMetricSample,
  WorkerRegistration,
  WorkerResources,
  WorkerStatus,
} from '../domain/index.ts';

export type VmPatch = Partial<Pick<Vm, 'status' | 'error' | 'driver' | 'deleted_at' | 'worker_id'>>;
export type TaskPatch = Partial<
  Pick<Task, 'status' | 'worker_id' | 'result' | 'error' | 'placement' | 'retry_count' | 'started_at' | 'completed_at'>
>;

export type UnplacedDelete = { outcome: 'deleted'; vm: Vm; cancelled: Task[] } | { outcome: 'placed' | 'not_found' };

/** A worker's timeline: from `since` to `until`, one averaged sample per step. */
export interface HistoryQuery {
  since: Date;
  until: Date;
  stepSeconds: number;
}

/** What the metrics history keeps: raw samples for a while, then one average per step. */
export interface HistoryPolicy {
  now: Date;
  rawRetentionMs: number;
  downsampledRetentionMs: number;
  stepSeconds: number;
}

export interface CompactionReport {
  rolled_up: number;
  raw_deleted: number;
  rollups_deleted: number;
}

export type PlacementOutcome = 'placed' | 'task_not_pending' | 'insufficient_capacity';

/** One placement of a batch (`placeTasks`): the task, its VM, and the worker and driver chosen. */
export interface BatchPlacement {
  task_id: string;
  vm_id: string;
  worker_id: string;
  driver: string;
  placement: PlacementRecord;
}

export interface Store {
  readonly kind: 'pglite' | 'postgres';
  /** Applies pending migrations under an advisory lock; returns the versions it applied. */
  migrate(): Promise<number[]>;
  ping(): Promise<void>;
  close(): Promise<void>;

  // ── workers ──────────────────────────────────────────────────────────────────────────────────
  /** Inserts or refreshes a worker. A re-registering worker keeps its reservations and drain state. */
  upsertWorker(registration: WorkerRegistration, now: Date): Promise<{ worker: Worker; created: boolean }>;
  getWorker(id: string): Promise<Worker | null>;
  listWorkers(filter?: WorkerFilter): Promise<Worker[]>;
  /**
   * Heartbeat, in one statement: moves last_seen to `now`; an offline worker that beats again turns
   * active, and `was_offline` says so.
   */
  touchWorker(id: string, now: Date): Promise<(Worker & { was_offline: boolean }) | null>;
  setWorkerStatus(id: string, status: WorkerStatus, eligible?: boolean): Promise<Worker | null>;
  updateWorkerResources(id: string, resources: Partial<WorkerResources>): Promise<Worker | null>;
  /** Marks every worker whose TTL ran out as offline and returns them (the reaper). */
  markStaleWorkersOffline(now: Date): Promise<Worker[]>;
  deleteWorker(id: string): Promise<boolean>;
  recordWorkerMetrics(sample: WorkerMetricSample): Promise<void>;
  /** The newest raw samples first. */
  listWorkerMetrics(workerId: string, limit?: number): Promise<WorkerMetricSample[]>;
  /** A timeline oldest first, averaged per step, from raw samples and the downsampled history. */
  workerMetricHistory(workerId: string, query: HistoryQuery): Promise<WorkerMetricSample[]>;
  /** Downsamples the raw samples of every whole step, then drops what is past its retention. */
  compactWorkerMetrics(policy: HistoryPolicy): Promise<CompactionReport>;

  // ── vms ──────────────────────────────────────────────────────────────────────────────────────
  /**
   * Writes a VM and its `vm:create` task in one transaction. Fails with conflict on a duplicate live
   * name. With `ifAbsent`, a VM whose id exists already is left alone (its task is not written either)
   * and false returned; else a duplicate id throws. True when this call wrote them.
   */
  insertVmWithTask(vm: Vm, task: Task, ifAbsent?: boolean): Promise<boolean>;
  getVm(id: string): Promise<Vm | null>;
  /** The VMs of these ids, deleted ones included (as `getVm`), in no particular order; unknown ids are left out. */
  getVms(ids: readonly string[]): Promise<Vm[]>;
  /** A live (not deleted) VM by id or by name. */
  findVm(idOrName: string): Promise<Vm | null>;
  listVms(filter?: VmFilter): Promise<Vm[]>;
  /** Compare-and-set on the VM's status when `from` is given; null when nothing matched. */
  updateVm(id: string, patch: VmPatch, from?: readonly VmStatus[]): Promise<Vm | null>;
  /** Records when phases of a VM's start were reached (each given phase replaces its stored time). */
  recordVmPhases(id: string, phases: VmPhases): Promise<void>;
  /**
   * One transaction: a VM that no worker holds is marked deleted, its pending creates cancelled and
   * `deleteTask` (already completed) written, unless a placement got there first ('placed').
   */
  deleteUnplacedVm(vmId: string, deleteTask: Task, reason: string): Promise<UnplacedDelete>;

  // ── capacity ─────────────────────────────────────────────────────────────────────────────────
  /**
   * One transaction: the task goes pending → scheduled on `workerId`, the VM gets its worker and
   * driver, and the VM's requirements (from its own row) are reserved on the worker only if they fit.
   */
  placeTask(
    taskId: string,
    vmId: string,
    workerId: string,
    driver: string,
    placement: PlacementRecord,
  ): Promise<PlacementOutcome>;
  /**
   * `placeTask` for many at once, in ONE transaction, with the same guarantees: each task goes pending
   * → scheduled, each VM is reserved exactly once, only on an active, eligible worker, never
   * overbooking it. Per worker, the batch's placements are taken in batch order for as long as they
   * fit; from the first that does not, the rest of that worker's are `insufficient_capacity` (the
   * others still commit). Answers one outcome per entry, in order: a task not pending, or a VM that
   * is gone, deleted or reserved already (or named before in the batch), is `task_not_pending`; an
   * unknown, inactive or ineligible worker, or no room, `insufficient_capacity`. With `placedAt`, the
   * placed VMs' `placed` phase is that time, written in the same transaction.
   */
  placeTasks(batch: readonly BatchPlacement[], placedAt?: Date): Promise<PlacementOutcome[]>;
  /** Per worker, its `vm:create` tasks scheduled or running (the scheduler's creates in flight); absent: none. */
  countCreatesInFlight(): Promise<Map<string, number>>;
  /** Returns a VM's reservation to its worker. Idempotent: only the first call releases anything. */
  releaseVm(vmId: string): Promise<boolean>;
  /**
   * Puts a scheduled `vm:create` task (queued, or waiting for its retry) back to pending, releasing
   * its reservation, so that it is placed again (worker dead or draining); with `refused`, also one its
   * worker holds and refuses, which then joins the task's excluded workers. Null when it cannot.
   */
  unplaceTask(taskId: string, reason: string, refused?: boolean): Promise<Task | null>;

  // ── tasks ────────────────────────────────────────────────────────────────────────────────────
  /** With `ifAbsent`, a task whose id exists is left alone and false returned; else a duplicate throws. */
  insertTask(task: Task, ifAbsent?: boolean): Promise<boolean>;
  getTask(id: string): Promise<Task | null>;
  listTasks(filter?: TaskFilter): Promise<Task[]>;
  /**
   * Applies `patch` only while the task's status is one of `from` (when given): the compare-and-set
   * that makes every step idempotent. Returns the updated task, or null when nothing matched.
   */
  updateTask(id: string, patch: TaskPatch, from?: readonly TaskStatus[]): Promise<Task | null>;
  /** Oldest pending tasks first, for the scheduler. */
  listPendingTasks(limit: number): Promise<Task[]>;
  /** Scheduled tasks not touched since `before`: their queue message may have been lost. */
  listStaleScheduledTasks(before: Date, limit: number): Promise<Task[]>;
  countTasksByStatus(): Promise<Record<TaskStatus, number>>;

  // ── drain and cancel ─────────────────────────────────────────────────────────────────────────
  /** Starts or restarts a drain: status draining, ineligible, from this statement on. */
  startDrain(id: string, drain: { deadline: Date | null; message: string | null }, now: Date): Promise<Worker | null>;
  /** Ends any drain; the worker takes placements again (an offline worker stays offline). */
  activateWorker(id: string): Promise<Worker | null>;
  setWorkerEligibility(id: string, eligible: boolean): Promise<Worker | null>;
  /** True for exactly one caller once the drain's deadline has passed: it stops the VMs left. */
  claimDrainEnforcement(id: string, now: Date): Promise<boolean>;
  /** True for exactly one caller once no live VM is left on the draining worker. */
  markDrained(id: string, now: Date): Promise<boolean>;
  /** True for exactly one caller per membership change, however many replicas saw it. */
  announceWorker(id: string, change: 'joined' | 'left'): Promise<boolean>;
  /** Flags a running task for cancellation (the worker holding it aborts it); null when not running. */
  requestCancel(id: string, now: Date): Promise<Task | null>;

  // ── executions ───────────────────────────────────────────────────────────────────────────────
  insertExecution(execution: Execution): Promise<void>;
  listExecutions(vmId: string, limit?: number): Promise<Execution[]>;

  // ── API keys and audit ───────────────────────────────────────────────────────────────────────
  /** Writes a key (its hash, never the secret). Fails with conflict on a duplicate live (unrevoked) name. */
  insertApiKey(key: ApiKeyRecord): Promise<void>;
  /** A key by id, revoked and expired ones included: expiry and revocation are the caller's to check. */
  getApiKey(id: string): Promise<ApiKeyRecord | null>;
  /** Newest first; revoked keys only with `include_revoked`. Expired keys are listed like any other. */
  listApiKeys(options?: { include_revoked?: boolean }): Promise<ApiKeyRecord[]>;
  /**
   * Compare-and-set: revokes the live key whose id (preferred) or name is `idOrName` and returns it;
   * null when no live key matched, so a key is revoked once, however many callers race.
   */
  revokeApiKey(idOrName: string, now: Date): Promise<ApiKeyRecord | null>;
  /**
   * Records that a key was used: sets last_used_at to `now`, but writes only when it is unset or at
   * least 60 s old (it runs on every request; the throttle is in the statement's WHERE).
   */
  touchApiKey(id: string, now: Date): Promise<void>;
  /** How many keys are not revoked (expired ones included), for the bootstrap-once rule. */
  countApiKeys(): Promise<number>;
  /** Appends to the audit log; `at` defaults to the database's clock. */
  insertAudit(entry: Omit<AuditEntry, 'id' | 'at'> & { at?: Date }): Promise<void>;
  /**
   * Newest first (by id). `limit` defaults to 100 and is clamped to 1..1000; pass the last id of a
   * page as `before_id` for the next one.
   */
  listAudit(filter?: AuditFilter): Promise<AuditEntry[]>;

  // ── idempotency keys (POST /vms) ─────────────────────────────────────────────────────────────
  /**
   * Atomically records `claim` for (scope, key) unless a live record holds the key: inserts it (or
   * replaces a record that expired at `claim.now`) and returns it with `created: true`, or returns
   * the live record untouched with `created: false`. Of N concurrent claims of one key exactly one
   * is created. The record lives until `now + ttl_ms`.
   */
  claimIdempotencyKey(claim: IdempotencyClaim): Promise<{ record: IdempotencyRecord; created: boolean }>;
  /** Deletes records expired at `now` (at most `limit`, default 10,000); returns how many. */
  pruneIdempotencyKeys(now: Date, limit?: number): Promise<number>;

  // ── joining and certificate revocation (the agent channel) ───────────────────────────────────
  /** Writes a join token (its hash, never the secret). */
  createJoinToken(token: JoinTokenRecord): Promise<void>;
  /** Newest first, every state included (used up, expired, revoked). */
  listJoinTokens(): Promise<JoinTokenRecord[]>;
  getJoinToken(id: string): Promise<JoinTokenRecord | null>;
  /** Compare-and-set: the token, revoked at `at`; null when it is unknown or revoked already. */
  revokeJoinToken(id: string, at: Date): Promise<JoinTokenRecord | null>;
  /**
   * One use of the token by `workerId`, in one conditional UPDATE: it succeeds only while the token
   * has uses left, has not expired at `now` and is not revoked, so of N concurrent joins exactly as
   * many succeed as it had uses left. Null when the token is unknown or cannot be used.
   */
  useJoinToken(id: string, workerId: string, now: Date): Promise<JoinTokenRecord | null>;
  /**
   * From now on the worker's certificates issued at or before `before` are refused. An upsert that
   * keeps the later cut-off of the stored one and this one; returns the cut-off in force.
   */
  revokeWorkerCertificates(workerId: string, before: Date, by?: string | null): Promise<Date>;
  /** The cut-off: a certificate of this worker issued at or before it is refused. Null: none revoked. */
  workerCertificatesRevokedBefore(workerId: string): Promise<Date | null>;
  /** Every worker's cut-off at once (worker id → cut-off), for a replica's periodic check of its sessions. */
  listWorkerCertificateRevocations(): Promise<Map<string, Date>>;
}
