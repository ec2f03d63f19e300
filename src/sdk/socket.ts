/**
 * Opening the API's WebSockets (the event stream, interactive exec) with the client's credentials:
 * the token travels in the Authorization header of the upgrade, never in the URL. `ws` is loaded on
 * first use, so a program that makes only REST calls never pays for it. A refused upgrade (401,
 * 403, 404, 400) is the typed error of its answer; no answer at all is an UnavailableError.
 */
import type WebSocket from 'ws';
import { AbortError, type ApiError, connectionError, errorFromAnswer, TimeoutError } from './errors.ts';
import type { Transport } from './transport.ts';

/** The subprotocol the server speaks (see src/server/auth/auth-hooks.ts). */
const WS_PROTOCOL = 'aetherium.v1';

let wsModule: Promise<typeof import('ws')> | null = null;

export interface OpenedSocket {
  ws: WebSocket;
}

/**
 * Opens `path` (under /api/v1, with its query). `onMessage` is attached before the handshake ends,
 * so a message the server sends with the upgrade is not missed. One frame may carry several
 * messages, one JSON object per line; each is given on its own.
 */
export async function openSocket(
  transport: Transport,
  path: string,
  onMessage: (message: Record<string, unknown>) => void,
  options: { signal?: AbortSignal | undefined; timeoutMs?: number | undefined } = {},
): Promise<WebSocket> {
  const { default: WebSocketClass } = await (wsModule ??= import('ws'));
  const url = transport.url(path, 'ws');
  const label = `GET ${url.pathname}`;
  const timeoutMs = options.timeoutMs ?? transport.settings.requestTimeoutMs;
  return new Promise<WebSocket>((resolve, reject) => {
    if (options.signal?.aborted) return reject(new AbortError(`${label} was aborted`, { request: label }));
    const ws = new WebSocketClass(url, [WS_PROTOCOL], {
      headers: transport.authHeaders(),
      ...(transport.settings.ca ? { ca: transport.settings.ca } : {}),
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
    ws.on('message', (raw) => {
      for (const line of String(raw).split('\n')) {
        if (!line) continue;
        let message: unknown;
        try {
          message = JSON.parse(line);
        } catch {
          continue; // not one of ours
        }
        if (typeof message === 'object' && message !== null) onMessage(message as Record<string, unknown>);
      }
    });
    ws.once('open', () => {
      if (settled) return;
      settled = true;
      options.signal?.removeEventListener('abort', onAbort);
      resolve(ws);
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
        return fail(new TimeoutError('request', timeoutMs, `${label}: no WebSocket handshake within ${timeoutMs} ms`));
      fail(connectionError(url, err, label));
    });
  });
}
