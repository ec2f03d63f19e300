/**
 * TLS from the control plane to its engines, each one a REAL engine started with TLS by the
 * harness — Postgres (Debian's `postgresql`), `redis-server` and etcd (`etcd-server`) — with a test
 * CA and certificates made by the openssl CLI (test/harness/test-certs.ts).
 *
 * Consul: no Consul binary can run here, so its part runs against AN EMULATION of Consul's HTTP
 * API (test/harness/consul-api.ts) served over HTTPS with the test CA. What is tested there is our
 * client's side — the CA, the client certificate, the ACL token — not Consul.
 *
 * Every engine is reached the way `aetherium server` reaches it: a config (loadConfig, with
 * DATABASE_URL from the environment) handed to openEngines. The failure cases (wrong CA, missing
 * client certificate, a host the certificate does not name) must be refused with an error that
 * says so, within a few seconds: each is bounded, none may hang.
 */
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import pg from 'pg';
import { pino } from 'pino';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.ts';
import type { ChannelMessage } from '../src/ports/exec-channels.ts';
import type { QueuedTask } from '../src/ports/task-queue.ts';
import { type Engines, openEngines } from '../src/runtime/engines.ts';
import { loggerOptions } from '../src/runtime/logger.ts';
import { workerRegistration } from './conformance/registry.suite.ts';
import { startConsulApi, type ConsulApi } from './harness/consul-api.ts';
import { startEtcd, type EtcdServer } from './harness/etcd.ts';
import { eventuallyPasses } from './harness/eventually.ts';
import { createDatabase, startPostgres, type PostgresServer } from './harness/postgres.ts';
import { startRedis, type RedisServer } from './harness/redis.ts';
import { sampleEvent } from './harness/sample-events.ts';
import { makeTestCertificates, type TestCertificates } from './harness/test-certs.ts';

/** In the DATABASE_URL; the servers trust certificates, not passwords, so it is never checked. */
const DB_PASSWORD = 'pg-secret-in-url';
const WRITE_TOKEN = 'consul-write-token-5f1e';
/** Every failure must be reported within this (a hang fails the test instead of stalling it). */
const REFUSED_WITHIN_MS = 8000;

let certs: TestCertificates;
/** Requires a client certificate for its user (pg_hba `cert`); also listens on 127.0.0.2. */
let pgCert: PostgresServer;
/** TLS, no client certificate. */
let pgTls: PostgresServer;
let redisCert: RedisServer; // --tls-auth-clients yes
let redisOptional: RedisServer; // --tls-auth-clients optional
let etcd: EtcdServer; // --client-cert-auth
let consul: ConsulApi; // emulated; HTTPS, verify_incoming, ACLs on
/** A migrated database on pgTls: the store for the Redis, etcd and Consul cases. */
let storeUrl: string;

// Every engine opened here logs into this, with the production logger's options (redaction).
let logged = '';
const log = pino(
  { ...loggerOptions({ level: 'debug' }) },
  new Writable({
    write(chunk: Buffer, _encoding, done) {
      logged += chunk.toString();
      done();
    },
  }),
);

const opened: Engines[] = [];

beforeAll(async () => {
  certs = await makeTestCertificates({ clients: ['postgres'] });
  [pgCert, pgTls, redisCert, redisOptional, etcd, consul] = await Promise.all([
    startPostgres({ tls: { certs, clientCert: 'verify-full' }, extraListen: ['127.0.0.2'] }),
    startPostgres({ tls: { certs } }),
    startRedis({ tls: { certs, authClients: 'yes' }, persistence: 'none' }),
    startRedis({ tls: { certs, authClients: 'optional' }, persistence: 'none' }),
    startEtcd({ tls: { certs, clientCertAuth: true } }),
    startConsulApi({ tls: { certs, verifyClients: true }, aclTokens: { [WRITE_TOKEN]: 'write' } }),
  ]);
  storeUrl = withPassword(await createDatabase(pgTls.url));
}, 120_000);

afterAll(async () => {
  for (const engines of opened) await engines.close().catch(() => undefined);
  await Promise.all([pgCert, pgTls, redisCert, redisOptional, etcd, consul].map((s) => s?.stop()));
  await certs?.remove();
}, 60_000);

function withPassword(url: string): string {
  const u = new URL(url);
  u.password = DB_PASSWORD;
  return u.toString();
}

/** `url` with its query parameters changed (null: removed). */
function withQuery(url: string, changes: Record<string, string | null>): string {
  const u = new URL(url);
  for (const [key, value] of Object.entries(changes))
    if (value === null) u.searchParams.delete(key);
    else u.searchParams.set(key, value);
  return u.toString();
}

