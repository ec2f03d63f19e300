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

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
