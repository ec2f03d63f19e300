/**
 * A minimal client for Consul's HTTP API: base URL from address + scheme, the ACL token in
 * `X-Consul-Token` on every request when one is configured, `X-Consul-Index` read from responses,
 * and every failure turned into an AetheriumError a person can act on. The token never appears in
 * a message.
 *
 * node:http / node:https rather than fetch: an agent with a private CA (Consul's `tls` stanza, its
 * own `consul tls ca create`) and a client certificate (`verify_incoming`) needs an https.Agent,
 * and Node's fetch takes no agent. The agent keeps connections alive, as fetch did.
 */
import { Agent as HttpAgent, type IncomingHttpHeaders, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { AetheriumError, type ErrorCode } from '../../domain/index.ts';
import { tlsFailureHint } from '../tls-errors.ts';

export interface ConsulHttpOptions {
  /** `host:port`, or a full URL (then `scheme` is ignored). */
  address: string;
  scheme: 'http' | 'https';
  /** ACL token; empty: none is sent. */
  token: string;
  /** Per request, unless the call says otherwise (default 10 s). */
  timeoutMs?: number;
  /** For https: PEM contents of the CA to trust (none: the system's CAs) and a client certificate. */
  tls?: ConsulTls;
}

export interface ConsulTls {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
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

interface RawResponse {
  status: number;
  headers: Headers;
  text: string;
}

function toHeaders(raw: IncomingHttpHeaders): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) headers.append(name, one);
  }
  return headers;
}

export class ConsulHttp {
  readonly baseUrl: string;
  private readonly token: string;
  private readonly timeoutMs: number;
  private readonly https: boolean;
  private readonly hasClientCert: boolean;
  private readonly agent: HttpAgent;

  constructor(options: ConsulHttpOptions) {
    this.baseUrl = consulBaseUrl(options.address, options.scheme);
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.https = this.baseUrl.toLowerCase().startsWith('https:');
    const tls = options.tls ?? {};
    const hasTls = tls.ca !== undefined || tls.cert !== undefined || tls.key !== undefined;
    this.hasClientCert = tls.cert !== undefined;
    if (hasTls && !this.https)
      throw new AetheriumError(
        'validation_failed',
        `Consul TLS files are set (discovery.consul.ca_file, cert_file, key_file) but ${this.baseUrl} is http: set discovery.consul.scheme to https`,
      );
    this.agent = this.https ? new HttpsAgent({ keepAlive: true, ...tls }) : new HttpAgent({ keepAlive: true });
  }

  /** Drops the kept-alive connections. */
  close(): void {
    this.agent.destroy();
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

    let response: RawResponse;
    try {
      response = await this.send(
        url,
        method,
        headers,
        request.body === undefined ? undefined : JSON.stringify(request.body),
        signal,
      );
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
      const code = (err as { code?: unknown }).code;
      const message = err instanceof Error ? err.message : String(err);
      const tlsHint = tlsFailureHint(err, {
        ca: 'discovery.consul.ca_file',
        cert: 'discovery.consul.cert_file and key_file',
      });
      // An errno says it best (ECONNREFUSED); a certificate failure needs its words and the setting.
      const reason = typeof code === 'string' && /^E[A-Z]+$/.test(code) ? code : message;
      // In TLS 1.3 an agent checks the client's certificate after the handshake: the reset may
      // reach us before the alert that says why. Without a certificate that is the likely why.
      const reset = code === 'ECONNRESET' || code === 'EPIPE';
      const hint = tlsHint
        ? `TLS: ${tlsHint}`
        : reset && this.https && !this.hasClientCert
          ? 'the agent closed the connection, as one with verify_incoming does just after the TLS handshake when this client shows no certificate: set discovery.consul.cert_file and key_file'
          : 'is the agent running, and are discovery.consul.address and scheme right?';
      throw new ConsulRequestError(
        'unavailable',
        `cannot reach Consul at ${this.baseUrl} (${reason}) for ${what}: ${hint}`,
        null,
        '',
      );
    }
    const { text } = response;

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

  private send(
    url: URL,
    method: string,
    headers: Record<string, string>,
    body: string | undefined,
    signal: AbortSignal,
  ): Promise<RawResponse> {
    return new Promise((resolve, reject) => {
      const send = this.https ? httpsRequest : httpRequest;
      if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
      const req = send(url, { method, headers, agent: this.agent, signal }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: toHeaders(res.headers),
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      });
      req.on('error', reject);
      req.end(body);
    });
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