const client = () => certs.clients.postgres!;
const allFiles = () => ({ ca_file: certs.ca, cert_file: client().cert, key_file: client().key });

/** The config `aetherium server` would load: DATABASE_URL from the environment, the rest as given. */
function configFor(databaseUrl: string, overrides: Record<string, Record<string, unknown>> = {}) {
  return loadConfig({
    env: { DATABASE_URL: databaseUrl },
    overrides: { store: { kind: 'postgres' }, log: { level: 'silent' }, ...overrides },
  });
}

async function open(databaseUrl: string, overrides: Record<string, Record<string, unknown>> = {}): Promise<Engines> {
  const engines = await openEngines(configFor(databaseUrl, overrides), log);
  opened.push(engines);
  return engines;
}

/** The rejection of `promise`, which must come within REFUSED_WITHIN_MS. */
async function refusal(promise: Promise<unknown>): Promise<Error> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    promise.then(
      () => new Error('expected a refusal, but it succeeded'),
      (err: unknown) => ({ refused: err as Error }),
    ),
    new Promise<Error>((resolve) => {
      timer = setTimeout(
        () => resolve(new Error(`no answer within ${REFUSED_WITHIN_MS} ms: it hangs`)),
        REFUSED_WITHIN_MS,
      );
    }),
  ]);
  clearTimeout(timer);
  if (outcome instanceof Error) throw outcome;
  expect(Date.now() - started).toBeLessThan(REFUSED_WITHIN_MS);
  return outcome.refused;
}

