/**
 * ServiceRegistry on Consul's HTTP API. Each worker is one service instance of `serviceName`
 * (default `aetherium-worker`) registered with the LOCAL agent, ID = worker id, with one TTL check:
 *
 * - register: `PUT /v1/agent/service/register` with Address/Port (from the worker address), Tags
 *   (`zone:…`, `cap:…`), Meta (one entry per field, see consul-meta.ts) and
 *   `Check: { CheckID: "service:<id>", TTL: "<ttl_seconds>s", Status: "passing",
 *   DeregisterCriticalServiceAfter }`, then one check pass (Consul keeps the status of an existing
 *   check across a re-registration, so a critical worker would otherwise stay critical).
 * - heartbeat: `PUT /v1/agent/check/pass/service:<id>`. When the agent no longer knows the check
 *   (the service was reaped after DeregisterCriticalServiceAfter, or the agent lost its state), the
 *   worker is registered again from the last record this instance knew: it comes back.
 * - updateStatus / updateResources: register again with the new Meta (registration is idempotent).
 * - deregister: `PUT /v1/agent/service/deregister/<id>`.
 * - get / list: `GET /v1/health/service/<name>?dc=<dc>`; healthy = every check of the instance
 *   (its TTL check and the node's serfHealth) is passing, and the status is not offline.
 * - watch: blocking queries on that endpoint (`index` = the last `X-Consul-Index`, `wait`), diffed
 *   into joined / updated / left; an index that goes backwards resets to 0, an index below 1 is
 *   raised to 1, and a token bucket (burst 2) keeps a churning result from becoming a busy loop,
 *   as Consul's blocking-query documentation asks.
 *
 * `last_seen`: Consul does not say when a TTL check last passed, so a passing worker reports the
 * time of the reading (it passed within its TTL), and a failing one the last pass this instance
 * saw, else its registration time.
 *
 * Agent endpoints act on the agent this registry talks to: the worker's process should use its
 * own (local) agent. updateStatus / updateResources from another process re-register the instance
 * on THAT process's agent; Consul has no API to edit another agent's service Meta.
 */
import {
  AetheriumError,
  notFound,
  type WorkerFilter,
  type WorkerRegistration,
  type WorkerResources,
  type WorkerStatus,
} from '../../domain/index.ts';
import type { RegisteredWorker, ServiceRegistry, WorkerEvent } from '../../ports/service-registry.ts';
import { ConsulHttp, ConsulRequestError, type ConsulTls } from './consul-http.ts';
import { decodeService, encodeMeta, splitAddress, tagsFor } from './consul-meta.ts';
import { sleep } from './event-channel.ts';
import { PresenceTracker } from './presence-tracker.ts';
import {
  byId,
  matchesFilter,
  recordFromRegistration,
  toRegisteredWorker,
  ttlFor,
  validateRegistration,
  type WorkerRecord,
} from './worker-record.ts';

export interface ConsulRegistryOptions {
  /** `host:port` of the agent (or a full URL). */
  address: string;
  scheme: 'http' | 'https';
  /** Datacenter for catalog / health reads (`?dc=`); empty: the agent's own. */
  datacenter: string;
  /** ACL token sent as `X-Consul-Token` on every request; empty: none. */
  token: string;
  /** With `https`: PEM contents of the CA that signed the agent's certificate, and a client certificate. */
  tls?: ConsulTls;
  serviceName?: string;
  /**
   * Expected heartbeat cadence. TTL checks have no interval of their own; this only sets the TTL
   * (3 ×) when neither the registration nor `ttlSeconds` gives one.
   */
  checkIntervalMs?: number;
  /** Consul removes a service whose check stayed critical this long (Consul's minimum is 1 minute). */
  deregisterCriticalServiceAfterMs: number;
  /** Check TTL for a registration whose `ttl_seconds` is not positive. */
  ttlSeconds?: number;
  requestTimeoutMs?: number;
  /** How long one blocking query of `watch` may wait (default 60 s; Consul caps it at 10 min). */
  watchWaitSeconds?: number;
  /** Token bucket for the watch loop: `burst` quick queries, then one per `intervalMs` (default 2 / 1000 ms). */
  watchRateLimit?: { burst?: number; intervalMs?: number };
  now?: () => Date;
}

