/**
 * The SDK's errors. Every error it throws is an `ApiError` (so one `instanceof` catches them all),
 * with the API's stable `code` (the catalogue in src/domain/errors.ts) when the server answered, or
 * one of the SDK's own codes when it could not (`unreachable`, `timeout`, `aborted`, …). `status`
 * is the HTTP status, 0 when there was no answer.
 *
 *   ApiError
 *   ├─ ValidationError    400 validation_failed | bad_request; `field` (first refused field), `fields`
 *   ├─ UnauthorizedError  401
 *   ├─ ForbiddenError     403
 *   ├─ NotFoundError      404
 *   ├─ ConflictError      409 conflict | cancelled
 *   ├─ RateLimitError     429; `retryAfterMs`
 *   ├─ UnavailableError   503 (a backing engine, a worker, the driver) or no answer at all; `retryAfterMs?`
 *   ├─ TimeoutError       `kind`: 'request' (requestTimeoutMs) | 'wait' (a wait's timeoutMs)
 *   ├─ AbortError         the caller's AbortSignal fired
 *   ├─ TaskFailedError    a task the SDK waited for failed; `task`, `taskId`, the code of its error
 *   │  └─ TaskCancelledError
 *   ├─ ConfigError        the client's settings or the CLI configuration file
 *   └─ ProtocolError      an answer that does not match the API contract
 */
import { codeForStatus, ERROR_CATALOGUE, type ErrorCode, isErrorCode, parseTaskError } from '../domain/errors.ts';

/** Codes of the SDK's own, for failures that are not an answer of the server. */
export type ClientErrorCode = 'unreachable' | 'tls' | 'timeout' | 'aborted' | 'config' | 'bad_response';
export type SdkErrorCode = ErrorCode | ClientErrorCode;

export interface ApiErrorInit {
  status?: number;
  details?: unknown;
  requestId?: string | undefined;
  /** `METHOD /api/v1/path` of the request, without its query. */
  request?: string | undefined;
  cause?: unknown;
}

export class ApiError extends Error {
  /** The HTTP status of the answer; 0 when the server gave none (unreachable, timeout, abort). */
  readonly status: number;
  readonly code: SdkErrorCode;
  /** The request id the server answered with (`x-request-id`), when it sends one. */
  readonly requestId: string | undefined;
  /** The error's `details` from the server (for validation: each refused field). */
  readonly details: unknown;
  /** `METHOD /api/v1/path` of the request that failed, when there was one. */
  readonly request: string | undefined;
  /** Whether trying the same thing again later may work (the catalogue's `retryable`). */
  readonly retryable: boolean;

  constructor(code: SdkErrorCode, message: string, init: ApiErrorInit = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = init.status ?? (isErrorCode(code) ? ERROR_CATALOGUE[code].status : 0);
    this.details = init.details;
    this.requestId = init.requestId;
    this.request = init.request;
    this.retryable = isErrorCode(code) ? ERROR_CATALOGUE[code].retryable : code === 'unreachable' || code === 'timeout';
  }
}

export interface FieldIssue {
  /** Dotted path of the field in the request part (`vcpus`, `args.3`, `env.PATH`); '' for the whole part. */
  field: string;
  message: string;
}

export class ValidationError extends ApiError {
  /** The first field the server refused (`vcpus`), or undefined when it named none. */
  readonly field: string | undefined;
  readonly fields: readonly FieldIssue[];

  constructor(code: 'validation_failed' | 'bad_request', message: string, init: ApiErrorInit = {}) {
    super(code, message, init);
    this.fields = fieldsOf(init.details);
    this.field = this.fields.find((f) => f.field !== '')?.field;
  }
}

export class UnauthorizedError extends ApiError {}
export class ForbiddenError extends ApiError {}
export class NotFoundError extends ApiError {}
export class ConflictError extends ApiError {}

export class RateLimitError extends ApiError {
  /** How long the server asks to wait before the next request (its `retry-after`), in ms. */
  readonly retryAfterMs: number;
  constructor(message: string, retryAfterMs: number, init: ApiErrorInit = {}) {
    super('rate_limited', message, init);
    this.retryAfterMs = retryAfterMs;
  }
}

export class UnavailableError extends ApiError {
  /** When the server said how long to wait (`retry-after`), in ms. */
  readonly retryAfterMs: number | undefined;
  constructor(code: SdkErrorCode, message: string, init: ApiErrorInit & { retryAfterMs?: number | undefined } = {}) {
    super(code, message, init);
    this.retryAfterMs = init.retryAfterMs;
  }
}

export type TimeoutKind = 'request' | 'wait';

export class TimeoutError extends ApiError {
  /** 'request': one REST request took longer than `requestTimeoutMs`; 'wait': a wait's `timeoutMs` passed. */
  readonly kind: TimeoutKind;
  readonly timeoutMs: number;
  constructor(kind: TimeoutKind, timeoutMs: number, message: string, init: ApiErrorInit = {}) {
    super('timeout', message, init);
    this.kind = kind;
    this.timeoutMs = timeoutMs;
  }
}

/** The caller's AbortSignal fired. `name` is 'AbortError', as for fetch and node's own APIs. */
export class AbortError extends ApiError {
  constructor(message = 'the operation was aborted', init: ApiErrorInit = {}) {
    super('aborted', message, init);
    this.name = 'AbortError';
  }
}

/** The task's own shape, kept loose here: errors.ts needs only its id, status and error. */
export interface FailedTaskLike {
  id: string;
  type: string;
  status: string;
  error: string | null;
}