describe('Postgres: sslmode=verify-full in the URL', () => {
  it('opens the store over TLS with a client certificate and runs a query', async () => {
    const url = withPassword(await createDatabase(pgCert.url));
    expect(url).toMatch(/sslmode=verify-full&sslrootcert=.*&sslcert=.*&sslkey=/);
    const engines = await open(url);
    expect(await engines.store.listWorkers()).toEqual([]);

    // The server's view: the store's connections are TLS, authenticated by the certificate.
    const observer = new pg.Client({ connectionString: pgCert.url });
    await observer.connect();
    try {
      const { rows } = await observer.query<{ ssl: boolean; client_dn: string | null }>(
        `SELECT s.ssl, s.client_dn FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid
          WHERE a.datname = $1`,
        [new URL(url).pathname.slice(1)],
      );
      expect(rows.length).toBeGreaterThan(0);
      expect(rows.every((r) => r.ssl && r.client_dn === '/CN=postgres')).toBe(true);
    } finally {
      await observer.end();
    }
  });

  it('needs no client certificate when the server asks for none', async () => {
    expect(storeUrl).not.toContain('sslcert');
    const engines = await open(storeUrl);
    expect(await engines.store.listWorkers()).toEqual([]);
  });

  it('refuses a server whose certificate another CA signed, saying so, without the password', async () => {
    const err = await refusal(open(withQuery(storeUrl, { sslrootcert: certs.otherCa })));
    expect(err.message).toMatch(/refused the TLS connection: self-signed certificate in certificate chain/);
    expect(err.message).toMatch(/not signed by a CA this client trusts: check sslrootcert/);
    expect(err.message).not.toContain(DB_PASSWORD);
  });

  it('is refused without a client certificate when the server requires one', async () => {
    const url = withQuery(withPassword(await createDatabase(pgCert.url)), { sslcert: null, sslkey: null });
    const err = await refusal(open(url));
    expect(err.message).toMatch(/connection requires a valid client certificate/);
    expect(err.message).toMatch(/check sslcert and sslkey/);
  });

  it('refuses a host the server certificate does not name (verify-full checks the name)', async () => {
    // 127.0.0.2 reaches the same server, but the certificate names only localhost and 127.0.0.1.
    const url = new URL(pgCert.url);
    url.hostname = '127.0.0.2';
    const err = await refusal(open(url.toString()));
    expect(err.message).toMatch(/IP: 127\.0\.0\.2 is not in the cert's list/);
    expect(err.message).toMatch(/does not name the host this client connects to/);
  });

  it('fails the start, naming the parameter and the path, when a file in the URL cannot be read', async () => {
    const err = await refusal(open(withQuery(storeUrl, { sslrootcert: '/nonexistent/ca.pem' })));
    expect(err.message).toMatch(/sslrootcert=\/nonexistent\/ca\.pem cannot be read: ENOENT/);
  });
});

describe('Redis: rediss:// with queue.redis.tls and events.redis.tls', () => {
  const redisConfig = (url: string, tls: Record<string, string | null>) => ({
    queue: { kind: 'redis', redis: { url, tls } },
    events: { kind: 'redis', redis: { url, tls } },
  });

  async function roundTrip(engines: Engines): Promise<void> {
    // The queue: enqueue, then a consumer gets the task.
    const workerId = `w-${randomUUID().slice(0, 8)}`;
    const task: QueuedTask = { id: randomUUID(), type: 'vm:create' };
    const seen: QueuedTask[] = [];
    const consumer = engines.queue.consume(workerId, async (t) => void seen.push(t), { concurrency: 1 });
    try {
      await engines.queue.enqueue(workerId, task);
      await eventuallyPasses(() => expect(seen.map((t) => t.id)).toEqual([task.id]), 10_000, 20);
    } finally {
      await consumer.close();
    }
    // The event bus: a subscriber gets what is published.
    const events: number[] = [];
    const unsubscribe = engines.events.subscribe((e) => events.push(e.id));
    try {
      const published = await engines.events.publish(sampleEvent(1));
      await eventuallyPasses(() => expect(events).toContain(published.id), 5000, 20);
    } finally {
      unsubscribe();
    }
    // The exec channels and the rate-limit connection use the same TLS.
    const messages: ChannelMessage[] = [];
    const stop = await engines.channels.subscribe('tls-check', (m) => messages.push(m));
    await engines.channels.publish('tls-check', { type: 'started' });
    await eventuallyPasses(() => expect(messages).toEqual([{ type: 'started' }]), 5000, 20);
    await stop();
    expect(await (engines.rateLimitRedis as Redis).ping()).toBe('PONG');
  }

  it('runs the queue, the event bus, the exec channels and the rate limits with the CA and a client certificate', async () => {
    expect(redisCert.url).toMatch(/^rediss:\/\//);
    await roundTrip(await open(storeUrl, redisConfig(redisCert.url, allFiles())));
  });

  it('needs only the CA when Redis does not ask for a client certificate', async () => {
    await roundTrip(await open(storeUrl, redisConfig(redisOptional.url, { ca_file: certs.ca })));
  });

  it('refuses a Redis whose certificate another CA signed, saying so', async () => {
    const engines = await open(storeUrl, redisConfig(redisCert.url, { ...allFiles(), ca_file: certs.otherCa }));
    const err = await refusal(engines.queue.enqueue('w-1', { id: randomUUID(), type: 'vm:create' }));
    expect(err.message).toMatch(/redis is unreachable .*last error: self-signed certificate in certificate chain/);
    expect(err.message).toMatch(/not signed by a CA this client trusts: check tls\.ca_file/);
    // Events never stop the work: the bus parks the event (id 0) and logs why Redis is out of reach.
    expect((await engines.events.publish(sampleEvent(2))).id).toBe(0);
    expect(logged).toMatch(/event bus unavailable, buffering events: redis is unreachable .*self-signed certificate/);
  });

  it('is refused without a client certificate when Redis requires one', async () => {
    const engines = await open(storeUrl, redisConfig(redisCert.url, { ca_file: certs.ca }));
    const err = await refusal(engines.queue.enqueue('w-1', { id: randomUUID(), type: 'vm:create' }));
    // The alert, or (TLS 1.3: the server checks after the handshake) the reset that beat it to us.
    expect(err.message).toMatch(/certificate required|just after the TLS handshake/);
    expect(err.message).toMatch(/tls\.cert_file and tls\.key_file/);
  });

  it('rejects TLS files on a redis:// url, and names a file it cannot read', async () => {
    const plain = redisCert.url.replace('rediss://', 'redis://');
    expect(() => configFor(storeUrl, redisConfig(plain, { ca_file: certs.ca }))).toThrow(
      /queue\.redis\.tls: TLS files are set but the url is not rediss:\/\//,
    );
    expect(() => configFor(storeUrl, redisConfig(redisCert.url, { cert_file: client().cert }))).toThrow(
      /set both cert_file and key_file/,
    );
    await expect(open(storeUrl, redisConfig(redisCert.url, { ca_file: '/nonexistent/redis-ca.pem' }))).rejects.toThrow(
      /queue\.redis\.tls\.ca_file: cannot read \/nonexistent\/redis-ca\.pem: ENOENT/,
    );
  });
});

describe('etcd: https:// endpoints with discovery.etcd.tls', () => {
  const etcdConfig = (tls: Record<string, string | null>, endpoint = etcd.endpoint) => ({
    discovery: { provider: 'etcd', etcd: { endpoints: [endpoint], prefix: `/tls-test/${randomUUID()}/`, tls } },
  });

  it('registers and lists a worker over TLS with a client certificate', async () => {
    expect(etcd.endpoint).toMatch(/^https:\/\//);
    const engines = await open(storeUrl, etcdConfig(allFiles()));
    const worker = workerRegistration({ ttl_seconds: 30 });
    await engines.registry.register(worker);
    expect((await engines.registry.listWorkers()).map((w) => w.id)).toEqual([worker.id]);
    expect(await engines.registry.getWorker(worker.id)).toMatchObject({ id: worker.id, healthy: true });
    await engines.registry.deregister(worker.id);
  });

  it('refuses an etcd whose certificate another CA signed, saying so', async () => {
    const engines = await open(storeUrl, etcdConfig({ ...allFiles(), ca_file: certs.otherCa }));
    const err = await refusal(engines.registry.listWorkers());
    expect(err.message).toMatch(/unable to verify the first certificate/);
    expect(err.message).toMatch(/not signed by a CA this client trusts: check discovery\.etcd\.tls\.ca_file/);
  });

  it('is refused without a client certificate when etcd requires one (--client-cert-auth)', async () => {
    const engines = await open(storeUrl, etcdConfig({ ca_file: certs.ca }));
    const err = await refusal(engines.registry.listWorkers());
    expect(err.message).toMatch(/bad certificate/);
    expect(err.message).toMatch(/check discovery\.etcd\.tls\.cert_file and key_file/);
  });

  it('rejects TLS files with an http:// endpoint', () => {
    expect(() => configFor(storeUrl, etcdConfig(allFiles(), etcd.endpoint.replace('https', 'http')))).toThrow(
      /discovery\.etcd\.tls: TLS files are set, so every endpoint must be an https:\/\/ url/,
    );
  });
});

describe('Consul (THE EMULATED HTTP API, served over HTTPS): discovery.consul.ca_file and the ACL token', () => {
  const consulConfig = (files: Record<string, string | null>, token = WRITE_TOKEN) => ({
    discovery: {
      provider: 'consul',
      consul: { address: consul.address, scheme: 'https', datacenter: consul.datacenter, token, ...files },
    },
  });

  it('registers a worker over HTTPS with the CA and a client certificate, sending the token as X-Consul-Token', async () => {
    expect(consul.url).toMatch(/^https:\/\//);
    const engines = await open(storeUrl, consulConfig(allFiles()));
    const worker = workerRegistration({ ttl_seconds: 30 });
    const before = consul.requests.length;
    await engines.registry.register(worker);
    expect((await engines.registry.listWorkers()).map((w) => w.id)).toContain(worker.id);
    const sent = consul.requests.slice(before);
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.every((r) => r.token === WRITE_TOKEN)).toBe(true);
    // In the header, never in the URL (where proxies and access logs would keep it).
    expect(sent.some((r) => r.path.includes(WRITE_TOKEN))).toBe(false);
    await engines.registry.deregister(worker.id);
  });

  it('reports an unknown token without repeating it', async () => {
    const wrong = 'consul-unknown-token-9d0c';
    const engines = await open(storeUrl, consulConfig(allFiles(), wrong));
    const err = await refusal(engines.registry.register(workerRegistration({ ttl_seconds: 30 })));
    expect(err.message).toMatch(/403: ACL not found.*not known to Consul/);
    expect(err.message).not.toContain(wrong);
  });

  it('refuses an agent whose certificate another CA signed, saying so', async () => {
    const engines = await open(storeUrl, consulConfig({ ...allFiles(), ca_file: certs.otherCa }));
    const err = await refusal(engines.registry.listWorkers());
    expect(err.message).toMatch(
      /cannot reach Consul at https:\/\/127\.0\.0\.1:\d+ \(self-signed certificate in certificate chain\)/,
    );
    expect(err.message).toMatch(/not signed by a CA this client trusts: check discovery\.consul\.ca_file/);
  });

  it('is refused without a client certificate when the agent verifies incoming connections', async () => {
    const engines = await open(storeUrl, consulConfig({ ca_file: certs.ca }));
    const err = await refusal(engines.registry.listWorkers());
    // The alert, or (TLS 1.3: the agent checks after the handshake) the reset that beat it to us.
    expect(err.message).toMatch(/certificate required|just after the TLS handshake/);
    expect(err.message).toMatch(/discovery\.consul\.cert_file and key_file/);
  });

  it('rejects the TLS files with scheme http', () => {
    const config = consulConfig({ ca_file: certs.ca });
    (config.discovery.consul as Record<string, unknown>).scheme = 'http';
    expect(() => configFor(storeUrl, config)).toThrow(/discovery\.consul\.scheme: .*set scheme: https/);
  });
});

describe('secrets', () => {
  it('logged neither the database password nor the Consul token, while the engines above reported errors', () => {
    expect(logged).toMatch(/engine error/); // the refused Redis connections were logged
    expect(logged).not.toContain(DB_PASSWORD);
    expect(logged).not.toContain(WRITE_TOKEN);
  });
});
