/**
 * The SDK's transport in a browser (or any runtime with fetch and WebSocket): REST over fetch and
 * WebSockets over the platform's own. A page cannot set headers on a WebSocket, so the token is
 * offered as the subprotocol `aetherium.bearer.<token>` beside `aetherium.v1` (never in the URL);
 * the server answers `aetherium.v1` only. A browser does not show a refused upgrade's answer: a
 * refusal is a failed connection here, so a page checks its credentials over REST first.
 */
import { AbortError, ApiError, errorFromAnswer, ProtocolError, TimeoutError, UnavailableError } from './errors.ts';
import {
  type ApiSocket,
  deliverFrame,
  type MessageHandler,
  type SocketOptions,
  WS_BEARER_PREFIX,
  WS_PROTOCOL,
} from './socket.ts';
import {
  type AnswerHeaders,
  apiUrl,
  baseUrl,
  type HttpAnswer,
  type HttpRequest,
  type Transport,
  type TransportSettings,
} from './transport.ts';

export class FetchTransport implements Transport {
  readonly base: URL;
  readonly settings: Readonly<Omit<TransportSettings, 'token'>>;
  readonly #token: string | null;

  constructor(settings: TransportSettings) {
    const { token, ...rest } = settings;
    this.#token = token;
    this.settings = rest;
    this.base = baseUrl(settings.apiUrl, (message) => new ProtocolError(message));
  }

  url(path: string, protocol?: 'ws'): URL {
    return apiUrl(this.base, path, protocol);
  }

  async send(req: HttpRequest): Promise<HttpAnswer> {
    const { response, label, done } = await this.fetch(req);
    try {
      const text = await response.text();
      let body: unknown = null;
      if (text !== '') {
        try {
          body = JSON.parse(text);
        } catch {
          throw new ProtocolError(
            `${label}: the server answered HTTP ${response.status} with a body that is not JSON`,
            {
              status: response.status,
              request: label,
            },
          );
        }
      }
      return { status: response.status, headers: headersOf(response.headers), body };
    } catch (err) {
      throw this.failure(err, req, label);
    } finally {
      done();
    }
  }

  async lines(req: HttpRequest, onLine: (line: string) => void): Promise<void> {
    const { response, label, done } = await this.fetch(req);
    // From here the stream flows: the timeout no longer applies, an abort ends it quietly.
    done();
    if (response.status >= 400) {
      let body: unknown = null;
      try {
        body = await response.json();
      } catch {
        /* not our JSON: the status says it */
      }
      throw errorFromAnswer(response.status, body, headersOf(response.headers), label);
    }
    if (!response.body) return;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let pending = '';
    try {
      for (;;) {
        const { value, done: ended } = await reader.read();
        if (ended) break;
        pending += value;
        const parts = pending.split('\n');
        pending = parts.pop() ?? '';
        for (const line of parts) if (line.trim()) onLine(line);
      }
      if (pending.trim()) onLine(pending);
    } catch (err) {
      if (req.signal?.aborted) return;
      throw new ProtocolError(`${label}: the answer was cut off (${(err as Error).message})`, {
        request: label,
        cause: err,
      });
    }
  }

  openSocket(path: string, onMessage: MessageHandler, options: SocketOptions = {}): Promise<ApiSocket> {
    const url = this.url(path, 'ws');
    const label = `GET ${url.pathname}`;
    const timeoutMs = options.timeoutMs ?? this.settings.requestTimeoutMs;
    const protocols = [WS_PROTOCOL, ...(this.#token ? [`${WS_BEARER_PREFIX}${this.#token}`] : [])];
    return new Promise<ApiSocket>((resolve, reject) => {
      if (options.signal?.aborted) return reject(new AbortError(`${label} was aborted`, { request: label }));
      const ws = new WebSocket(url, protocols);
      let settled = false;
      const fail = (err: ApiError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        ws.onmessage = null;
        ws.close();
        reject(err);
      };
      const onAbort = () => fail(new AbortError(`${label} was aborted`, { request: label }));
      options.signal?.addEventListener('abort', onAbort, { once: true });
      const timer = setTimeout(
        () => fail(new TimeoutError('request', timeoutMs, `${label}: no WebSocket handshake within ${timeoutMs} ms`)),
        timeoutMs,
      );
      ws.onerror = () => undefined; // the close that follows says why
      ws.onmessage = (event) => {
        if (typeof event.data === 'string') deliverFrame(event.data, onMessage);
      };
      ws.onopen = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        resolve(wrap(ws));
      };
      ws.onclose = (event) =>
        fail(
          new UnavailableError(
            'unreachable',
            `${label}: the WebSocket was refused or could not connect (${event.code}); check the API URL and that the credentials are valid`,
            { request: label },
          ),
        );
    });
  }

  close(): void {
    /* fetch pools its connections itself */
  }

  /** Starts a request; `done()` stops its timeout and releases the abort listener. */
  private async fetch(req: HttpRequest): Promise<{ response: Response; label: string; done: () => void }> {
    const url = this.url(req.path);
    const label = `${req.method} ${url.pathname}`;
    const timeoutMs = req.timeoutMs ?? this.settings.requestTimeoutMs;
    if (req.signal?.aborted) throw new AbortError(`${label} was aborted`, { request: label });
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const onAbort = () => controller.abort();
    req.signal?.addEventListener('abort', onAbort, { once: true });
    // The caller's signal stays attached: it also ends a stream that is flowing.
    const done = () => clearTimeout(timer);
    const body = req.body === undefined ? undefined : JSON.stringify(req.body);
    try {
      const response = await fetch(url, {
        method: req.method,
        headers: {
          accept: 'application/json',
          ...(this.#token ? { authorization: `Bearer ${this.#token}` } : {}),
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...req.headers,
        },
        ...(body === undefined ? {} : { body }),
        signal: controller.signal,
        // Credentials are the bearer token only: no cookies travel, so no forged request carries any.
        credentials: 'omit',
      });
      return { response, label, done };
    } catch (err) {
      done();
      if (timedOut)
        throw new TimeoutError(
          'request',
          timeoutMs,
          `${label} got no answer within ${timeoutMs} ms (requestTimeoutMs)`,
          {
            request: label,
          },
        );
      throw this.failure(err, req, label);
    }
  }

  private failure(err: unknown, req: HttpRequest, label: string): ApiError {
    if (err instanceof ApiError) return err;
    if (req.signal?.aborted) return new AbortError(`${label} was aborted`, { request: label });
    return new UnavailableError(
      'unreachable',
      `cannot reach the control plane at ${this.base.origin} (${(err as Error).message})`,
      { request: label, cause: err },
    );
  }
}

function headersOf(headers: Headers): AnswerHeaders {
  const out: AnswerHeaders = {};
  headers.forEach((value, name) => {
    out[name] = value;
  });
  return out;
}

function wrap(ws: WebSocket): ApiSocket {
  return {
    get isOpen() {
      return ws.readyState === WebSocket.OPEN;
    },
    get bufferedAmount() {
      return ws.bufferedAmount;
    },
    send: (text) => ws.send(text),
    close: (code, reason) => ws.close(code, reason),
    onClose(listener) {
      ws.onclose = (event) => listener(event.code, event.reason);
    },
  };
}
