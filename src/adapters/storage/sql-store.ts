/**
 * The Store over SQL: one implementation, the same statements on Postgres and on PGlite. The queries
 * live beside it, one module per table (worker-rows, vm-rows, task-rows, execution-rows, token-rows,
 * audit-rows, join-token-rows, idempotency-rows), one for capacity accounting (capacity) and one for
 * the scheduler's batches (placement-batch).
 */
import type {
  ApiKeyRecord,
  AuditEntry,
  AuditFilter,
  Execution,
  IdempotencyClaim,
  IdempotencyRecord,
  JoinTokenRecord,
  Task,
  TaskFilter,
  TaskStatus,
  Vm,
  VmFilter,
  VmPhases,
  VmStatus,
  PlacementRecord,
  Worker,
  WorkerFilter,
  WorkerMetricSample,
  WorkerRegistration,
  WorkerResources,
  WorkerStatus,
} from '../../domain/index.ts';
import type {
  BatchPlacement,
  CompactionReport,
  HistoryPolicy,
  HistoryQuery,
  PlacementOutcome,
  Store,
  TaskPatch,
  UnplacedDelete,
  VmPatch,
} from '../../ports/store.ts';
import * as history from './metric-history-rows.ts';
import * as audit from './audit-rows.ts';
import * as capacity from './capacity.ts';
import * as executions from './execution-rows.ts';
import * as idempotency from './idempotency-rows.ts';
import * as joins from './join-token-rows.ts';
import { migrate, migrateDown, type MigratorOptions } from './migrator.ts';
import * as batches from './placement-batch.ts';
import type { SqlClient } from './sql-client.ts';
import * as tasks from './task-rows.ts';
import * as tokens from './token-rows.ts';
import * as vms from './vm-rows.ts';
import * as workers from './worker-rows.ts';

export class SqlStore implements Store {
  readonly kind: 'pglite' | 'postgres';

  constructor(
    private readonly client: SqlClient,
    private readonly migrations: MigratorOptions = {},
  ) {
    this.kind = client.kind;
  }

  migrate(): Promise<number[]> {
    return migrate(this.client, this.migrations);
  }

  /** Reverts migrations above `targetVersion` (not part of the Store port: for tests and operators). */
  migrateDown(targetVersion: number): Promise<number[]> {
    return migrateDown(this.client, targetVersion, this.migrations);
  }

  async ping(): Promise<void> {
    await this.client.query('SELECT 1');
  }

  close(): Promise<void> {
    return this.client.close();
  }

  // ── drain and cancel ─────────────────────────────────────────────────────────────────────────
  startDrain(id: string, drain: { deadline: Date | null; message: string | null }, now: Date): Promise<Worker | null> {
    return workers.startDrain(this.client, id, drain, now);
  }

  activateWorker(id: string): Promise<Worker | null> {
    return workers.activateWorker(this.client, id);
  }

  setWorkerEligibility(id: string, eligible: boolean): Promise<Worker | null> {
    return workers.setWorkerEligibility(this.client, id, eligible);
  }

  claimDrainEnforcement(id: string, now: Date): Promise<boolean> {
    return workers.claimDrainEnforcement(this.client, id, now);
  }

  markDrained(id: string, now: Date): Promise<boolean> {
    return workers.markDrained(this.client, id, now);
  }

  announceWorker(id: string, change: 'joined' | 'left'): Promise<boolean> {
    return workers.announceWorker(this.client, id, change);
  }

  requestCancel(id: string, now: Date): Promise<Task | null> {
    return tasks.requestCancel(this.client, id, now);
  }