interface HealthCheck {
  CheckID: string;
  Status: string;
  ServiceID?: string;
}

interface HealthEntry {
  Node?: { Node?: string };
  Service: {
    ID: string;
    Service: string;
    Address?: string;
    Port?: number;
    Tags?: string[] | null;
    Meta?: Record<string, string> | null;
  };
  Checks?: HealthCheck[] | null;
}

const DEFAULT_SERVICE_NAME = 'aetherium-worker';

export class ConsulRegistry implements ServiceRegistry {
  readonly kind = 'consul';
  readonly serviceName: string;
  private readonly http: ConsulHttp;
  private readonly datacenter: string;
  private readonly defaultTtl: number;
  private readonly deregisterAfter: string;
  private readonly waitSeconds: number;
  private readonly burst: number;
  private readonly refillMs: number;
  private readonly now: () => Date;
  /** Workers this instance registered (and did not deregister): the last record it sent. */
  private readonly own = new Map<string, WorkerRecord>();
  /** The last time this instance saw (or made) each worker's check pass. */
  private readonly lastPass = new Map<string, Date>();
  private readonly closing = new AbortController();

  constructor(options: ConsulRegistryOptions) {
    this.http = new ConsulHttp({
      address: options.address,
      scheme: options.scheme,
      token: options.token,
      timeoutMs: options.requestTimeoutMs,
      ...(options.tls ? { tls: options.tls } : {}),
    });
    this.serviceName = options.serviceName || DEFAULT_SERVICE_NAME;
    this.datacenter = options.datacenter;
    this.defaultTtl =
      options.ttlSeconds ?? (options.checkIntervalMs ? Math.ceil((3 * options.checkIntervalMs) / 1000) : 30);
    this.deregisterAfter = goDuration(options.deregisterCriticalServiceAfterMs);
    this.waitSeconds = Math.min(600, Math.max(1, Math.round(options.watchWaitSeconds ?? 60)));
    this.burst = Math.max(1, options.watchRateLimit?.burst ?? 2);
    this.refillMs = Math.max(0, options.watchRateLimit?.intervalMs ?? 1000);
    this.now = options.now ?? (() => new Date());
  }

  static checkId(workerId: string): string {
    return `service:${workerId}`;
  }

  // ── ServiceRegistry ──────────────────────────────────────────────────────────────────────────

  async register(worker: WorkerRegistration): Promise<void> {
    validateRegistration(worker);
    // A re-registering worker keeps its drain state: from this instance, else from Consul (a
    // token that may write but not read the list just registers afresh; the PUT says what it may do).
    const previous = this.own.get(worker.id) ?? (await this.find(worker.id).catch(() => null))?.record ?? null;
    const record = recordFromRegistration(worker, this.now(), previous);
    await this.put(record);
    await this.pass(worker.id);
    this.own.set(worker.id, record);
  }

  async deregister(workerId: string): Promise<void> {
    this.own.delete(workerId);
    this.lastPass.delete(workerId);
    try {
      await this.http.request('PUT', `/v1/agent/service/deregister/${encodeURIComponent(workerId)}`);
    } catch (err) {
      if (err instanceof ConsulRequestError && err.httpStatus === 404) return; // already gone
      throw err;
    }
  }

  async updateStatus(workerId: string, status: WorkerStatus): Promise<void> {
    await this.change(workerId, (r) => ({ ...r, status }));
  }

  async updateResources(workerId: string, resources: WorkerResources): Promise<void> {
    const { cpu_cores, memory_mb, disk_gb, max_vms } = resources;
    await this.change(workerId, (r) => ({ ...r, cpu_cores, memory_mb, disk_gb, max_vms }));
  }

