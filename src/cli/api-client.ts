/** The CLI's HTTP client for /api/v1. Errors come back as CliError with the API's code and message. */
import { authHeaders } from './credentials.ts';

export class CliError extends Error {
  constructor(
    message: string,
    readonly code = 'error',
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export class ApiClient {
  constructor(readonly baseUrl: string) {}

  async request<T>(method: string, path: string, body?: unknown): Promise<{ status: number; data: T }> {
    const url = `${this.baseUrl.replace(/\/$/, '')}/api/v1${path}`;
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers: { ...authHeaders(), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
      throw new CliError(
        `cannot reach the control plane at ${this.baseUrl} (${cause}); is \`aetherium dev\` running? Set --api or AETHERIUM_API to point elsewhere.`,
        'unreachable',
      );
    }
    const text = await response.text();
    let data: unknown = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      throw new CliError(`unexpected answer from ${url}: HTTP ${response.status} ${text.slice(0, 200)}`);
    }
    if (!response.ok) {
      const error = (data as { error?: { code?: string; message?: string } } | null)?.error;
      throw new CliError(error?.message ?? `HTTP ${response.status}`, error?.code ?? String(response.status));
    }
    return { status: response.status, data: data as T };
  }

  get<T>(path: string) {
    return this.request<T>('GET', path).then((r) => r.data);
  }

  post<T>(path: string, body?: unknown) {
    return this.request<T>('POST', path, body ?? {});
  }

  delete<T>(path: string) {
    return this.request<T>('DELETE', path);
  }
}