  // ── workers ──────────────────────────────────────────────────────────────────────────────────
  upsertWorker(registration: WorkerRegistration, now: Date): Promise<{ worker: Worker; created: boolean }> {
    return workers.upsertWorker(this.client, registration, now);
  }
  getWorker(id: string): Promise<Worker | null> {
    return workers.getWorker(this.client, id);
  }
  listWorkers(filter?: WorkerFilter): Promise<Worker[]> {
    return workers.listWorkers(this.client, filter);
  }
  touchWorker(id: string, now: Date): Promise<(Worker & { was_offline: boolean }) | null> {
    return workers.touchWorker(this.client, id, now);
  }
  setWorkerStatus(id: string, status: WorkerStatus, eligible?: boolean): Promise<Worker | null> {
    return workers.setWorkerStatus(this.client, id, status, eligible);
  }
  updateWorkerResources(id: string, resources: Partial<WorkerResources>): Promise<Worker | null> {
    return workers.updateWorkerResources(this.client, id, resources);
  }
  markStaleWorkersOffline(now: Date): Promise<Worker[]> {
    return workers.markStaleWorkersOffline(this.client, now);
  }
  deleteWorker(id: string): Promise<boolean> {
    return workers.deleteWorker(this.client, id);
  }
  recordWorkerMetrics(sample: WorkerMetricSample): Promise<void> {
    return workers.recordWorkerMetrics(this.client, sample);
  }
  listWorkerMetrics(workerId: string, limit?: number): Promise<WorkerMetricSample[]> {
    return workers.listWorkerMetrics(this.client, workerId, limit);
  }
  workerMetricHistory(workerId: string, query: HistoryQuery): Promise<WorkerMetricSample[]> {
    return history.workerMetricHistory(this.client, workerId, query);
  }
  compactWorkerMetrics(policy: HistoryPolicy): Promise<CompactionReport> {
    return history.compactWorkerMetrics(this.client, policy);
  }

  // ── vms ──────────────────────────────────────────────────────────────────────────────────────
  insertVmWithTask(vm: Vm, task: Task, ifAbsent = false): Promise<boolean> {
    return this.client.transaction(async (tx) => {
      if (!(await vms.insertVm(tx, vm, ifAbsent))) return false;
      await tasks.insertTask(tx, task);
      return true;
    });
  }
  getVm(id: string): Promise<Vm | null> {
    return vms.getVm(this.client, id);
  }
  getVms(ids: readonly string[]): Promise<Vm[]> {
    return batches.getVms(this.client, ids);
  }
  findVm(idOrName: string): Promise<Vm | null> {
    return vms.findVm(this.client, idOrName);
  }
  listVms(filter?: VmFilter): Promise<Vm[]> {
    return vms.listVms(this.client, filter);
  }
  updateVm(id: string, patch: VmPatch, from?: readonly VmStatus[]): Promise<Vm | null> {
    return vms.updateVm(this.client, id, patch, from);
  }
  recordVmPhases(id: string, phases: VmPhases): Promise<void> {
    return vms.recordVmPhases(this.client, id, phases);
  }
  deleteUnplacedVm(vmId: string, deleteTask: Task, reason: string): Promise<UnplacedDelete> {
    return capacity.deleteUnplacedVm(this.client, vmId, deleteTask, reason);
  }

  // ── capacity ─────────────────────────────────────────────────────────────────────────────────
  placeTask(
    taskId: string,
    vmId: string,
    workerId: string,
    driver: string,
    placement: PlacementRecord,
  ): Promise<PlacementOutcome> {
    return capacity.placeTask(this.client, taskId, vmId, workerId, driver, placement);
  }
  placeTasks(batch: readonly BatchPlacement[], placedAt?: Date): Promise<PlacementOutcome[]> {
    return batches.placeTasks(this.client, batch, placedAt);
  }
  countCreatesInFlight(): Promise<Map<string, number>> {
    return batches.countCreatesInFlight(this.client);
  }
  releaseVm(vmId: string): Promise<boolean> {
    return capacity.releaseVm(this.client, vmId);
  }
  unplaceTask(taskId: string, reason: string, refused = false): Promise<Task | null> {
    return capacity.unplaceTask(this.client, taskId, reason, refused);
  }