  async heartbeat(workerId: string): Promise<void> {
    const mine = this.own.get(workerId);
    if (mine?.status === 'offline') {
      // Like the built-in registry: an offline worker that beats again is active.
      const record = { ...mine, status: 'active' as const };
      await this.put(record);
      this.own.set(workerId, record);
    }
    try {
      await this.pass(workerId);
    } catch (err) {
      if (!isUnknownCheck(err)) throw err;
      // The agent forgot the worker (reaped after DeregisterCriticalServiceAfter, or it lost its
      // state): register it again from what this instance last sent.
      const known = this.own.get(workerId);
      if (!known) throw notFound('worker', workerId);
      const record = {
        ...known,
        status: known.status === 'offline' ? ('active' as const) : known.status,
        registered_at: this.now(),
      };
      await this.put(record);
      await this.pass(workerId);
      this.own.set(workerId, record);
    }
  }

  async getWorker(workerId: string): Promise<RegisteredWorker | null> {
    return (await this.list()).find((w) => w.id === workerId) ?? null;
  }

  async listWorkers(): Promise<RegisteredWorker[]> {
    return this.list();
  }

  async listWorkersWithFilter(filter: WorkerFilter): Promise<RegisteredWorker[]> {
    return (await this.list()).filter((w) => matchesFilter(w, filter));
  }

  async *watch(signal: AbortSignal): AsyncIterable<WorkerEvent> {
    const stop = AbortSignal.any([signal, this.closing.signal]);
    const tracker = new PresenceTracker();
    const bucket = new TokenBucket(this.burst, this.refillMs);
    let index = 0;
    let seeded = false;
    for (let failures = 0; !stop.aborted; ) {
      await bucket.take(stop);
      if (stop.aborted) return;
      let response: { entries: HealthEntry[]; index: number | null };
      try {
        response = await this.health(index > 0 ? { index, wait: this.waitSeconds, signal: stop } : { signal: stop });
        failures = 0;
      } catch {
        if (stop.aborted) return;
        failures++;
        await sleep(Math.min(30_000, 250 * 2 ** failures), stop);
        continue;
      }
      // Blocking-query rules: reset when the index goes backwards; never block on an index below 1.
      const next = response.index ?? 0;
      index = next < index ? 0 : Math.max(next, 1);
      const workers = this.decode(response.entries);
      if (!seeded) {
        tracker.seed(workers);
        seeded = true;
        continue;
      }
      for (const event of tracker.observeAll(workers)) {
        if (stop.aborted) return;
        yield event;
      }
    }
  }

  async close(): Promise<void> {
    this.closing.abort();
    this.http.close();
  }

  // ── Consul plumbing ──────────────────────────────────────────────────────────────────────────

  /** `PUT /v1/agent/service/register` of a record (Meta checked before anything is sent). */
  private async put(record: WorkerRecord): Promise<void> {
    const meta = encodeMeta(record);
    const { Address, Port } = splitAddress(record.address);
    await this.http.request('PUT', '/v1/agent/service/register', {
      body: {
        ID: record.id,
        Name: this.serviceName,
        Address,
        Port,
        Tags: tagsFor(record),
        Meta: meta,
        Check: {
          CheckID: ConsulRegistry.checkId(record.id),
          Name: `Aetherium worker ${record.id} heartbeat`,
          TTL: `${ttlFor(record.ttl_seconds, this.defaultTtl)}s`,
          Status: 'passing',
          DeregisterCriticalServiceAfter: this.deregisterAfter,
        },
      },
    });
  }

  private async pass(workerId: string): Promise<void> {
    await this.http.request('PUT', `/v1/agent/check/pass/${encodeURIComponent(ConsulRegistry.checkId(workerId))}`);
    this.lastPass.set(workerId, this.now());
  }

  /** Re-register with a changed record: from this instance's own copy, else from Consul. */
  private async change(workerId: string, update: (r: WorkerRecord) => WorkerRecord): Promise<void> {
    const known = (await this.find(workerId))?.record ?? this.own.get(workerId);
    if (!known) throw notFound('worker', workerId);
    const record = update(known);
    await this.put(record);
    if (this.own.has(workerId)) this.own.set(workerId, record);
  }

