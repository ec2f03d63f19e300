/**
 * How the SDK reaches the control plane: REST requests, NDJSON streams and WebSockets, with the
 * client's credentials, a per-request timeout and an AbortSignal. Two implementations: Node's
 * (node-transport.ts: node:http/https, so a private CA can be trusted, and `ws`) and the
 * browser's (fetch-transport.ts: fetch and the page's WebSocket). Failures that are not an answer
 * become the SDK's typed errors: unreachable, TLS, timeout, abort.
 */
import type { ApiSocket, MessageHandler, SocketOptions } from './socket.ts';

export interface TransportSettings {
  /** The control plane's base URL, e.g. http://localhost:8080 (without /api/v1). */
  apiUrl: string;
  token: string | null;
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

/** Header names in lower case, as Node gives them. */
export type AnswerHeaders = Record<string, string | string[] | undefined>;

export interface HttpAnswer {
  status: number;
  headers: AnswerHeaders;
  /** The JSON body, or null when it was empty. */
  body: unknown;
}

export interface Transport {
  readonly base: URL;
  /** The settings without the token (so no log or inspect shows it). */
  readonly settings: Readonly<Omit<TransportSettings, 'token'>>;
  /** The full URL of a path under /api/v1. */
  url(path: string, protocol?: 'ws'): URL;
  /** Sends one request and reads its whole answer; an error status is an answer too (not thrown). */
  send(req: HttpRequest): Promise<HttpAnswer>;
  /**
   * Sends a request whose answer is read as it comes (NDJSON): each line is given to `onLine` until
   * the server ends it or `signal` aborts it (then it resolves). An error status rejects with the
   * typed error. The request timeout covers only the wait for the answer's headers.
   */
  lines(req: HttpRequest, onLine: (line: string) => void): Promise<void>;
  /**
   * Opens the WebSocket at `path` (under /api/v1, with its query). `onMessage` is attached before
   * the handshake ends, so a message the server sends with the upgrade is not missed.
   */
  openSocket(path: string, onMessage: MessageHandler, options?: SocketOptions): Promise<ApiSocket>;
  /** Closes idle connections; requests made afterwards open new ones. */
  close(): void;
}

/** The API URL of a path under /api/v1 on `base`, as http(s) or ws(s). */
export function apiUrl(base: URL, path: string, protocol?: 'ws'): URL {
  const url = new URL(`${base.href.replace(/\/+$/, '')}/api/v1${path}`);
  if (protocol === 'ws') url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url;
}

/** The base URL, checked: only http:// and https:// are spoken. */
export function baseUrl(apiUrl: string, invalid: (message: string) => Error): URL {
  const base = new URL(apiUrl.replace(/\/+$/, ''));
  if (base.protocol !== 'http:' && base.protocol !== 'https:')
    throw invalid(`the API URL must be http:// or https://, not ${base.protocol}`);
  return base;
}

/** Whether a failure happened before anything reached the server (safe to send again, whatever the method). */
export function neverSent(err: unknown): boolean {
  const cause = (err as { cause?: { code?: string } } | null)?.cause;
  return cause?.code === 'ECONNREFUSED' || cause?.code === 'ENOTFOUND' || cause?.code === 'EAI_AGAIN';
}
