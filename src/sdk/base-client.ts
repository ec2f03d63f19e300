/**
 * The client's resources on one typed caller over the contract, whatever carries the requests:
 * `Aetherium` in Node (client.ts) finds its settings and credentials, the browser's (browser.ts) is
 * given them by the page. Both are this class with their own transport.
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
import type { Transport } from './transport.ts';
import type { HealthReport, Identity } from './types.ts';
import { Vms } from './vms.ts';

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

export class BaseClient {
  readonly vms: Vms;
  readonly tasks: Tasks;
  readonly workers: Workers;
  readonly schedule: Schedule;
  readonly cluster: Cluster;
  readonly tokens: Tokens;
  readonly audit: Audit;
  readonly events: Events;
  readonly #caller: Caller;

  constructor(transport: Transport, retries: number) {
    this.#caller = new Caller(transport, retries);
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
    return this.#caller.transport.base.href.replace(/\/+$/, '');
  }

  /** Each engine's state, and every warning (a degraded system answers too: `status: 'degraded'`). */
  health(options: Signal = {}): Promise<HealthReport> {
    return this.#caller.call('health', {}, options);
  }

  /** Who the server takes this client for: the key or JWT subject, and its role. */
  whoami(options: Signal = {}): Promise<Identity> {
    return this.#caller.call('whoami', {}, options);
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