  private async find(workerId: string): Promise<{ record: WorkerRecord; worker: RegisteredWorker } | null> {
    const entries = (await this.health({})).entries;
    for (const entry of entries) {
      if (entry.Service.ID !== workerId) continue;
      const decoded = this.decodeEntry(entry);
      if (decoded) return decoded;
    }
    return null;
  }

  private async list(): Promise<RegisteredWorker[]> {
    return this.decode((await this.health({})).entries);
  }

  private async health(options: {
    index?: number;
    wait?: number;
    signal?: AbortSignal;
  }): Promise<{ entries: HealthEntry[]; index: number | null }> {
    const blocking = options.index !== undefined && options.wait !== undefined;
    const response = await this.http.request<HealthEntry[] | null>(
      'GET',
      `/v1/health/service/${encodeURIComponent(this.serviceName)}`,
      {
        query: {
          dc: this.datacenter || undefined,
          index: blocking ? String(options.index) : undefined,
          wait: blocking ? `${options.wait}s` : undefined,
        },
        signal: options.signal,
        // Consul may hold a blocking query up to wait + wait/16.
        timeoutMs: blocking ? Math.ceil(options.wait! * 1000 * (17 / 16)) + 10_000 : undefined,
      },
    );
    if (response.headers.get('x-consul-results-filtered-by-acls') === 'true') {
      throw new AetheriumError(
        'forbidden',
        `Consul hid instances of "${this.serviceName}" from the worker list because of ACLs: the ${this.http.hasToken ? 'configured token' : 'anonymous token (no discovery.consul.token set)'} needs service:read on "${this.serviceName}" and node:read`,
      );
    }
    return { entries: Array.isArray(response.body) ? response.body : [], index: response.index };
  }

  private decode(entries: HealthEntry[]): RegisteredWorker[] {
    const workers: RegisteredWorker[] = [];
    for (const entry of entries) {
      const decoded = this.decodeEntry(entry);
      if (decoded) workers.push(decoded.worker);
    }
    return workers.sort(byId);
  }

  private decodeEntry(entry: HealthEntry): { record: WorkerRecord; worker: RegisteredWorker } | null {
    const partial = decodeService(entry.Service);
    if (!partial) return null;
    const checks = entry.Checks ?? [];
    const passing = checks.length > 0 && checks.every((c) => c.Status === 'passing');
    const now = this.now();
    const seen = this.lastPass.get(partial.id);
    const lastSeen = passing ? now : seen && seen > partial.registered_at ? seen : partial.registered_at;
    const record: WorkerRecord = { ...partial, last_seen: lastSeen };
    return { record, worker: toRegisteredWorker(record, passing) };
  }
}

/** 404, or the 500 older agents answer, for a check the agent does not know. */
function isUnknownCheck(err: unknown): boolean {
  if (!(err instanceof ConsulRequestError)) return false;
  if (err.httpStatus === 404) return true;
  return err.httpStatus === 500 && /does not have associated TTL|unknown check/i.test(err.consulMessage);
}

/** Milliseconds as a Go duration string ("90s", "1m30s" is fine as "90s"). */
export function goDuration(ms: number): string {
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

class TokenBucket {
  private tokens: number;
  private last = Date.now();

  constructor(
    private readonly burst: number,
    private readonly refillMs: number,
  ) {
    this.tokens = burst;
  }

  async take(signal: AbortSignal): Promise<void> {
    for (;;) {
      if (this.refillMs === 0) return;
      const now = Date.now();
      this.tokens = Math.min(this.burst, this.tokens + (now - this.last) / this.refillMs);
      this.last = now;
      if (this.tokens >= 1) {
        this.tokens -= 1;
        return;
      }
      await sleep((1 - this.tokens) * this.refillMs, signal);
      if (signal.aborted) return;
    }
  }
}
