/** Request schemas: every route validates its input with these, and OpenAPI is generated from them. */
import * as z from 'zod';
// The web UI bundles the contract: it imports the domain's modules by name, never its index, which
// reaches Node's crypto and Buffer (the UI's build refuses any `node:` import).
import { ROLES } from '../domain/auth.ts';
import { IDEMPOTENCY_KEY_PATTERN } from '../domain/idempotency-key.ts';
import { JOIN_MAX_USES } from '../domain/join.ts';
import { STRATEGIES } from '../domain/placement.ts';
import { TASK_STATUSES, TASK_TYPES } from '../domain/task.ts';
import { DRIVER_NAMES, VM_DEFAULTS, VM_STATUSES } from '../domain/vm.ts';
import { WORKER_STATUSES } from '../domain/worker.ts';

export const VM_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

const labelKey = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._/-]*$/, 'label keys are letters, digits, ".", "_", "/" and "-"');
const labelValue = z.string().max(255);

/**
 * The longest id or name a path or a filter takes. The router refuses longer path parameters by
 * itself (`maxParamLength`, set to the same value in http-errors.ts), so OpenAPI and the router agree.
 */
export const MAX_ID_LENGTH = 100;
const idString = z.string().min(1).max(MAX_ID_LENGTH);

export const idParam = z.object({ id: idString });

export const createVmBody = z
  .object({
    name: z
      .string()
      .regex(VM_NAME, 'a VM name is 1-63 lowercase letters, digits and "-", starting and ending with a letter or digit')
      .optional(),
    vcpus: z.number().int().min(1).max(256).default(VM_DEFAULTS.vcpus),
    memory_mb: z.number().int().min(16).max(1_048_576).default(VM_DEFAULTS.memory_mb),
    disk_gb: z.number().int().min(0).max(65_536).default(VM_DEFAULTS.disk_gb),
    driver: z.enum(DRIVER_NAMES).optional(),
    image: z.string().min(1).max(512).optional(),
    zone: z.string().min(1).max(128).optional(),
    labels: z.record(labelKey, labelValue).optional(),
    worker_labels: z
      .record(labelKey, z.union([labelValue, z.object({ in: z.array(labelValue).min(1) }).strict()]))
      .optional(),
    strategy: z.enum(STRATEGIES).optional(),
  })
  .strict();

/** What a VM asks of its host: the placement part of a create request. */
export const planBody = createVmBody
  .pick({ vcpus: true, memory_mb: true, disk_gb: true, driver: true, zone: true, worker_labels: true, strategy: true })
  .strict();

export const waitQuery = z.object({
  wait: z
    .enum(['true', 'false', '1', '0'])
    .optional()
    .transform((v) => v === 'true' || v === '1'),
  timeout: z.coerce.number().min(0).max(3600).optional(),
});

