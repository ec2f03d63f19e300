/**
 * ServiceRegistry: worker registration, TTL health, heartbeat, metadata, resources, filters, watch.
 * The method names follow the original Go interface (Register, Deregister, UpdateStatus,
 * UpdateResources, Heartbeat, GetWorker, ListWorkers, ListWorkersWithFilter, Watch).
 */
import type { Worker, WorkerFilter, WorkerRegistration, WorkerResources, WorkerStatus } from '../domain/index.ts';

export interface RegisteredWorker extends WorkerRegistration {
  status: WorkerStatus;
  eligible: boolean;
  healthy: boolean;
  last_seen: Date;
}

export type WorkerEventType = 'joined' | 'left' | 'updated';

export interface WorkerEvent {
  type: WorkerEventType;
  worker_id: string;
  worker: RegisteredWorker | null;
}

export interface ServiceRegistry {
  readonly kind: string;
  register(worker: WorkerRegistration): Promise<void>;
  deregister(workerId: string): Promise<void>;
  updateStatus(workerId: string, status: WorkerStatus): Promise<void>;
  updateResources(workerId: string, resources: WorkerResources): Promise<void>;
  heartbeat(workerId: string): Promise<void>;
  getWorker(workerId: string): Promise<RegisteredWorker | null>;
  listWorkers(): Promise<RegisteredWorker[]>;
  listWorkersWithFilter(filter: WorkerFilter): Promise<RegisteredWorker[]>;
  /** Worker joins, leaves and changes until `signal` aborts. */
  watch(signal: AbortSignal): AsyncIterable<WorkerEvent>;
  close(): Promise<void>;
}

export type { Worker };
