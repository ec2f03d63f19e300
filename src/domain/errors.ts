/**
 * The one catalogue of errors that cross a boundary (API, CLI, worker). Each has a stable code that
 * clients may switch on, an HTTP status, and a message a person can act on.
 */
export const ERROR_CATALOGUE = {
  validation_failed: 400,
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  rate_limited: 429,
  internal: 500,
  driver_failed: 502,
  unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export class AetheriumError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, details?: unknown) {
    super(message);
    this.name = 'AetheriumError';
    this.code = code;
    this.status = ERROR_CATALOGUE[code];
    this.details = details;
  }

  toJSON(): { error: { code: ErrorCode; message: string; details?: unknown } } {
    return { error: { code: this.code, message: this.message, ...(this.details === undefined ? {} : { details: this.details }) } };
  }
}

export const notFound = (what: string, id: string) => new AetheriumError('not_found', `${what} ${JSON.stringify(id)} was not found`);
export const conflict = (message: string, details?: unknown) => new AetheriumError('conflict', message, details);
export const invalid = (message: string, details?: unknown) => new AetheriumError('validation_failed', message, details);

/**
 * Thrown by a driver or task handler when trying again cannot help (bad image, VM gone). The worker
 * marks the task failed at once instead of spending its retries.
 */
export class PermanentTaskError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PermanentTaskError';
  }
}

/**
 * Thrown when a worker finds it cannot hold a VM after all (the host has less free memory than the
 * scheduler's bookkeeping promised). The task goes back to the scheduler with this worker excluded.
 */
export class WorkerRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WorkerRefusedError';
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Connection-level failures of an engine (Postgres restarting, Redis down): worth retrying. */
const TRANSIENT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', '57P01', '57P02', '57P03', '08000', '08001', '08003', '08004', '08006']);
const TRANSIENT_MESSAGES = /Connection terminated|connection is closed|the database system is (starting up|shutting down)|Client has encountered a connection error|timeout exceeded when trying to connect/i;

export function isTransientEngineError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (!e || typeof e !== 'object') return false;
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