export const listVmsQuery = z
  .object({
    status: z.enum(VM_STATUSES).optional(),
    worker_id: idString.optional(),
    name: idString.optional(),
    include_deleted: z
      .enum(['true', 'false'])
      .optional()
      .transform((v) => v === 'true'),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .strict();

/**
 * What a command may be given. Linux refuses one argument or environment string (`NAME=value`) of
 * more than 128 KiB with its terminating NUL (MAX_ARG_STRLEN), and all of them together beyond
 * ARG_MAX (2 MiB with the usual 8 MiB stack), and such a command never starts; so the limits are
 * part of the request, counted in UTF-8 bytes as the kernel counts them, and a request over them is
 * a 400, not a driver failure. The driver adds a few variables of its own (PATH, HOME) within the margin.
 */
export const EXEC_LIMITS = {
  /** One argument, or one `NAME=value`, in bytes (the kernel's 131,072 less the NUL). */
  stringBytes: 131_071,
  argsTotalBytes: 1024 * 1024,
  envTotalBytes: 256 * 1024,
  envEntries: 4096,
  /** Seconds: 1 ms, the smallest timeout a timer can honour (0.0001 used to round to none). */
  minTimeout: 0.001,
  maxTimeout: 86_400,
} as const;

const encoder = new TextEncoder();
/** UTF-8 bytes as the kernel counts them (TextEncoder, so the contract also runs in a browser). */
const utf8Bytes = (s: string) => encoder.encode(s).byteLength;

const execFields = z
  .object({
    command: z.string().min(1, 'command must not be empty').max(4096),
    args: z.array(z.string().max(EXEC_LIMITS.stringBytes)).max(4096).default([]),
    env: z
      .record(
        z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'environment names are letters, digits and "_"'),
        z.string().max(EXEC_LIMITS.stringBytes),
      )
      .default({}),
    cwd: z.string().min(1).max(4096).optional(),
    /** Seconds, at least 0.001. No timeout means the command may run as long as it needs. */
    timeout: z
      .number()
      .min(EXEC_LIMITS.minTimeout, `timeout is in seconds and must be at least ${EXEC_LIMITS.minTimeout} (1 ms)`)
      .max(EXEC_LIMITS.maxTimeout)
      .optional(),
  })
  .strict();

type ExecFields = z.infer<typeof execFields>;

/** The byte limits of EXEC_LIMITS, each issue naming the argument or variable over it. */
function checkExecSizes(body: ExecFields, ctx: z.RefinementCtx): void {
  const { stringBytes, argsTotalBytes, envTotalBytes, envEntries } = EXEC_LIMITS;
  let argsTotal = 0;
  body.args.forEach((arg, i) => {
    const bytes = utf8Bytes(arg);
    argsTotal += bytes + 1;
    if (bytes > stringBytes)
      ctx.addIssue({
        code: 'custom',
        path: ['args', i],
        message: `an argument is at most ${stringBytes} bytes (UTF-8); this one is ${bytes}`,
      });
  });
  if (argsTotal > argsTotalBytes)
    ctx.addIssue({
      code: 'custom',
      path: ['args'],
      message: `the arguments together are at most ${argsTotalBytes} bytes (UTF-8); these are ${argsTotal}`,
    });
  const entries = Object.entries(body.env);
  if (entries.length > envEntries)
    ctx.addIssue({ code: 'custom', path: ['env'], message: `at most ${envEntries} environment variables` });
  let envTotal = 0;
  for (const [name, value] of entries) {
    const bytes = utf8Bytes(name) + 1 + utf8Bytes(value);
    envTotal += bytes + 1;
    if (bytes > stringBytes)
      ctx.addIssue({
        code: 'custom',
        path: ['env', name],
        message: `a variable (NAME=value) is at most ${stringBytes} bytes (UTF-8); this one is ${bytes}`,
      });
  }
  if (envTotal > envTotalBytes)
    ctx.addIssue({
      code: 'custom',
      path: ['env'],
      message: `the environment together is at most ${envTotalBytes} bytes (UTF-8, NAME=value each); this one is ${envTotal}`,
    });
}

export const execBody = execFields.superRefine(checkExecSizes);

/** The first message of the interactive exec WebSocket: the same fields and limits, and its type. */
export const execStartMessage = execFields.extend({ type: z.literal('start') }).superRefine(checkExecSizes);

/** A task payload from a request: `timeout` in seconds becomes whole milliseconds, never 0. */
export function execPayloadOf({ timeout, ...rest }: ExecFields): Omit<ExecFields, 'timeout'> & { timeout_ms?: number } {
  return { ...rest, ...(timeout === undefined ? {} : { timeout_ms: Math.max(1, Math.round(timeout * 1000)) }) };
}

export const listTasksQuery = z
  .object({
    status: z.enum(TASK_STATUSES).optional(),
    type: z.enum(TASK_TYPES).optional(),
    worker_id: idString.optional(),
    vm_id: idString.optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .strict();

export const listWorkersQuery = z
  .object({
    zone: z.string().min(1).optional(),
    status: z.enum(WORKER_STATUSES).optional(),
    capability: z.string().min(1).optional(),
  })
  .strict();

/**
 * Without `since` or `step`: the newest raw samples, newest first (`limit` of them). With either: a
 * timeline oldest first from `since` (a duration back, `24h`, or an RFC 3339 time; default 1h) to
 * `until` (default now), one average per `step` (default: the range over 300 points).
 */
export const metricsQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(10_000).default(120),
    since: z.string().max(64).optional(),
    until: z.string().max(64).optional(),
    step: z.string().max(32).optional(),
  })
  .strict();

export const eligibilityBody = z.object({ eligible: z.boolean() }).strict();

export const cancelQuery = z.object({
  wait: z
    .enum(['true', 'false', '1', '0'])
    .optional()
    .transform((v) => v === 'true' || v === '1'),
  timeout: z.coerce.number().min(0).max(3600).optional(),
});

export const drainBody = z
  .object({
    deadline_seconds: z
      .number()
      .int()
      .min(0)
      .max(7 * 86_400)
      .optional(),
    force: z.boolean().optional(),
    no_deadline: z.boolean().optional(),
    message: z.string().max(1024).optional(),
  })
  .strict()
  .nullish();

/** The event stream's filters: topics (`worker`, `vm`, `task`) and keys (a worker id, a VM id). */
export const TOPICS = ['worker', 'vm', 'task'] as const;

const list = z
  .string()
  .transform((s) =>
    s
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean),
  )
  .pipe(z.array(z.enum(TOPICS)));