/**
 * A task the SDK waited for (a create with `waitUntil`, a stop, a delete) ended `failed`. `code` is
 * the catalogue code at the start of the task's error (`driver_failed: boot timed out`), or
 * `driver_failed` when it has none.
 */
export class TaskFailedError<T extends FailedTaskLike = FailedTaskLike> extends ApiError {
  readonly taskId: string;
  readonly task: T;
  constructor(task: T, message?: string, code?: SdkErrorCode) {
    const parsed = parseTaskError(task.error ?? task.status);
    super(
      code ?? parsed.code ?? 'driver_failed',
      message ?? `task ${task.id} (${task.type}) ${task.status}: ${parsed.message}`,
      { details: { task_id: task.id } },
    );
    this.taskId = task.id;
    this.task = task;
  }
}

export class TaskCancelledError<T extends FailedTaskLike = FailedTaskLike> extends TaskFailedError<T> {
  constructor(task: T) {
    super(task, `task ${task.id} (${task.type}) was cancelled${task.error ? `: ${task.error}` : ''}`, 'cancelled');
  }
}

export class ConfigError extends ApiError {
  constructor(message: string, init: ApiErrorInit = {}) {
    super('config', message, init);
  }
}

export class ProtocolError extends ApiError {
  constructor(message: string, init: ApiErrorInit = {}) {
    super('bad_response', message, init);
  }
}

/** `details` of a validation_failed answer: `[{ path: '/vcpus', message }]` (JSON pointers). */
function fieldsOf(details: unknown): FieldIssue[] {
  if (!Array.isArray(details)) return [];
  const out: FieldIssue[] = [];
  for (const item of details) {
    if (typeof item !== 'object' || item === null) continue;
    const { path, message } = item as { path?: unknown; message?: unknown };
    if (typeof path !== 'string') continue;
    out.push({
      field: path
        .replace(/^\//, '')
        .split('/')
        .map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'))
        .join('.'),
      message: typeof message === 'string' ? message : '',
    });
  }
  return out;
}

/** `retry-after` as milliseconds: delta seconds, or an HTTP date. */
export function retryAfterMsOf(header: string | string[] | undefined, now = Date.now()): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || value.trim() === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.round(seconds * 1000));
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The typed error for an error code (from an HTTP answer, an exec stream's error message, a close code). */
export function errorOf(
  code: SdkErrorCode,
  message: string,
  init: ApiErrorInit & { retryAfterMs?: number | undefined } = {},
): ApiError {
  switch (code) {
    case 'validation_failed':
    case 'bad_request':
      return new ValidationError(code, message, init);
    case 'unauthorized':
      return new UnauthorizedError(code, message, init);
    case 'forbidden':
      return new ForbiddenError(code, message, init);
    case 'not_found':
      return new NotFoundError(code, message, init);
    case 'conflict':
    case 'cancelled':
      return new ConflictError(code, message, init);
    case 'rate_limited':
      return new RateLimitError(message, init.retryAfterMs ?? 1000, init);
    case 'unavailable':
    case 'driver_unavailable':
    case 'worker_refused':
    case 'worker_lost':
    case 'unreachable':
    case 'tls':
      return new UnavailableError(code, message, init);
    case 'timeout':
      return new TimeoutError('request', 0, message, init);
    case 'aborted':
      return new AbortError(message, init);
    case 'config':
      return new ConfigError(message, init);
    case 'bad_response':
      return new ProtocolError(message, init);
    default:
      return new ApiError(code, message, init);
  }
}

/** The error for an HTTP error answer: the body's `{ error: { code, message, details } }` when it has one. */
export function errorFromAnswer(
  status: number,
  body: unknown,
  headers: Record<string, string | string[] | undefined>,
  request?: string,
): ApiError {
  const error = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null)?.error;
  const code: ErrorCode =
    typeof error?.code === 'string' && isErrorCode(error.code) ? error.code : (codeForStatus(status) ?? 'internal');
  const message =
    typeof error?.message === 'string' && error.message !== ''
      ? error.message
      : `the server answered HTTP ${status}${request ? ` to ${request}` : ''}`;
  const requestId = headerOf(headers, 'x-request-id') ?? headerOf(headers, 'request-id');
  return errorOf(code, message, {
    status,
    details: error?.details,
    requestId,
    request,
    retryAfterMs: retryAfterMsOf(headers['retry-after']),
  });
}

function headerOf(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** TLS verification failures: the certificate is not trusted by the CA the client uses. */
const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_HAS_EXPIRED',
]);

/**
 * A connection that gave no answer, as an error that says what to do: start the control plane,
 * point the client elsewhere, use https://, or trust the server's CA.
 */
export function connectionError(url: URL, err: Error & { code?: string }, request?: string): ApiError {
  const code = err.code ?? err.message;
  if (UNTRUSTED.has(code)) {
    return new UnavailableError(
      'tls',
      `the certificate of ${url.origin} is not trusted (${code}): give the client its CA (caFile, AETHERIUM_CA_FILE or the context's ca-file)`,
      { request, cause: err },
    );
  }
  if (
    (url.protocol === 'http:' || url.protocol === 'ws:') &&
    (code === 'ECONNRESET' || code.startsWith('HPE_') || /socket hang up/.test(err.message))
  ) {
    return new UnavailableError(
      'unreachable',
      `${url.origin} gave no HTTP answer (${code}); if it serves HTTPS (api_gateway.tls), use https://${url.host}`,
      { request, cause: err },
    );
  }
  return new UnavailableError(
    'unreachable',
    `cannot reach the control plane at ${url.origin} (${code}); is \`aetherium dev\` running? Set apiUrl, AETHERIUM_API or a context (aetherium context add) to point elsewhere.`,
    { request, cause: err },
  );
}
