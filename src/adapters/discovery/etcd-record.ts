/**
 * The etcd value of one worker: the whole record as JSON (version 1), dates as ISO strings. Values
 * that are not ours (other software writing under the prefix, a future version) read as `null`.
 */
import type { WorkerRecord } from './worker-record.ts';
import { isWorkerStatus } from './worker-record.ts';

interface StoredV1 extends Omit<WorkerRecord, 'started_at' | 'registered_at' | 'last_seen'> {
  v: 1;
  started_at: string;
  registered_at: string;
  last_seen: string;
}

export function encodeRecord(record: WorkerRecord): string {
  const stored: StoredV1 = {
    v: 1,
    ...record,
    started_at: record.started_at.toISOString(),
    registered_at: record.registered_at.toISOString(),
    last_seen: record.last_seen.toISOString(),
  };
  return JSON.stringify(stored);
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function date(value: unknown): Date | null {
  if (typeof value !== 'string') return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

export function decodeRecord(raw: Buffer | string): WorkerRecord | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString());
  } catch {
    return null;
  }
  if (!isRecord(parsed) || parsed.v !== 1 || typeof parsed.id !== 'string' || !isWorkerStatus(parsed.status))
    return null;
  const started = date(parsed.started_at);
  const registered = date(parsed.registered_at);
  const lastSeen = date(parsed.last_seen);
  if (!started || !registered || !lastSeen) return null;
  const labels = isRecord(parsed.labels) ? (parsed.labels as Record<string, string>) : {};
  const capabilities = Array.isArray(parsed.capabilities)
    ? parsed.capabilities.filter((c): c is string => typeof c === 'string')
    : [];
  return {
    id: parsed.id,
    hostname: String(parsed.hostname ?? ''),
    address: String(parsed.address ?? ''),
    zone: String(parsed.zone ?? ''),
    labels,
    capabilities,
    cpu_cores: Number(parsed.cpu_cores ?? 0),
    memory_mb: Number(parsed.memory_mb ?? 0),
    disk_gb: Number(parsed.disk_gb ?? 0),
    max_vms: Number(parsed.max_vms ?? 0),
    ttl_seconds: Number(parsed.ttl_seconds ?? 0),
    metadata: isRecord(parsed.metadata) ? parsed.metadata : {},
    status: parsed.status,
    eligible: parsed.eligible !== false,
    started_at: started,
    registered_at: registered,
    last_seen: lastSeen,
  };
}
