/**
 * The client: `new Aetherium()` finds the control plane and its credentials (settings.ts), and
 * gives the API's resources on one typed caller over the contract.
 */
import type { ClusterEvent } from '../domain/events.ts';
import {
  Caller,
  type CallOptions,
  type RestRouteName,
  type RouteAnswer,
  type RouteInput,
  type RouteOutput,
} from './call.ts';
import {
  type EventFilter,
  type EventHandler,
  type SubscribeOptions,
  type Subscription,
  stream,
  subscribe,
} from './events.ts';
import { Audit, Cluster, Schedule, type Signal, Tasks, Tokens, Workers } from './resources.ts';
import { type ClientOptions, type ResolvedSettings, resolveSettings } from './settings.ts';
import { Transport } from './transport.ts';
import type { HealthReport } from './types.ts';
import { Vms } from './vms.ts';

const USER_AGENT = `aetherium-sdk (node ${process.versions.node})`;

export class Events {
  constructor(private readonly transport: Transport) {}

  /**
   * Follows the cluster's events: `handler` gets each once, in order, across reconnects. Returns
   * the subscription (`close()`, or `await using`).
   */
  subscribe(filter: EventFilter, handler: EventHandler, options: SubscribeOptions = {}): Subscription {
    return subscribe(this.transport, filter, handler, options);
  }

  /** The same as an async iterator: `for await (const event of client.events.stream({ topics: ['vm'] }))`. */
  stream(filter: EventFilter = {}, options: SubscribeOptions = {}): AsyncIterableIterator<ClusterEvent> & Subscription {
    return stream(this.transport, filter, options);
  }
}

export class Aetherium {
  /** Where this client connects, and where each setting came from (never the token itself). */
  readonly settings: Readonly<Omit<ResolvedSettings, 'token' | 'ca'>> & { readonly hasToken: boolean };
  readonly vms: Vms;
  readonly tasks: Tasks;
  readonly workers: Workers;
  readonly schedule: Schedule;
  readonly cluster: Cluster;
  readonly tokens: Tokens;
  readonly audit: Audit;
  readonly events: Events;
  readonly #caller: Caller;

  constructor(options: ClientOptions = {}) {
    const resolved = resolveSettings(options);
    const transport = new Transport({
      apiUrl: resolved.apiUrl,
      token: resolved.token,
      ca: resolved.ca,
      requestTimeoutMs: resolved.requestTimeoutMs,
      userAgent: USER_AGENT,
    });
    const { token: _token, ca: _ca, ...visible } = resolved;
    this.settings = Object.freeze({ ...visible, hasToken: resolved.token !== null });
    this.#caller = new Caller(transport, resolved.retries);
    this.tasks = new Tasks(this.#caller);
    this.vms = new Vms(this.#caller, this.tasks);
    this.workers = new Workers(this.#caller);
    this.schedule = new Schedule(this.#caller);
    this.cluster = new Cluster(this.#caller);
    this.tokens = new Tokens(this.#caller);
    this.audit = new Audit(this.#caller);
    this.events = new Events(transport);
  }

  /** The control plane's base URL. */
  get apiUrl(): string {
    return this.settings.apiUrl;
  }

  /** Each engine's state, and every warning (a degraded system answers too: `status: 'degraded'`). */
  health(options: Signal = {}): Promise<HealthReport> {
    return this.#caller.call('health', {}, options);
  }

  /**
   * Any route of the contract, typed: `call('getVm', { params: { id } })`. Inputs are the route's
   * request schemas (as the wire takes them), the answer its decoded success answer.
   */
  call<N extends RestRouteName>(name: N, input: RouteInput<N>, options: CallOptions = {}): Promise<RouteOutput<N>> {
    return this.#caller.call(name, input, options);
  }

  /** As `call`, with the answer's status and headers. */
  request<N extends RestRouteName>(name: N, input: RouteInput<N>, options: CallOptions = {}): Promise<RouteAnswer<N>> {
    return this.#caller.request(name, input, options);
  }

  /** Closes idle connections (they never keep a process running anyway). */
  close(): void {
    this.#caller.transport.close();
  }
}
