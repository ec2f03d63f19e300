/**
 * Idempotency keys (`Idempotency-Key` on `POST /vms`): the same key from the same caller within
 * the TTL answers with the VM and task recorded for it, never a second VM.
 *
 * The record is written before the VM, with the VM's and the task's ids chosen up front, and the
 * create that follows writes them only if absent. So every state a crash can leave is resumable: no
 * record (the request never started), a record without its VM (the request died in between: a retry
 * creates the VM then, with the recorded ids), or a record with its VM (a retry returns it).
 */
import { createHash } from 'node:crypto';

/** How long a key is remembered: a retry within this window gets the first answer's VM and task. */
export const IDEMPOTENCY_TTL_MS = 24 * 3_600_000;

export interface IdempotencyRecord {
  /** Who used the key (`key:<id>`, `jwt:<subject>`, `local`): two callers' keys never meet. */
  scope: string;
  key: string;
  /** `sha256:<hex>` of the canonical request: the same key with another request is refused. */
  fingerprint: string;
  vm_id: string;
  task_id: string;
  created_at: Date;
  /** The record is live while `now < expires_at`; a claim at or after it replaces the record. */
  expires_at: Date;
}

/** What a claim asks for: the record to write unless a live one holds the key already. */
export interface IdempotencyClaim {
  scope: string;
  key: string;
  fingerprint: string;
  vm_id: string;
  task_id: string;
  now: Date;
  ttl_ms: number;
}

/** JSON with every object's keys sorted and undefined members left out: one text per value. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/**
 * The fingerprint of a request: `sha256:<hex>` over what it does (`operation`, e.g. `vm:create`)
 * and its canonical body, so that key order and spelled-out defaults do not make two requests differ.
 */
export function requestFingerprint(operation: string, body: unknown): string {
  return `sha256:${createHash('sha256')
    .update(`${operation}\n${canonicalJson(body)}`)
    .digest('hex')}`;
}
