/**
 * The one catalogue of errors that cross a boundary (API, CLI, worker), in the style of Fastify's
 * error codes: each has a stable code that clients may switch on, an HTTP status, a description for
 * the docs, and whether a task that failed with it may be tried again. The task runner decides
 * retries from `retryable` alone; an error that is not an AetheriumError (a bug, a library's own
 * error) counts as retryable, because creates and deletes are idempotent and `max_retries` bounds it.
 */
export const ERROR_CATALOGUE = {
  validation_failed: { status: 400, retryable: false, description: 'the request does not match the schema' },
  bad_request: { status: 400, retryable: false, description: 'the request cannot be understood' },
  unauthorized: { status: 401, retryable: false, description: 'no valid credentials were given' },
  forbidden: { status: 403, retryable: false, description: 'the caller lacks the role for this action' },
  not_found: { status: 404, retryable: false, description: 'no such VM, task or worker' },
  conflict: { status: 409, retryable: false, description: 'the resource is in a state that does not allow this' },
  cancelled: { status: 409, retryable: false, description: 'the task was cancelled' },
  rate_limited: { status: 429, retryable: true, description: 'too many requests; retry after the given delay' },
  internal: { status: 500, retryable: true, description: 'a fault of ours; the server log has the details' },
  driver_failed: {
    status: 502,
    retryable: true,
    description: 'the VM driver failed (boot timeout, VMM exited, guest agent lost); trying again may work',
  },
  driver_unavailable: {
    status: 503,
    retryable: false,
    description: 'this host cannot run the driver (binary, image or /dev/kvm missing); retrying cannot help',
  },
  worker_refused: {
    status: 503,
    retryable: false,
    description: 'the worker cannot hold the VM after all; the scheduler places it elsewhere',
  },
  worker_lost: {
    status: 503,
    retryable: false,
    description: 'the worker holding the task went offline before it finished',
  },
  unavailable: {
    status: 503,
    retryable: true,
    description: 'a backing engine (database, queue, registry) is unreachable',
  },
} as const satisfies Record<string, { status: number; retryable: boolean; description: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: unknown };
}

export class AetheriumError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, details?: unknown) {
    super(message);
    this.name = 'AetheriumError';
    this.code = code;
    this.status = ERROR_CATALOGUE[code].status;
    this.retryable = ERROR_CATALOGUE[code].retryable;
    this.details = details;
  }

  toJSON(): ErrorBody {
    const details = this.details === undefined ? {} : { details: this.details };
    return { error: { code: this.code, message: this.message, ...details } };
  }
}

export const notFound = (what: string, id: string) =>
  new AetheriumError('not_found', `${what} ${JSON.stringify(id)} was not found`);
export const conflict = (message: string, details?: unknown) => new AetheriumError('conflict', message, details);
export const invalid = (message: string, details?: unknown) =>
  new AetheriumError('validation_failed', message, details);

/** The code an HTTP status stands for when an answer (or a framework's error) names none. */
const CODE_BY_STATUS: Readonly<Record<number, ErrorCode>> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'conflict',
  429: 'rate_limited',
  502: 'driver_failed',
  503: 'unavailable',
};

export function codeForStatus(status: number): ErrorCode | undefined {
  return CODE_BY_STATUS[status];
}

export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(ERROR_CATALOGUE, value);
}

/**
 * A failed task's `error` text starts with the catalogue code of the error that failed it, when it
 * was one of ours: `conflict: VM demo is stopping, not running`. The tasks table keeps one text
 * column for the error, and the code is what lets the API answer for the task with the right status
 * (409 for that conflict, 400 for a cwd that does not exist) instead of a blanket 502. A failure
 * without a code (a library's own error, a bug) is the bare message.
 */
export function taskErrorText(code: ErrorCode | null | undefined, message: string): string {
  return code ? `${code}: ${message}` : message;
}

/** The code and message of a task's `error` text written by `taskErrorText`; `code` is null when it has none. */
export function parseTaskError(text: string): { code: ErrorCode | null; message: string } {
  const match = /^([a-z_]+): /.exec(text);
  if (match?.[1] && isErrorCode(match[1])) return { code: match[1], message: text.slice(match[0].length) };
  return { code: null, message: text };
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Whether a task that failed with `err` may be tried again: the catalogue says, or the engine does. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof AetheriumError) return err.retryable;
  return true;
}

/** Connection-level failures of an engine (Postgres restarting, Redis down): worth retrying. */
const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  '57P01',
  '57P02',
  '57P03',
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
]);
const TRANSIENT_MESSAGES =
  /Connection terminated|connection is closed|the database system is (starting up|shutting down)|Client has encountered a connection error|timeout exceeded when trying to connect/i;

export function isTransientEngineError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (!e || typeof e !== 'object') return false;
  // The agent channel's "not connected right now": the call waits for the next connection.
  if (err instanceof AetheriumError) return err.code === 'unavailable';
  if (typeof e.code === 'string' && TRANSIENT_CODES.has(e.code)) return true;
  return typeof e.message === 'string' && TRANSIENT_MESSAGES.test(e.message);
}

/**
 * Runs `fn` until it succeeds, retrying only transient engine errors with capped backoff, for at
 * most `forMs`. Used for the writes that record an outcome: losing them would leave a task stuck.
 */
export async function retryTransient<T>(fn: () => Promise<T>, forMs = 120_000): Promise<T> {
  const deadline = Date.now() + forMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransientEngineError(err) || Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 200 * 2 ** attempt)));
    }
  }
}