  // ── tasks ────────────────────────────────────────────────────────────────────────────────────
  insertTask(task: Task, ifAbsent = false): Promise<boolean> {
    return tasks.insertTask(this.client, task, ifAbsent);
  }
  getTask(id: string): Promise<Task | null> {
    return tasks.getTask(this.client, id);
  }
  listTasks(filter?: TaskFilter): Promise<Task[]> {
    return tasks.listTasks(this.client, filter);
  }
  updateTask(id: string, patch: TaskPatch, from?: readonly TaskStatus[]): Promise<Task | null> {
    return tasks.updateTask(this.client, id, patch, from);
  }
  listPendingTasks(limit: number): Promise<Task[]> {
    return tasks.listPendingTasks(this.client, limit);
  }
  listStaleScheduledTasks(before: Date, limit: number): Promise<Task[]> {
    return tasks.listStaleScheduledTasks(this.client, before, limit);
  }
  countTasksByStatus(): Promise<Record<TaskStatus, number>> {
    return tasks.countTasksByStatus(this.client);
  }

  // ── executions ───────────────────────────────────────────────────────────────────────────────
  insertExecution(execution: Execution): Promise<void> {
    return executions.insertExecution(this.client, execution);
  }
  listExecutions(vmId: string, limit?: number): Promise<Execution[]> {
    return executions.listExecutions(this.client, vmId, limit);
  }

  // ── API keys and audit ───────────────────────────────────────────────────────────────────────
  insertApiKey(key: ApiKeyRecord): Promise<void> {
    return tokens.insertApiKey(this.client, key);
  }
  getApiKey(id: string): Promise<ApiKeyRecord | null> {
    return tokens.getApiKey(this.client, id);
  }
  listApiKeys(options?: { include_revoked?: boolean }): Promise<ApiKeyRecord[]> {
    return tokens.listApiKeys(this.client, options);
  }
  revokeApiKey(idOrName: string, now: Date): Promise<ApiKeyRecord | null> {
    return tokens.revokeApiKey(this.client, idOrName, now);
  }
  touchApiKey(id: string, now: Date): Promise<void> {
    return tokens.touchApiKey(this.client, id, now);
  }
  countApiKeys(): Promise<number> {
    return tokens.countApiKeys(this.client);
  }
  insertAudit(entry: Omit<AuditEntry, 'id' | 'at'> & { at?: Date }): Promise<void> {
    return audit.insertAudit(this.client, entry);
  }
  listAudit(filter?: AuditFilter): Promise<AuditEntry[]> {
    return audit.listAudit(this.client, filter);
  }

  // ── idempotency keys ─────────────────────────────────────────────────────────────────────────
  claimIdempotencyKey(claim: IdempotencyClaim): Promise<{ record: IdempotencyRecord; created: boolean }> {
    return idempotency.claimIdempotencyKey(this.client, claim);
  }
  pruneIdempotencyKeys(now: Date, limit = 10_000): Promise<number> {
    return idempotency.pruneIdempotencyKeys(this.client, now, limit);
  }

  // ── joining and certificate revocation ───────────────────────────────────────────────────────
  createJoinToken(token: JoinTokenRecord): Promise<void> {
    return joins.createJoinToken(this.client, token);
  }
  listJoinTokens(): Promise<JoinTokenRecord[]> {
    return joins.listJoinTokens(this.client);
  }
  getJoinToken(id: string): Promise<JoinTokenRecord | null> {
    return joins.getJoinToken(this.client, id);
  }
  revokeJoinToken(id: string, at: Date): Promise<JoinTokenRecord | null> {
    return joins.revokeJoinToken(this.client, id, at);
  }
  useJoinToken(id: string, workerId: string, now: Date): Promise<JoinTokenRecord | null> {
    return joins.useJoinToken(this.client, id, workerId, now);
  }
  revokeWorkerCertificates(workerId: string, before: Date, by: string | null = null): Promise<Date> {
    return joins.revokeWorkerCertificates(this.client, workerId, before, by);
  }
  listWorkerCertificateRevocations(): Promise<Map<string, Date>> {
    return joins.listWorkerCertificateRevocations(this.client);
  }

  workerCertificatesRevokedBefore(workerId: string): Promise<Date | null> {
    return joins.workerCertificatesRevokedBefore(this.client, workerId);
  }
}