export const subscriptionQuery = z
  .object({
    topics: list.optional(),
    topic: list.optional(),
    worker_id: z.string().min(1).max(128).optional(),
    vm_id: z.string().min(1).max(128).optional(),
    since: z.coerce.number().int().min(0).optional(),
  })
  .strict();

export const subscribeMessage = z
  .object({
    type: z.literal('subscribe'),
    topics: z.array(z.enum(TOPICS)).optional(),
    worker_id: z.string().min(1).max(128).nullable().optional(),
    vm_id: z.string().min(1).max(128).nullable().optional(),
  })
  .strict();

export const MAX_EXPIRY_MS = 10 * 365 * 86_400_000;

export const createTokenBody = z
  .object({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'a key name is 1-63 lowercase letters, digits, ".", "_" or "-"'),
    role: z.enum(ROLES),
    /** `30d`, `12h`, … ; none: the key does not expire. */
    expires: z.string().max(32).optional(),
  })
  .strict();

export const listTokensQuery = z
  .object({
    include_revoked: z
      .enum(['true', 'false'])
      .optional()
      .transform((v) => v === 'true'),
  })
  .strict();

export const createJoinTokenBody = z
  .object({
    description: z.string().max(200).optional(),
    max_uses: z.number().int().min(1).max(JOIN_MAX_USES).optional(),
    /** `1h`, `30m`, … or a number of seconds; default 1 h, at most 30 days. */
    ttl: z.union([z.string().max(32), z.number().int().min(1)]).optional(),
  })
  .strict()
  .optional();

export const auditQuery = z
  .object({
    actor: z.string().min(1).max(200).optional(),
    action: z.string().min(1).max(100).optional(),
    outcome: z.enum(['allowed', 'denied', 'failed', 'succeeded']).optional(),
    since: z.coerce
      .date()
      .refine((d) => d.getUTCFullYear() >= 1970 && d.getUTCFullYear() <= 9999, 'a time between 1970 and 9999')
      .optional(),
    before_id: z.coerce.number().int().min(1).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .strict();

export const logsQuery = z
  .object({
    since: z.string().max(64).optional(),
    follow: z
      .enum(['true', 'false', '1', '0'])
      .optional()
      .transform((v) => v === 'true' || v === '1'),
    limit: z.coerce.number().int().min(1).max(5000).default(500),
  })
  .strict();

/**
 * `Idempotency-Key` on `POST /vms`: the same key from the same caller within 24 h answers with the
 * VM and task of the first request, never a second VM.
 */
export const createVmHeaders = z.object({
  'idempotency-key': z
    .string()
    .regex(IDEMPOTENCY_KEY_PATTERN, 'Idempotency-Key is 1-255 printable ASCII characters without spaces')
    .optional(),
});
