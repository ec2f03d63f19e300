/**
 * What the etcd and Consul registries keep about a worker, whatever the encoding (one JSON value in
 * etcd, one meta entry per field in Consul), plus the shared rules: how a registration becomes a
 * record, how a record is reported, and how filters match.
 */
import {
  invalid,
  WORKER_STATUSES,
  type WorkerFilter,
  type WorkerRegistration,
  type WorkerStatus,
} from '../../domain/index.ts';
import type { RegisteredWorker } from '../../ports/service-registry.ts';

export interface WorkerRecord {
  id: string;
  hostname: string;
  address: string;
  zone: string;
  labels: Record<string, string>;
  capabilities: string[];
  cpu_cores: number;
  memory_mb: number;
  disk_gb: number;
  max_vms: number;
  ttl_seconds: number;
  metadata: Record<string, unknown>;
  status: WorkerStatus;
  eligible: boolean;
  started_at: Date;
  /** When this registration was (last) made. */
  registered_at: Date;
  /** The last heartbeat the writer recorded, by the writer's clock. */
  last_seen: Date;
}

export function isWorkerStatus(value: unknown): value is WorkerStatus {
  return typeof value === 'string' && (WORKER_STATUSES as readonly string[]).includes(value);
}

/** Refuses what no backend could store sensibly; the backends add their own limits. */
export function validateRegistration(reg: WorkerRegistration): void {
  if (typeof reg.id !== 'string' || reg.id.length === 0) throw invalid('worker id must be a non-empty string');
  if (/[\s/]/.test(reg.id)) throw invalid(`worker id ${JSON.stringify(reg.id)} must not contain "/" or white space`);
  for (const key of ['cpu_cores', 'memory_mb', 'disk_gb', 'max_vms', 'ttl_seconds'] as const) {
    const value = reg[key];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw invalid(`worker ${reg.id}: ${key} must be a finite, non-negative number (got ${String(value)})`);
    }
  }
}

/** The lease / check TTL in whole seconds: the worker's own, else the registry's default. */
export function ttlFor(ttlSeconds: number, fallbackSeconds: number): number {
  const ttl = ttlSeconds > 0 ? ttlSeconds : fallbackSeconds;
  return Math.max(1, Math.ceil(ttl));
}

/**
 * A registration becomes a record. Like the built-in registry, a worker that registers again keeps
 * its drain state and eligibility, and an offline one comes back active.
 */
export function recordFromRegistration(
  reg: WorkerRegistration,
  now: Date,
  previous: WorkerRecord | null,
): WorkerRecord {
  return {
    id: reg.id,
    hostname: reg.hostname,
    address: reg.address,
    zone: reg.zone ?? '',
    labels: { ...(reg.labels ?? {}) },
    capabilities: [...(reg.capabilities ?? [])],
    cpu_cores: reg.cpu_cores,
    memory_mb: reg.memory_mb,
    disk_gb: reg.disk_gb,
    max_vms: reg.max_vms,
    ttl_seconds: reg.ttl_seconds,
    metadata: { ...(reg.metadata ?? {}) },
    status: previous && previous.status !== 'offline' ? previous.status : 'active',
    eligible: previous?.eligible ?? true,
    started_at: reg.started_at ?? previous?.started_at ?? now,
    registered_at: now,
    last_seen: now,
  };
}

export function toRegisteredWorker(record: WorkerRecord, healthy: boolean): RegisteredWorker {
  return {
    id: record.id,
    hostname: record.hostname,
    address: record.address,
    zone: record.zone,
    labels: record.labels,
    capabilities: record.capabilities,
    cpu_cores: record.cpu_cores,
    memory_mb: record.memory_mb,
    disk_gb: record.disk_gb,
    max_vms: record.max_vms,
    ttl_seconds: record.ttl_seconds,
    metadata: record.metadata,
    started_at: record.started_at,
    status: record.status,
    eligible: record.eligible,
    healthy: healthy && record.status !== 'offline',
    last_seen: record.last_seen,
  };
}

/** The same semantics as the store's filter: equality on status and zone, containment on labels and capabilities. */
export function matchesFilter(
  worker: Pick<RegisteredWorker, 'status' | 'zone' | 'labels' | 'capabilities'>,
  filter: WorkerFilter,
): boolean {
  if (filter.status !== undefined && worker.status !== filter.status) return false;
  if (filter.zone !== undefined && worker.zone !== filter.zone) return false;
  for (const [key, value] of Object.entries(filter.labels ?? {})) {
    if (worker.labels[key] !== value) return false;
  }
  for (const capability of filter.capabilities ?? []) {
    if (!worker.capabilities.includes(capability)) return false;
  }
  return true;
}

export const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
