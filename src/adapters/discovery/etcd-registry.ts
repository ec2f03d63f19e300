/**
 * ServiceRegistry on etcd v3. Each worker is ONE key, `<prefix><worker id>`, whose value is the
 * worker record as JSON (see etcd-record.ts), attached to ONE lease per worker whose TTL is the
 * worker's `ttl_seconds`. The key exists exactly as long as the lease lives, so "present in etcd"
 * is "alive"; `healthy` is reported as present and not `offline`.
 *
 * - register: grant a lease, put the record on it (compare-and-swap on the key's revision), revoke
 *   the lease of an earlier registration. Drain state and eligibility survive a re-registration.
 * - heartbeat: keep the lease alive once and rewrite the value with `last_seen` = now, on the same
 *   lease (read-modify-write, so a status another process wrote is kept). When the lease is gone
 *   (the worker was cut off longer than its TTL) a new lease is granted and the last record this
 *   instance knew is put again: the worker comes back.
 * - updateStatus / updateResources: read-modify-write of the value, on the key's current lease.
 * - deregister: revoke the lease (which deletes the key) and delete the key.
 * - watch: an etcd watch on the prefix from the revision of a first listing, turned into joined /
 *   updated / left (see presence-tracker.ts); a cancelled watch (compaction) re-lists and goes on.
 *
 * `last_seen` lives in the value and is rewritten by every heartbeat (one small put per worker per
 * heartbeat interval). It is the worker's clock, for display; health never compares clocks, it is
 * the lease. Heartbeat-only rewrites produce no watch event.
 *
 * One instance serves a worker process (register / heartbeat) or a control plane (list / watch);
 * they share nothing but etcd.
 *
 * TLS: `https://` endpoints, with `tls` for a private CA and the client certificate that etcd's
 * `--client-cert-auth` asks for (gRPC credentials: rootCertificate, privateKey, certChain).
 */
import { rootCertificates } from 'node:tls';
import { Etcd3, EtcdLeaseInvalidError, type IKeyValue, type Watcher } from 'etcd3';
import {
  AetheriumError,
  conflict,
  errorMessage,
  notFound,
  type WorkerFilter,
  type WorkerRegistration,
  type WorkerResources,
  type WorkerStatus,
} from '../../domain/index.ts';
import type { RegisteredWorker, ServiceRegistry, WorkerEvent } from '../../ports/service-registry.ts';
import { withTlsHint } from '../tls-errors.ts';
import { decodeRecord, encodeRecord } from './etcd-record.ts';
import { EventChannel, sleep } from './event-channel.ts';
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

export interface EtcdRegistryOptions {
  /** Client URLs, e.g. `['http://127.0.0.1:2379']`; all `https://` for TLS. */
  endpoints: string[];
  /**
   * PEM contents for https endpoints: the CA to trust (none: the system's CAs) and a client
   * certificate with its key. Without `tls`, https endpoints trust the system's CAs.
   */
  tls?: EtcdTls;
  /** Key prefix; a trailing "/" is added when missing. */
  prefix: string;
  /** Lease TTL for a registration whose `ttl_seconds` is not positive (default 30). */
  ttlSeconds?: number;
  /** Deadline of each unary etcd call (default 5000 ms). */
  requestTimeoutMs?: number;
  now?: () => Date;
}

export interface EtcdTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/**
 * etcd3 uses one set of credentials for every endpoint, and TLS as soon as any is `https://` or
 * credentials are given: a mix, or credentials for `http://` endpoints, would quietly speak TLS to
 * a port the URL calls plain.
 */
