/**
 * What ties the work of one API call together, on any process: its request id, its W3C trace
 * context, and once a task exists, the task's id. Kept in an AsyncLocalStorage so that every log
 * line written while the work runs names them (the loggers' mixin reads it), without handing a
 * logger or a context through every call.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomFillSync } from 'node:crypto';
import type { TaskTrace } from '../domain/index.ts';

/** A W3C trace context: https://www.w3.org/TR/trace-context/#traceparent-header */
export interface TraceContext {
  traceId: string;
  spanId: string;
  /** `01`: sampled. */
  flags: string;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * The spec's rules: version ff is invalid, all-zero ids are invalid, an unknown later version is
 * read for its first four fields. Anything else is ignored (null), and a new trace begins.
 */
export function parseTraceparent(header: string | undefined | null): TraceContext | null {
  if (!header || header.length > 512) return null;
  const match = TRACEPARENT.exec(header.trim().toLowerCase());
  if (!match) return null;
  const version = match[1]!;
  const traceId = match[2]!;
  const spanId = match[3]!;
  const flags = match[4]!;
  const rest = match[5];
  if (version === 'ff' || (version === '00' && rest)) return null;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return null;
  return { traceId, spanId, flags };
}

export function formatTraceparent(context: TraceContext): string {
  return `00-${context.traceId}-${context.spanId}-${context.flags}`;
}

/**
 * Ids come from a pool of random bytes refilled 4 KiB at a time: a draw per id costs a system call
 * (about 4 µs), and every request takes a trace id and a span id.
 */
const pool = Buffer.alloc(4096);
let used = pool.length;
function randomHex(bytes: number): string {
  if (used + bytes > pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  used += bytes;
  return pool.toString('hex', used - bytes, used);
}

export const newTraceId = () => randomHex(16);
export const newSpanId = () => randomHex(8);

/** The fields every log line in the context carries. */
export type LogFields = Record<string, string>;

interface Scope {
  fields: LogFields;
  /** Set while an API request runs: what a task made by it carries. */
  task: TaskTrace | null;
}

const storage = new AsyncLocalStorage<Scope>();

/** Runs `fn` with these fields added to the current ones (the inner ones win). */
export function withLogContext<T>(fields: LogFields, fn: () => T, task?: TaskTrace | null): T {
  const outer = storage.getStore();
  return storage.run({ fields: { ...outer?.fields, ...fields }, task: task ?? outer?.task ?? null }, fn);
}

/** The loggers' mixin: the fields of the work in progress, or none. */
export function logContext(): LogFields {
  return storage.getStore()?.fields ?? {};
}

/** The trace a task made now should carry: the API request's, or null (made by the system). */
export function currentTaskTrace(): TaskTrace | null {
  return storage.getStore()?.task ?? null;
}

/** The log fields of a task's work: its id, and the request and trace that made it. */
export function taskLogFields(task: { id: string; vm_id: string | null; trace: TaskTrace | null }): LogFields {
  const fields: LogFields = { task_id: task.id };
  if (task.vm_id) fields.vm_id = task.vm_id;
  if (task.trace) {
    fields.request_id = task.trace.request_id;
    const context = parseTraceparent(task.trace.traceparent);
    if (context) fields.trace_id = context.traceId;
  }
  return fields;
}
