/**
 * A minimal client for Consul's HTTP API (fetch): base URL from address + scheme, the ACL token in
 * `X-Consul-Token` on every request when one is configured, `X-Consul-Index` read from responses,
 * and every failure turned into an AetheriumError a person can act on. The token never appears in
 * a message.
 */
import { AetheriumError, type ErrorCode } from '../../domain/index.ts';

export interface ConsulHttpOptions {
  /** `host:port`, or a full URL (then `scheme` is ignored). */
  address: string;
  scheme: 'http' | 'https';
  /** ACL token; empty: none is sent. */
  token: string;
  /** Per request, unless the call says otherwise (default 10 s). */
  timeoutMs?: number;
}

export interface ConsulRequest {
  query?: Record<string, string | undefined>;
  body?: unknown;
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface ConsulResponse<T> {
  status: number;
  body: T;
  /** `X-Consul-Index`, when the endpoint sends it. */
  index: number | null;
  headers: Headers;
}

export class ConsulRequestError extends AetheriumError {
  constructor(
    code: ErrorCode,
    message: string,
    /** HTTP status from Consul, or null when there was no answer. */
    readonly httpStatus: number | null,
    /** What Consul said, verbatim. */
    readonly consulMessage: string,
  ) {
    super(
      code,
      message,
      httpStatus === null ? undefined : { consul_status: httpStatus, consul_message: consulMessage },
    );
    this.name = 'ConsulRequestError';
  }
}

export function consulBaseUrl(address: string, scheme: 'http' | 'https'): string {
  const base = /^[a-z][a-z0-9+.-]*:\/\//i.test(address) ? address : `${scheme}://${address}`;
  return base.replace(/\/+$/, '');
}

export class ConsulHttp {
  readonly baseUrl: string;
  private readonly token: string;
  private readonly timeoutMs: number;

  constructor(options: ConsulHttpOptions) {
    this.baseUrl = consulBaseUrl(options.address, options.scheme);
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  get hasToken(): boolean {
    return this.token !== '';
  }

  async request<T>(method: 'GET' | 'PUT', path: string, request: ConsulRequest = {}): Promise<ConsulResponse<T>> {
    const url = new URL(this.baseUrl + path);
    for (const [key, value] of Object.entries(request.query ?? {}))
      if (value !== undefined) url.searchParams.set(key, value);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token) headers['x-consul-token'] = this.token;
    if (request.body !== undefined) headers['content-type'] = 'application/json';
    const timeoutMs = request.timeoutMs ?? this.timeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = request.signal ? AbortSignal.any([request.signal, timeout]) : timeout;
    const what = `${method} ${path}`;

    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: request.body === undefined ? undefined : JSON.stringify(request.body),
        signal,
      });
      text = await response.text();
    } catch (err) {
      if (request.signal?.aborted) throw err; // the caller gave up: not Consul's fault
      if (timeout.aborted) {
        throw new ConsulRequestError(
          'unavailable',
          `Consul at ${this.baseUrl} did not answer ${what} within ${timeoutMs} ms`,
          null,
          '',
        );
      }
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const reason = cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err));
      throw new ConsulRequestError(
        'unavailable',
        `cannot reach Consul at ${this.baseUrl} (${reason}) for ${what}: is the agent running, and are discovery.consul.address and scheme right?`,
        null,
        '',
      );
    }

    if (response.status >= 200 && response.status < 300) {
      const header = response.headers.get('x-consul-index');
      const index = header !== null && /^\d+$/.test(header) ? Number(header) : null;
      let body: T;
      try {
        body = (text === '' ? null : JSON.parse(text)) as T;
      } catch {
        throw new ConsulRequestError(
          'unavailable',
          `Consul answered ${what} with something that is not JSON: ${text.slice(0, 200)}`,
          response.status,
          text,
        );
      }
      return { status: response.status, body, index, headers: response.headers };
    }
    throw this.failure(response.status, text.trim(), what);
  }

  private failure(status: number, said: string, what: string): ConsulRequestError {
    const quoted = said ? `: ${said}` : '';
    if (status === 403) {
      let hint: string;
      if (/acl not found/i.test(said)) {
        hint = this.hasToken
          ? 'the configured ACL token (discovery.consul.token) is not known to Consul: it was deleted, expired, or belongs to another cluster'
          : 'Consul wants an ACL token: set discovery.consul.token';
      } else {
        hint = this.hasToken
          ? 'the configured ACL token lacks a permission this needs (service:write on the service to register, deregister and pass checks; service:read and node:read to list)'
          : 'no ACL token is configured (discovery.consul.token) and the anonymous token may not do this';
      }
      return new ConsulRequestError('forbidden', `Consul denied ${what} (403${quoted}): ${hint}`, status, said);
    }
    if (status === 400)
      return new ConsulRequestError('validation_failed', `Consul rejected ${what} (400${quoted})`, status, said);
    if (status === 404)
      return new ConsulRequestError('not_found', `Consul has no such thing for ${what} (404${quoted})`, status, said);
    if (status === 429)
      return new ConsulRequestError('rate_limited', `Consul is rate limiting ${what} (429${quoted})`, status, said);
    if (status >= 500)
      return new ConsulRequestError('unavailable', `Consul failed ${what} (${status}${quoted})`, status, said);
    return new ConsulRequestError('internal', `Consul answered ${what} with ${status}${quoted}`, status, said);
  }
}
