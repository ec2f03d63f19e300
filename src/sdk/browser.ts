/**
 * The SDK in a web page (`aetherium/sdk` resolves here under the `browser` condition): the same
 * client over fetch and the page's WebSocket. A page gives its API URL and token itself: there is
 * no configuration file or environment to read.
 */
import { BaseClient } from './base-client.ts';
import { FetchTransport } from './fetch-transport.ts';
import { DEFAULT_REQUEST_TIMEOUT_MS } from './limits.ts';

export interface BrowserClientOptions {
  /** The control plane's base URL (without /api/v1); a page served by it uses its own base. */
  apiUrl: string;
  /** An API key (`ae_…`) or a JWT; null when the server has authentication off. */
  token?: string | null;
  /** The timeout of each REST request, in ms (default 30 s). */
  requestTimeoutMs?: number;
  /** How many times a request that may safely be sent again is retried (default 2). */
  retries?: number;
}

export class Aetherium extends BaseClient {
  readonly hasToken: boolean;

  constructor(options: BrowserClientOptions) {
    super(
      new FetchTransport({
        apiUrl: options.apiUrl,
        token: options.token ?? null,
        requestTimeoutMs: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
        userAgent: 'aetherium-sdk (browser)',
      }),
      Math.max(0, Math.floor(options.retries ?? 2)),
    );
    this.hasToken = Boolean(options.token);
  }
}

export * from './common-exports.ts';
// The vocabularies a page shows and filters by, from the domain the server uses.
export { WORKER_STATUSES } from '../domain/worker.ts';
export { DRIVER_NAMES, VM_STATUSES } from '../domain/vm.ts';
export { FINAL_TASK_STATUSES, TASK_STATUSES, TASK_TYPES } from '../domain/task.ts';
export { STRATEGIES, type Strategy } from '../domain/placement.ts';
export { ROLES, type Role, roleAtLeast } from '../domain/auth.ts';
