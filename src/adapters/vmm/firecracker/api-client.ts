/**
 * A small client for Firecracker's API: HTTP/1.1 over the Unix socket given by `--api-sock`
 * (node:http with `socketPath`). Every failure becomes an AetheriumError('driver_failed') whose
 * message names the method, the path and what went wrong:
 *  - a 4xx/5xx answer: Firecracker's `fault_message` (definition `Error`), or the raw body when it
 *    is not the JSON Firecracker sends, or "(empty body)";
 *  - no answer within the timeout: the socket is closed and the request fails;
 *  - no socket / nobody listening: "cannot reach the Firecracker API socket".
 */
import { request as httpRequest } from 'node:http';
import { AetheriumError } from '../../../domain/index.ts';
import type { InstanceActionType, InstanceInfo } from './requests.ts';
import { actionBody } from './requests.ts';

export const DEFAULT_API_TIMEOUT_MS = 5_000;
const MAX_BODY_BYTES = 1024 * 1024;

export interface ApiResponse {
  status: number;
  body: string;
}

export class FirecrackerApiError extends AetheriumError {
  constructor(
    message: string,
    readonly method: string,
    readonly path: string,
    readonly httpStatus: number | null,
    readonly faultMessage: string | null,
  ) {
    super('driver_failed', message, { method, path, status: httpStatus, fault_message: faultMessage });
  }
}

export class FirecrackerApiClient {
  constructor(
    readonly socketPath: string,
    private readonly timeoutMs: number = DEFAULT_API_TIMEOUT_MS,
  ) {}

  /** Sends one request; resolves with any HTTP answer, rejects only when there is none. */
  raw(method: string, path: string, body?: unknown, timeoutMs: number = this.timeoutMs): Promise<ApiResponse> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8');
    return new Promise<ApiResponse>((resolve, reject) => {
      let done = false;
      const fail = (message: string): void => {
        if (done) return;
        done = true;
        reject(new FirecrackerApiError(`firecracker API ${method} ${path} ${message}`, method, path, null, null));
      };
      const req = httpRequest(
        {
          socketPath: this.socketPath,
          method,
          path,
          host: 'localhost',
          agent: false,
          headers: {
            Accept: 'application/json',
            ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': payload.length } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size <= MAX_BODY_BYTES) chunks.push(chunk);
          });
          res.on('end', () => {
            if (done) return;
            done = true;
            clearTimeout(timer);
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
          });
          res.on('error', (err) => fail(`failed while reading the answer: ${err.message}`));
        },
      );
      const timer = setTimeout(() => {
        fail(`got no answer within ${timeoutMs} ms on ${this.socketPath}`);
        req.destroy();
      }, timeoutMs);
      req.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED')
          fail(`cannot reach the Firecracker API socket ${this.socketPath} (${err.code})`);
        else fail(`failed: ${err.code ?? err.message}${err.code ? ` (${err.message})` : ''}`);
      });
      req.end(payload);
    });
  }

  /** Sends one request and turns a non-2xx answer into a FirecrackerApiError. Returns the body. */
  async call(method: string, path: string, body?: unknown, timeoutMs?: number): Promise<string> {
    const res = await this.raw(method, path, body, timeoutMs);
    if (res.status >= 200 && res.status < 300) return res.body;
    const fault = faultMessage(res.body);
    const detail =
      fault !== null
        ? fault
        : res.body.trim() === ''
          ? '(empty body)'
          : `(not a Firecracker error body) ${truncate(res.body.trim(), 300)}`;
    throw new FirecrackerApiError(
      `firecracker API ${method} ${path} failed with HTTP ${res.status}: ${detail}`,
      method,
      path,
      res.status,
      fault,
    );
  }

  async put(path: string, body: unknown): Promise<void> {
    await this.call('PUT', path, body);
  }

  async action(action: InstanceActionType): Promise<void> {
    await this.put('/actions', actionBody(action));
  }

  async describeInstance(timeoutMs?: number): Promise<InstanceInfo> {
    const text = await this.call('GET', '/', undefined, timeoutMs);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new FirecrackerApiError(
        `firecracker API GET / answered with a body that is not JSON: ${truncate(text, 200)}`,
        'GET',
        '/',
        200,
        null,
      );
    }
    const info = parsed as Partial<InstanceInfo> | null;
    if (!info || typeof info !== 'object' || typeof info.state !== 'string') {
      throw new FirecrackerApiError(
        `firecracker API GET / answered without an instance state: ${truncate(text, 200)}`,
        'GET',
        '/',
        200,
        null,
      );
    }
    return info as InstanceInfo;
  }
}

/** The `fault_message` of a Firecracker error body, or null when the body is not one. */
export function faultMessage(body: string): string | null {
  try {
    const parsed = JSON.parse(body) as unknown;
    if (
      parsed &&
      typeof parsed === 'object' &&
      typeof (parsed as { fault_message?: unknown }).fault_message === 'string'
    ) {
      return (parsed as { fault_message: string }).fault_message;
    }
  } catch {
    // not JSON
  }
  return null;
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
