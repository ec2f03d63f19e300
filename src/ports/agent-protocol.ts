/**
 * The agent channel's wire protocol: one WebSocket per worker over mutual TLS, carrying JSON
 * frames both ways. The worker makes calls (the WorkerLink's methods, by name) and the control
 * plane answers each by id; the control plane pushes task deliveries, cancels, exec-channel
 * messages and log requests. One connection, so a worker behind NAT or in a network namespace
 * that reaches only the agent port gets everything, and the connection itself is the liveness
 * signal the replica acts on.
 *
 * Why a WebSocket and not gRPC or bare HTTP/2: the traffic is mostly server push (deliveries,
 * cancels, stdin, log follow) plus small calls; `ws` is already how the API streams, it runs over
 * the same `node:tls` mutual TLS, and it needs no code generation or new runtime. Dates travel
 * tagged (`{"$date": ms}`) so both ends see the domain types, not strings.
 *
 * Everything a worker sends is untrusted: the control plane validates every frame and every
 * call's arguments with the schemas below before acting on it.
 */
import * as z from 'zod';
import { TASK_TYPES, VM_STATUSES, WORKER_ID_PATTERN } from '../domain/index.ts';
import type { ChannelMessage } from './exec-channels.ts';
import type { QueuedTask } from './task-queue.ts';

/** The WorkerLink methods a worker may call, plus the channel's own. */
export const AGENT_METHODS = [
  'register',
  'heartbeat',
  'deregister',
  'reportResources',
  'recordMetrics',
  'consume',
  'pauseConsume',
  'resumeConsume',
  'stopConsume',
  'assignments',
  'claimTask',
  'reportOutcome',
  'reportVm',
  'recordExecution',
  'requestDrain',
  'drainProgress',
  'watchCancels',
  'subscribeChannel',
  'unsubscribeChannel',
  'renew',
] as const;
export type AgentMethod = (typeof AGENT_METHODS)[number];

export interface WireError {
  code: string;
  message: string;
}

/** One structured log line of a worker, as its logger wrote it (pino's JSON object). */
export type LogLine = Record<string, unknown>;

export type WorkerFrame =
  | { t: 'call'; id: number; method: AgentMethod; args: unknown[] }
  /** The worker finished processing a delivery (its outcome travels as a call). */
  | { t: 'done'; delivery: number }
  | { t: 'publish'; channel: string; message: ChannelMessage }
  /** Lines answering a `logs` request; `end` closes that stream. */
  | { t: 'logs'; stream: number; lines: LogLine[]; end?: boolean };

export type ServerFrame =
  | { t: 'reply'; id: number; ok: true; value: unknown }
  | { t: 'reply'; id: number; ok: false; error: WireError }
  | { t: 'deliver'; delivery: number; task: QueuedTask }
  /** The queue asked for the delivery to be abandoned (its consumer is closing). */
  | { t: 'abort'; delivery: number }
  | { t: 'cancel'; task_id: string; reason: string }
  | { t: 'message'; channel: string; message: ChannelMessage }
  | { t: 'logs'; stream: number; since: number | null; follow: boolean; limit: number }
  | { t: 'logs_stop'; stream: number };

/** WebSocket close codes of the channel (4xxx: application). */
export const CLOSE = {
  /** The certificate was revoked or expired while connected: get a new one. */
  identity: 4401,
  /** A frame broke the protocol (not JSON, unknown type, bad arguments at the frame level). */
  protocol: 4400,
  /** Another connection holds this worker id. */
  duplicate: 4409,
  /** The replica is shutting down: connect to another one. */
  shutdown: 4503,
} as const;

export const AGENT_PATHS = { channel: '/v1/channel', join: '/v1/join', ca: '/v1/ca', health: '/v1/health' } as const;

/** Default agent port, as Nomad's RPC port. */
export const DEFAULT_AGENT_PORT = 4647;

export function encodeFrame(frame: WorkerFrame | ServerFrame): string {
  return JSON.stringify(frame, function tagDates(this: Record<string, unknown>, key, value) {
    const raw = this[key];
    return raw instanceof Date ? { $date: raw.getTime() } : value;
  });
}

/** Parses a frame's JSON, turning tagged dates back into Dates. The shape is checked by the caller. */
export function decodeFrame(text: string): unknown {
  return JSON.parse(text, (_key, value) => {
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      const keys = Object.keys(value);
      if (keys.length === 1 && keys[0] === '$date' && typeof value.$date === 'number') return new Date(value.$date);
    }
    return value;
  });
}

// ── Validation of what a worker sends ──────────────────────────────────────────────────────────

const id = z.string().min(1).max(100);
const workerId = z.string().regex(WORKER_ID_PATTERN);
const text = (max: number) => z.string().max(max);
const count = z.number().int().min(0).max(1_000_000_000);
const date = z.date();

const resources = z.object({
  cpu_cores: count,
  memory_mb: count,
  disk_gb: count,
  max_vms: count,
});

export const registrationSchema = resources.extend({
  id: workerId,
  hostname: text(253),
  address: text(253),
  zone: text(100),
  labels: z.record(text(100), text(500)),
  capabilities: z.array(text(100)).max(100),
  ttl_seconds: z.number().int().min(1).max(86_400),
  metadata: z.record(z.string(), z.unknown()),
  started_at: date.optional(),
});

const channelMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('started') }),
  z.object({ type: z.enum(['stdout', 'stderr', 'stdin']), data: z.string() }),
  z.object({ type: z.literal('stdin_end') }),
  z.object({ type: z.literal('exit'), exit_code: z.number().int(), timed_out: z.boolean() }),
]);

const outcome = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('completed'), result: z.record(z.string(), z.unknown()) }),
  z.object({ kind: z.literal('failed'), error: text(100_000), retryable: z.boolean(), code: z.string().optional() }),
  z.object({ kind: z.literal('cancelled'), reason: text(10_000) }),
  z.object({ kind: z.literal('refused'), reason: text(10_000) }),
  z.object({ kind: z.literal('interrupted') }),
]);

const vmReport = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('status'),
    to: z.enum(VM_STATUSES),
    from: z.array(z.enum(VM_STATUSES)).optional(),
    error: text(100_000).nullable().optional(),
  }),
  z.object({
    kind: z.literal('booted'),
    phases: z.object({ driver_started: date.optional(), agent_ready: date.optional() }).strict().optional(),
  }),
  z.object({ kind: z.literal('deleted'), reason: text(10_000) }),
  z.object({ kind: z.literal('lost'), error: text(100_000) }),
  z.object({ kind: z.literal('died'), reason: text(100_000) }),
]);

const execution = z.object({
  id,
  vm_id: id,
  task_id: id.nullable(),
  command: z.string(),
  args: z.array(z.string()),
  env: z.record(z.string(), z.string()),
  started_at: date,
  completed_at: date,
  duration_ms: z.number().min(0),
  exit_code: z.number().int(),
  stdout: z.string(),
  stderr: z.string(),
  stdout_base64: z.string().optional(),
  stderr_base64: z.string().optional(),
  timed_out: z.boolean().optional(),
});

const metricSample = z.object({
  worker_id: workerId,
  timestamp: date,
  cpu_usage: z.number(),
  memory_usage: z.number(),
  disk_usage: z.number(),
  vm_count: count,
  tasks_processed: count,
  network_in_mb: z.number(),
  network_out_mb: z.number(),
});

const drainRequest = z.object({
  deadline_seconds: z.number().int().min(0).max(31_536_000).optional(),
  force: z.boolean().optional(),
  no_deadline: z.boolean().optional(),
  message: text(1000).optional(),
});

const channelName = z.string().regex(/^exec:[A-Za-z0-9._:-]{1,100}:(in|out)$/);

/** The arguments of each call, positionally, as the WorkerLink takes them. */
export const CALL_ARGS = {
  register: z.tuple([registrationSchema, z.object({ resume: z.boolean() })]),
  heartbeat: z.tuple([workerId]),
  deregister: z.tuple([workerId]),
  reportResources: z.tuple([workerId, resources]),
  recordMetrics: z.tuple([metricSample]),
  consume: z.tuple([workerId, z.object({ concurrency: z.number().int().min(1).max(256) })]),
  pauseConsume: z.tuple([workerId]),
  resumeConsume: z.tuple([workerId]),
  stopConsume: z.tuple([workerId]),
  assignments: z.tuple([workerId]),
  claimTask: z.tuple([workerId, id, z.boolean()]),
  reportOutcome: z.tuple([workerId, id, outcome]),
  reportVm: z.tuple([workerId, id, vmReport]),
  recordExecution: z.tuple([workerId, execution]),
  requestDrain: z.tuple([workerId, drainRequest]),
  drainProgress: z.tuple([workerId]),
  watchCancels: z.tuple([workerId]),
  subscribeChannel: z.tuple([channelName]),
  unsubscribeChannel: z.tuple([channelName]),
  renew: z.tuple([z.string().min(1).max(20_000)]),
} satisfies Record<AgentMethod, z.ZodType>;

export const workerFrameSchema = z.discriminatedUnion('t', [
  z.object({
    t: z.literal('call'),
    id: z.number().int().min(0),
    method: z.enum(AGENT_METHODS),
    args: z.array(z.unknown()),
  }),
  z.object({ t: z.literal('done'), delivery: z.number().int().min(0) }),
  z.object({ t: z.literal('publish'), channel: channelName, message: channelMessage }),
  z.object({
    t: z.literal('logs'),
    stream: z.number().int().min(0),
    lines: z.array(z.record(z.string(), z.unknown())).max(10_000),
    end: z.boolean().optional(),
  }),
]);

export const queuedTaskSchema = z.object({
  id,
  type: z.enum(TASK_TYPES),
  attempt: z.number().int().min(0).optional(),
});

/** What `POST /v1/join` takes and gives. */
export const joinRequestSchema = z.object({
  token: z.string().min(1).max(500),
  worker_id: workerId,
  csr: z.string().min(1).max(20_000),
});

export interface JoinResponse {
  worker_id: string;
  certificate: string;
  ca: string;
  expires_at: string;
}

export interface RenewResponse {
  certificate: string;
  expires_at: string;
}