function credentials(endpoints: string[], tls: EtcdTls | undefined) {
  const secure = endpoints.filter((url) => /^https:\/\//i.test(url));
  const hasTls = tls !== undefined && (tls.ca !== undefined || tls.cert !== undefined || tls.key !== undefined);
  if (secure.length > 0 && secure.length < endpoints.length)
    throw new AetheriumError(
      'validation_failed',
      'etcd registry: discovery.etcd.endpoints mixes http:// and https://; use one scheme for all of them',
    );
  if (hasTls && secure.length === 0)
    throw new AetheriumError(
      'validation_failed',
      'etcd registry: TLS files are set (discovery.etcd.tls) but the endpoints are http://; use https:// endpoints',
    );
  if (!hasTls) return undefined;
  if ((tls.cert === undefined) !== (tls.key === undefined))
    throw new AetheriumError(
      'validation_failed',
      'etcd registry: a client certificate needs its key, and a key its certificate',
    );
  // No CA given: the system's, which Node lists (etcd3 wants the bundle as one buffer).
  const rootCertificate = tls.ca ?? Buffer.from(rootCertificates.join('\n'));
  return { rootCertificate, privateKey: tls.key, certChain: tls.cert };
}

interface Current {
  record: WorkerRecord | null;
  lease: string;
  modRevision: string;
}

const MAX_ATTEMPTS = 8;

export class EtcdRegistry implements ServiceRegistry {
  readonly kind = 'etcd';
  private readonly client: Etcd3;
  private readonly prefix: string;
  private readonly defaultTtl: number;
  private readonly timeoutMs: number;
  private readonly now: () => Date;
  private readonly endpoints: string[];
  /** Workers this instance registered (and did not deregister): the last record it knew. */
  private readonly own = new Map<string, WorkerRecord>();
  private readonly watchers = new Set<Watcher>();
  private readonly closing = new AbortController();

  constructor(options: EtcdRegistryOptions) {
    if (!options.endpoints.length)
      throw new AetheriumError(
        'validation_failed',
        'etcd registry: no endpoints configured (discovery.etcd.endpoints)',
      );
    this.endpoints = options.endpoints;
    this.prefix = options.prefix.endsWith('/') ? options.prefix : `${options.prefix}/`;
    this.defaultTtl = options.ttlSeconds ?? 30;
    this.timeoutMs = options.requestTimeoutMs ?? 5000;
    this.now = options.now ?? (() => new Date());
    const timeoutMs = this.timeoutMs;
    const tls = credentials(options.endpoints, options.tls);
    this.client = new Etcd3({
      hosts: options.endpoints,
      ...(tls ? { credentials: tls } : {}),
      dialTimeout: timeoutMs,
      // Unary calls get a deadline, so an unreachable etcd fails a call instead of hanging it.
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + timeoutMs }),
    });
  }

  // ── ServiceRegistry ──────────────────────────────────────────────────────────────────────────

  async register(worker: WorkerRegistration): Promise<void> {
    validateRegistration(worker);
    await this.guard('register', async () => {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const current = await this.read(worker.id);
        const previous = current?.record ?? this.own.get(worker.id) ?? null;
        const record = recordFromRegistration(worker, this.now(), previous);
        const lease = await this.grant(record);
        if (await this.putIf(record, lease, current ? current.modRevision : 'absent')) {
          this.own.set(worker.id, record);
          if (current && current.lease !== '0' && current.lease !== lease) await this.revokeQuietly(current.lease);
          return;
        }
        await this.revokeQuietly(lease);
      }
      throw conflict(`worker ${worker.id}: its etcd key kept changing during registration; try again`);
    });
  }

  async deregister(workerId: string): Promise<void> {
    this.own.delete(workerId);
    await this.guard('deregister', async () => {
      const current = await this.read(workerId);
      if (current && current.lease !== '0') await this.revokeQuietly(current.lease);
      await this.client.delete().key(this.key(workerId)).exec();
    });
  }

  async updateStatus(workerId: string, status: WorkerStatus): Promise<void> {
    await this.guard('updateStatus', () => this.mutate(workerId, (r) => ({ ...r, status })));
  }

  async updateResources(workerId: string, resources: WorkerResources): Promise<void> {
    const { cpu_cores, memory_mb, disk_gb, max_vms } = resources;
    await this.guard('updateResources', () =>
      this.mutate(workerId, (r) => ({ ...r, cpu_cores, memory_mb, disk_gb, max_vms })),
    );
  }

  async heartbeat(workerId: string): Promise<void> {
    await this.guard('heartbeat', async () => {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const current = await this.read(workerId);
        const now = this.now();
        const beat = (r: WorkerRecord): WorkerRecord => ({
          ...r,
          status: r.status === 'offline' ? 'active' : r.status,
          last_seen: now,
        });
        if (!current?.record) {
          if (await this.recreate(workerId, beat, current)) return;
          continue;
        }
        const ttlLeft = current.lease === '0' ? 0 : await this.keepAliveOnce(current.lease);
        if (ttlLeft <= 0) {
          // The lease ran out between the read and the keep-alive: come back on a new one.
          if (await this.recreate(workerId, beat, current)) return;
          continue;
        }
        const record = beat(current.record);
        if (await this.putIf(record, current.lease, current.modRevision)) {
          if (this.own.has(workerId)) this.own.set(workerId, record);
          return;
        }
      }
      throw conflict(`worker ${workerId}: its etcd key kept changing during the heartbeat; try again`);
    });
  }

  async getWorker(workerId: string): Promise<RegisteredWorker | null> {
    return this.guard('getWorker', async () => {
      const current = await this.read(workerId);
      return current?.record ? toRegisteredWorker(current.record, true) : null;
    });
  }

  async listWorkers(): Promise<RegisteredWorker[]> {
    return this.guard('listWorkers', async () => (await this.list()).workers);
  }

  async listWorkersWithFilter(filter: WorkerFilter): Promise<RegisteredWorker[]> {
    return (await this.listWorkers()).filter((w) => matchesFilter(w, filter));
  }

  async *watch(signal: AbortSignal): AsyncIterable<WorkerEvent> {
    const stop = AbortSignal.any([signal, this.closing.signal]);
    const channel = new EventChannel<WorkerEvent>();
    const tracker = new PresenceTracker();
    let watcher: Watcher | null = null;
    let generation = 0;
    const onAbort = () => channel.close();
    stop.addEventListener('abort', onAbort, { once: true });

    const detach = async () => {
      const w = watcher;
      watcher = null;
      if (!w) return;
      this.watchers.delete(w);
      await w.cancel().catch(() => {});
    };

    // List, then watch from the revision after the listing: nothing falls between the two.
    const start = async (seed: boolean): Promise<void> => {
      for (let failures = 0; !stop.aborted; failures++) {
        try {
          const { workers, revision } = await this.list();
          if (seed) tracker.seed(workers);
          else for (const event of tracker.observeAll(workers)) channel.push(event);
          const mine = ++generation;
          const creating = this.client
            .watch()
            .prefix(this.prefix)
            .startRevision((BigInt(revision) + 1n).toString())
            .create();
          // create() waits for etcd; an abort must not wait with it.
          const w = await untilAborted(creating, stop);
          if (!w) {
            void creating.then((late) => late.cancel()).catch(() => {});
            return;
          }
          watcher = w;
          this.watchers.add(w);
          w.on('put', (kv: IKeyValue) => {
            const record = decodeRecord(kv.value);
            const id = this.idOf(kv);
            const event = tracker.observe(id, record ? toRegisteredWorker(record, true) : null);
            if (event) channel.push(event);
          });
          w.on('delete', (kv: IKeyValue) => {
            const event = tracker.observe(this.idOf(kv), null);
            if (event) channel.push(event);
          });
          // A cancelled watch (e.g. its revision was compacted): list again and watch from there.
          w.on('error', () => {
            if (mine !== generation || stop.aborted) return;
            void detach().then(() => start(false));
          });
          return;
        } catch {
          await sleep(Math.min(5000, 200 * 2 ** failures), stop);
        }
      }
    };

    try {
      await start(true);
      for (;;) {
        const event = await channel.next();
        if (event === undefined) return;
        yield event;
      }
    } finally {
      stop.removeEventListener('abort', onAbort);
      generation++;
      await detach();
    }
  }

  async close(): Promise<void> {
    this.closing.abort();
    await Promise.all([...this.watchers].map((w) => w.cancel().catch(() => {})));
    this.watchers.clear();
    this.client.close();
  }

  // ── etcd plumbing ────────────────────────────────────────────────────────────────────────────

  private key(id: string): string {
    return this.prefix + id;
  }

  private idOf(kv: IKeyValue): string {
    return kv.key.toString().slice(this.prefix.length);
  }

  private async read(id: string): Promise<Current | null> {
    const response = await this.client.get(this.key(id)).exec();
    const kv = response.kvs[0];
    if (!kv) return null;
    return { record: decodeRecord(kv.value), lease: String(kv.lease ?? '0'), modRevision: kv.mod_revision };
  }

  private async list(): Promise<{ workers: RegisteredWorker[]; revision: string }> {
    const response = await this.client.getAll().prefix(this.prefix).exec();
    const workers: RegisteredWorker[] = [];
    for (const kv of response.kvs) {
      const record = decodeRecord(kv.value);
      if (record && record.id === this.idOf(kv)) workers.push(toRegisteredWorker(record, true));
    }
    return { workers: workers.sort(byId), revision: response.header.revision };
  }

  private async grant(record: WorkerRecord): Promise<string> {
    const response = await this.client.leaseClient.leaseGrant({
      TTL: ttlFor(record.ttl_seconds, this.defaultTtl),
      ID: 0,
    });
    if (response.error) throw new Error(`lease grant refused: ${response.error}`);
    return response.ID;
  }

  /** Put the record on `lease` if the key is still at `modRevision` (or still absent). False: it changed. */
  private async putIf(record: WorkerRecord, lease: string, modRevision: string | 'absent'): Promise<boolean> {
    const key = this.key(record.id);
    const compare =
      modRevision === 'absent' ? this.client.if(key, 'Create', '==', 0) : this.client.if(key, 'Mod', '==', modRevision);
    try {
      const response = await compare.then(this.client.put(key).value(encodeRecord(record)).lease(lease)).commit();
      return response.succeeded;
    } catch (err) {
      if (err instanceof EtcdLeaseInvalidError) return false; // expired under us: the caller reads again
      throw err;
    }
  }

  /** The key is gone (or its lease is): put the last known record again on a new lease. */
  private async recreate(
    id: string,
    change: (r: WorkerRecord) => WorkerRecord,
    current: Current | null,
  ): Promise<boolean> {
    const known = current?.record ?? this.own.get(id);
    if (!known) throw notFound('worker', id);
    const record = change(known);
    const lease = await this.grant(record);
    if (await this.putIf(record, lease, current ? current.modRevision : 'absent')) {
      if (current && current.lease !== '0') await this.revokeQuietly(current.lease);
      if (this.own.has(id) || !current) this.own.set(id, record);
      return true;
    }
    await this.revokeQuietly(lease);
    return false;
  }

  private async mutate(id: string, change: (r: WorkerRecord) => WorkerRecord): Promise<void> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await this.read(id);
      if (!current?.record) {
        // Only the worker's own registry brings back a worker whose lease expired.
        if (!this.own.has(id)) throw notFound('worker', id);
        if (await this.recreate(id, change, current)) return;
        continue;
      }
      const record = change(current.record);
      if (await this.putIf(record, current.lease, current.modRevision)) {
        if (this.own.has(id)) this.own.set(id, record);
        return;
      }
    }
    throw conflict(`worker ${id}: its etcd key kept changing; try again`);
  }

  /** One keep-alive round trip: the lease's remaining TTL, 0 when it no longer exists. */
  private async keepAliveOnce(lease: string): Promise<number> {
    const stream = await this.client.leaseClient.leaseKeepAlive();
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        stream.cancel();
        reject(new Error(`lease keep-alive got no answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      stream.on('data', (response) => {
        clearTimeout(timer);
        stream.end();
        resolve(Number(response.TTL));
      });
      stream.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      stream.write({ ID: lease });
    });
  }

  private async revokeQuietly(lease: string): Promise<void> {
    try {
      await this.client.leaseClient.leaseRevoke({ ID: lease });
    } catch {
      // Already gone, or etcd unreachable: it expires by itself.
    }
  }

  /** Domain errors pass; anything from etcd becomes a clear `unavailable`. */
  private async guard<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof AetheriumError) throw err;
      throw new AetheriumError(
        'unavailable',
        withTlsHint(
          `etcd registry: ${operation} failed against ${this.endpoints.join(', ')}: ${errorMessage(err)}`,
          err,
          {
            ca: 'discovery.etcd.tls.ca_file',
            cert: 'discovery.etcd.tls.cert_file and key_file',
          },
        ),
      );
    }
  }
}

/** The promise's value, or null as soon as `signal` aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | null> {
  if (signal.aborted) return Promise.resolve(null);
  return new Promise<T | null>((resolve, reject) => {
    const onAbort = () => resolve(null);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
