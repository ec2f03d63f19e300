/**
 * The SDK's transport in Node: REST over node:http or node:https (so that a private CA can be
 * trusted) and WebSockets over `ws`, with the credentials in the Authorization header. Connections
 * are kept alive between requests (the sockets are unref'd while idle, so they never keep a
 * process running). `ws` is loaded on first use, so a program that makes only REST calls never
 * pays for it. A refused upgrade (401, 403, 404, 400) is the typed error of its answer.
 */
import { Agent as HttpAgent, type IncomingMessage, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type WebSocket from 'ws';
import { AbortError, type ApiError, connectionError, errorFromAnswer, ProtocolError, TimeoutError } from './errors.ts';
import { type ApiSocket, deliverFrame, type MessageHandler, type SocketOptions, WS_PROTOCOL } from './socket.ts';
import {
  apiUrl,
  baseUrl,
  type HttpAnswer,
  type HttpRequest,
  type Transport,
  type TransportSettings,
} from './transport.ts';

export interface NodeTransportSettings extends TransportSettings {
  /** The CA to trust for https:// (and wss://); undefined: the system's. */
  ca: Buffer | undefined;
}

let wsModule: Promise<typeof import('ws')> | null = null;

/** The `ws` socket as the SDK uses it. */
function wrap(ws: WebSocket): ApiSocket {
  return {
    get isOpen() {
      return ws.readyState === ws.OPEN;
    },
    get bufferedAmount() {
      return ws.bufferedAmount;
    },
    send: (text) => ws.send(text),
    close: (code, reason) => ws.close(code, reason),
    onClose(listener) {
      ws.on('error', () => undefined); // the close that follows says it
      ws.once('close', (code, reason) => listener(code, reason.toString()));
    },
  };
}

export class NodeTransport implements Transport {
  readonly base: URL;
  /** The settings without the token, which only `authHeaders()` reads (so no log or inspect shows it). */
  readonly settings: Readonly<Omit<TransportSettings, 'token'>>;
  readonly #token: string | null;
  readonly #ca: Buffer | undefined;
  private readonly agent: HttpAgent;

  constructor(settings: NodeTransportSettings) {
    const { token, ca, ...rest } = settings;
    this.#token = token;
    this.#ca = ca;
    this.settings = rest;
    this.base = baseUrl(settings.apiUrl, (message) => new ProtocolError(message));
    this.agent =
      this.base.protocol === 'https:'
        ? new HttpsAgent({ keepAlive: true, ...(ca ? { ca } : {}) })
        : new HttpAgent({ keepAlive: true });
  }

  /** The full URL of a path under /api/v1. */
  url(path: string, protocol?: 'ws'): URL {
    return apiUrl(this.base, path, protocol);
  }

  /** The headers every request carries: the credentials (never in a URL) and who we are. */
  authHeaders(): Record<string, string> {
    return {
      'user-agent': this.settings.userAgent,
      ...(this.#token ? { authorization: `Bearer ${this.#token}` } : {}),
    };
  }

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

  async openSocket(path: string, onMessage: MessageHandler, options: SocketOptions = {}): Promise<ApiSocket> {
    const { default: WebSocketClass } = await (wsModule ??= import('ws'));
    const url = this.url(path, 'ws');
    const label = `GET ${url.pathname}`;
    const timeoutMs = options.timeoutMs ?? this.settings.requestTimeoutMs;
    return new Promise<ApiSocket>((resolve, reject) => {
      if (options.signal?.aborted) return reject(new AbortError(`${label} was aborted`, { request: label }));
      const ws = new WebSocketClass(url, [WS_PROTOCOL], {
        headers: this.authHeaders(),
        ...(this.#ca ? { ca: this.#ca } : {}),
        handshakeTimeout: timeoutMs,
        maxPayload: 64 * 1024 * 1024,
      });
      let settled = false;
      const fail = (err: ApiError) => {
        if (settled) return;
        settled = true;
        options.signal?.removeEventListener('abort', onAbort);
        ws.removeAllListeners('message');
        ws.terminate();
        reject(err);
      };
      const onAbort = () => fail(new AbortError(`${label} was aborted`, { request: label }));
      options.signal?.addEventListener('abort', onAbort, { once: true });
      ws.on('message', (raw) => deliverFrame(String(raw), onMessage));
      ws.once('open', () => {
        if (settled) return;
        settled = true;
        options.signal?.removeEventListener('abort', onAbort);
        resolve(wrap(ws));
      });
      ws.once('unexpected-response', (_request, response) => {
        const chunks: Buffer[] = [];
        response.on('data', (d: Buffer) => chunks.push(d));
        response.on('end', () => {
          let body: unknown = null;
          try {
            body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            /* the status says it */
          }
          fail(errorFromAnswer(response.statusCode ?? 0, body, response.headers, label));
        });
      });
      ws.on('error', (err: NodeJS.ErrnoException) => {
        if (settled) return;
        if (/handshake/i.test(err.message) && /timed out/i.test(err.message))
          return fail(
            new TimeoutError('request', timeoutMs, `${label}: no WebSocket handshake within ${timeoutMs} ms`),
          );
        fail(connectionError(url, err, label));
      });
    });
  }
}
