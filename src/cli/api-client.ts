/** The CLI's HTTP client for /api/v1. Errors come back as CliError with the API's code and message. */
import { authHeaders } from './credentials.ts';
import { CliError } from './errors.ts';
import { send } from './http.ts';

export { CliError };

export class ApiClient {
  constructor(readonly baseUrl: string) {}

  async request<T>(method: string, path: string, body?: unknown): Promise<{ status: number; data: T }> {
    const url = `${this.baseUrl.replace(/\/$/, '')}/api/v1${path}`;
    const headers = { ...authHeaders(), ...(body === undefined ? {} : { 'content-type': 'application/json' }) };
    const response = await send(url, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const { text } = response;
    let data: unknown = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      throw new CliError(`unexpected answer from ${url}: HTTP ${response.status} ${text.slice(0, 200)}`);
    }
    if (response.status >= 400) {
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
