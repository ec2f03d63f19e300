/**
 * One REST request to the control plane, over node:http or node:https (so that a private CA can be
 * trusted), with the client's credentials, a per-request timeout and an AbortSignal. Failures that
 * are not an answer become the SDK's typed errors: unreachable, TLS, timeout, abort. Connections
 * are kept alive between requests (the sockets are unref'd while idle, so they never keep a
 * process running).
 */
import { Agent as HttpAgent, type IncomingHttpHeaders, type IncomingMessage, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { AbortError, type ApiError, connectionError, errorFromAnswer, ProtocolError, TimeoutError } from './errors.ts';

export interface TransportSettings {
  /** The control plane's base URL, e.g. http://localhost:8080 (without /api/v1). */
  apiUrl: string;
  token: string | null;
  /** The CA to trust for https:// (and wss://); undefined: the system's. */
  ca: Buffer | undefined;
  requestTimeoutMs: number;
  userAgent: string;
}

export interface HttpRequest {
  method: string;
  /** Under /api/v1, with its query: `/vms/abc?wait=true`. */
  path: string;
  headers?: Record<string, string>;
  /** JSON-encoded when given. */
  body?: unknown;
  signal?: AbortSignal | undefined;
  /** This request's timeout, when it is not the client's `requestTimeoutMs` (a wait on the server). */
  timeoutMs?: number | undefined;
}

export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  /** The JSON body, or null when it was empty. */
  body: unknown;
}

export class Transport {
  readonly base: URL;
  /** The settings without the token, which only `authHeaders()` reads (so no log or inspect shows it). */
  readonly settings: Readonly<Omit<TransportSettings, 'token'>>;
  readonly #token: string | null;
  private readonly agent: HttpAgent;

  constructor(settings: TransportSettings) {
    const { token, ...rest } = settings;
    this.#token = token;
    this.settings = rest;
    this.base = new URL(settings.apiUrl.replace(/\/+$/, ''));
    if (this.base.protocol !== 'http:' && this.base.protocol !== 'https:') {
      throw new ProtocolError(`the API URL must be http:// or https://, not ${this.base.protocol}`);
    }
    this.agent =
      this.base.protocol === 'https:'
        ? new HttpsAgent({ keepAlive: true, ...(settings.ca ? { ca: settings.ca } : {}) })
        : new HttpAgent({ keepAlive: true });
  }

  /** The full URL of a path under /api/v1. */
  url(path: string, protocol?: 'ws'): URL {
    const url = new URL(`${this.base.href.replace(/\/+$/, '')}/api/v1${path}`);
    if (protocol === 'ws') url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    return url;
  }

  /** The headers every request carries: the credentials (never in a URL) and who we are. */
  authHeaders(): Record<string, string> {
    return {
      'user-agent': this.settings.userAgent,
      ...(this.#token ? { authorization: `Bearer ${this.#token}` } : {}),
    };
  }

  /** Sends one request and reads its whole answer; an error status is an answer too (not thrown). */
  send(req: HttpRequest): Promise<HttpAnswer> {
    return this.exchange(req, (res, label, finish) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = null;
        if (text !== '') {
          try {
            body = JSON.parse(text);
          } catch {
            return finish(
              new ProtocolError(`${label}: the server answered HTTP ${res.statusCode} with a body that is not JSON`, {
                status: res.statusCode ?? 0,
                request: label,
              }),
            );
          }
        }
        finish(null, { status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
  }

  /**
   * Sends a request whose answer is read as it comes (NDJSON): each line is given to `onLine` until
   * the server ends it or `signal` aborts it (then it resolves). An error status rejects with the
   * typed error. The request timeout covers only the wait for the answer's headers.
   */
  async lines(req: HttpRequest, onLine: (line: string) => void): Promise<void> {
    let request = '';
    const answer = await this.exchange<HttpAnswer | null>(req, (res, label, finish, started) => {
      request = label;
      const status = res.statusCode ?? 0;
      if (status >= 400) {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          let body: unknown = null;
          try {
            body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            /* not our JSON: the status says it */
          }
          finish(null, { status, headers: res.headers, body });
        });
        return;
      }
      started();
      let pending = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        pending += chunk;
        const parts = pending.split('\n');
        pending = parts.pop() ?? '';
        for (const line of parts) if (line.trim()) onLine(line);
      });
      res.on('end', () => {
        if (pending.trim()) onLine(pending);
        finish(null, null);
      });
    });
    if (answer) throw errorFromAnswer(answer.status, answer.body, answer.headers, request);
  }

  /**
   * One request: `onResponse` reads the answer and calls `finish`. The timeout and the signal end
   * it with a typed error, until `started()` says a stream is flowing: from then the timeout no
   * longer applies and an abort ends it quietly.
   */
  private exchange<T>(
    req: HttpRequest,
    onResponse: (
      res: IncomingMessage,
      label: string,
      finish: (err: ApiError | null, value?: T) => void,
      started: () => void,
    ) => void,
  ): Promise<T> {
    const url = this.url(req.path);
    const label = `${req.method} ${url.pathname}`;
    const timeoutMs = req.timeoutMs ?? this.settings.requestTimeoutMs;
    const body = req.body === undefined ? undefined : JSON.stringify(req.body);
    const headers: Record<string, string> = {
      accept: 'application/json',
      ...this.authHeaders(),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...req.headers,
    };
    const open = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<T>((resolve, reject) => {
      if (req.signal?.aborted) return reject(new AbortError(`${label} was aborted`, { request: label }));
      let finished = false;
      let streaming = false;
      const finish = (err: ApiError | null, value?: T) => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        req.signal?.removeEventListener('abort', onAbort);
        if (err) {
          request.destroy();
          reject(err);
        } else resolve(value as T);
      };
      const request = open(url, { method: req.method, headers, agent: this.agent }, (res) => {
        if (finished) return void res.resume();
        res.on('error', (err) =>
          finish(
            new ProtocolError(`${label}: the answer was cut off (${err.message})`, { request: label, cause: err }),
          ),
        );
        res.on('aborted', () =>
          finish(
            new ProtocolError(`${label}: the connection closed before the whole answer arrived`, { request: label }),
          ),
        );
        onResponse(res, label, finish, () => {
          streaming = true;
          clearTimeout(timer);
        });
      });
      const timer = setTimeout(
        () =>
          finish(
            new TimeoutError('request', timeoutMs, `${label} got no answer within ${timeoutMs} ms (requestTimeoutMs)`, {
              request: label,
            }),
          ),
        timeoutMs,
      );
      const onAbort = () => {
        if (!streaming) return finish(new AbortError(`${label} was aborted`, { request: label }));
        finish(null, null as T);
        request.destroy();
      };
      req.signal?.addEventListener('abort', onAbort, { once: true });
      request.on('error', (err: NodeJS.ErrnoException) => finish(connectionError(url, err, label)));
      request.end(body);
    });
  }

  /** Closes the idle connections; requests made afterwards open new ones. */
  close(): void {
    this.agent.destroy();
  }
}

/** Whether a failure happened before anything reached the server (safe to send again, whatever the method). */
export function neverSent(err: unknown): boolean {
  const cause = (err as { cause?: NodeJS.ErrnoException } | null)?.cause;
  return cause?.code === 'ECONNREFUSED' || cause?.code === 'ENOTFOUND' || cause?.code === 'EAI_AGAIN';
}
