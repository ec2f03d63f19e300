/**
 * A real cluster for integration tests: Postgres, Redis and etcd on their own ports and data
 * directories (loopback only), `aetherium server` replicas in the root network namespace, and each
 * `aetherium worker` in a network namespace of its own. The replicas' agent ports listen on the
 * bridge, and nothing else does: a worker can reach the control plane's agent port and no engine,
 * no API port. Each worker joins with a join token, as an operator's would, and gets nothing in
 * its environment but its id, its zone, the agent addresses and that token.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, parseCa } from '../../src/adapters/pki/ca.ts';
import { issueServerCert } from '../../src/adapters/pki/certificates.ts';
import { createDriver } from '../../src/adapters/vmm/create-driver.ts';
import { startEtcd } from './etcd.ts';
import { createTestNetwork, type TestNetwork } from './netns.ts';
import { createDatabase, startPostgres, type PostgresServer, type StartOptions } from './postgres.ts';
import { CLI, exited, freePort, waitForHttp } from './processes.ts';
import { mkdirSync } from 'node:fs';
import { startRedis } from './redis.ts';

export interface WorkerSpec {
  id: string;
  zone: string;
  labels?: Record<string, string>;
}

export interface ClusterOptions {
  servers: number;
  workers: WorkerSpec[];
  heartbeat?: string;
  ttl?: string;
  env?: Record<string, string>;
  /** Lifetime of the certificates workers get when they join (agent.cert_ttl). */
  certTtl?: string;
  /** Extra environment of the workers only (applied last). */
  workerEnv?: Record<string, string>;
  /** How Postgres is started (e.g. `settings` for durable commits in crash tests). */
  postgres?: StartOptions;
}

export class ManagedProcess {
  child: ChildProcess | null = null;
  private log = '';

  constructor(
    readonly name: string,
    private readonly launch: () => ChildProcess,
  ) {}

  start(): void {
    this.child = this.launch();
    this.child.stdout?.on('data', (d) => (this.log = (this.log + d).slice(-200_000)));
    this.child.stderr?.on('data', (d) => (this.log = (this.log + d).slice(-200_000)));
  }

  output(): string {
    return this.log;
  }

  async kill(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 30_000): Promise<number | null> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    child.kill(signal);
    const code = await exited(child, timeoutMs);
    return code;
  }
}

export interface Cluster {
  network: TestNetwork;
  postgres: PostgresServer;
  redis: Awaited<ReturnType<typeof startRedis>>;
  etcd: Awaited<ReturnType<typeof startEtcd>>;
  databaseUrl: string;
  servers: (ManagedProcess & { url: string; agent: string })[];
  /** The cluster CA and where its files are. */
  pki: { dir: string; caFile: string; caKeyFile: string; certFile: string; keyFile: string; fingerprint: string };
  /** The cluster's first admin key, bootstrapped through the API as an operator would. */
  adminKey: string;
  workers: Map<
    string,
    ManagedProcess & { stateDir: string; spec: WorkerSpec; env: Record<string, string>; metricsUrl: string }
  >;
  /** The bearer token every worker's metrics listener asks for (worker.metrics.token). */
  workerMetricsToken: string;
  /** Waits until the given workers are active and healthy as seen by server 0. */
  waitForWorkers(ids: string[], timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const network = createTestNetwork(options.workers.length);
  const gateway = network.gateway;
  const stateRoot = mkdtempSync(join(tmpdir(), 'aetherium-cluster-'));
  // Loopback only: no worker namespace can reach them.
  const postgres = await startPostgres(options.postgres);
  const redis = await startRedis();
  const etcd = await startEtcd();
  const databaseUrl = await createDatabase(postgres.url);

  // The cluster CA and one server certificate for all replicas, as `aetherium tls` makes them.
  const ca = await createCa();
  const serverCert = await issueServerCert(await parseCa(ca.certPem, ca.keyPem));
  const pki = {
    dir: join(stateRoot, 'pki'),
    caFile: join(stateRoot, 'pki', 'aetherium-agent-ca.pem'),
    caKeyFile: join(stateRoot, 'pki', 'aetherium-agent-ca-key.pem'),
    certFile: join(stateRoot, 'pki', 'server-aetherium.pem'),
    keyFile: join(stateRoot, 'pki', 'server-aetherium-key.pem'),
    fingerprint: (await parseCa(ca.certPem, ca.keyPem)).fingerprint,
  };
  mkdirSync(pki.dir, { mode: 0o700 });
  writeFileSync(pki.caFile, ca.certPem);
  writeFileSync(pki.caKeyFile, ca.keyPem, { mode: 0o600 });
  writeFileSync(pki.certFile, serverCert.certPem);
  writeFileSync(pki.keyFile, serverCert.keyPem, { mode: 0o600 });

  const common: Record<string, string> = {
    AETHERIUM_STORE__KIND: 'postgres',
    DATABASE_URL: databaseUrl,
    AETHERIUM_QUEUE__KIND: 'redis',
    AETHERIUM_EVENTS__KIND: 'redis',
    REDIS_URL: `redis://127.0.0.1:${redis.port}`,
    AETHERIUM_DISCOVERY__PROVIDER: 'etcd',
    AETHERIUM_DISCOVERY__ETCD__ENDPOINTS: JSON.stringify([`http://127.0.0.1:${etcd.port}`]),
    AETHERIUM_SCHEDULER__INTERVAL: '250ms',
    AETHERIUM_SCHEDULER__REDELIVER_AFTER: '5s',
    AETHERIUM_API_GATEWAY__RATE_LIMIT__ENABLED: 'false',
    AETHERIUM_AGENT__HOST: gateway,
    AETHERIUM_AGENT__TLS__CA_FILE: pki.caFile,
    AETHERIUM_AGENT__TLS__CA_KEY_FILE: pki.caKeyFile,
    AETHERIUM_AGENT__TLS__CERT_FILE: pki.certFile,
    AETHERIUM_AGENT__TLS__KEY_FILE: pki.keyFile,
    ...(options.certTtl ? { AETHERIUM_AGENT__CERT_TTL: options.certTtl } : {}),
  };
  // What both sides must agree on: how often a worker beats and when it counts as gone.
  const timing: Record<string, string> = {
    AETHERIUM_WORKER__HEARTBEAT_INTERVAL: options.heartbeat ?? '1s',
    AETHERIUM_WORKER__TTL: options.ttl ?? '4s',
    AETHERIUM_LOG__LEVEL: 'warn',
  };
  const { serverEnv, workerEnv } = splitEnv(options.env ?? {});

  const servers: Cluster['servers'] = [];
  for (let i = 0; i < options.servers; i++) {
    const port = await freePort();
    const agentPort = await freePort();
    const env = {
      ...process.env,
      ...common,
      ...timing,
      ...serverEnv,
      AETHERIUM_API_GATEWAY__PORT: String(port),
      AETHERIUM_API_GATEWAY__HOST: '127.0.0.1',
      AETHERIUM_AGENT__PORT: String(agentPort),
    };
    const server = Object.assign(
      new ManagedProcess(`server-${i + 1}`, () =>
        spawn(process.execPath, [CLI, 'server'], { env, stdio: ['ignore', 'pipe', 'pipe'] }),
      ),
      { url: `http://127.0.0.1:${port}`, agent: `${gateway}:${agentPort}` },
    );
    server.start();
    servers.push(server);
  }

  await waitForHttp(
    `${servers[0]!.url}/health`,
    () => true,
    60_000,
    () => servers[0]!.output(),
  );
  const bootstrap = await fetch(`${servers[0]!.url}/api/v1/tokens/bootstrap`, { method: 'POST' });
  const adminKey = ((await bootstrap.json()) as { token: string }).token;
  // One join token for the whole fleet, as an operator would hand out; used once per worker.
  const joinAnswer = await fetch(`${servers[0]!.url}/api/v1/tokens/join`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ max_uses: Math.max(1, options.workers.length), ttl: '1h', description: 'test cluster' }),
  });
  const joinToken = ((await joinAnswer.json()) as { token: string }).token;
  const workers: Cluster['workers'] = new Map();
  const workerMetricsToken = randomBytes(16).toString('hex');
  options.workers.forEach((spec, index) => {
    const host = network.hosts[index]!;
    const stateDir = join(stateRoot, spec.id);
    // The whole environment of a worker: no engine address, no cluster credential.
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/root',
      ...timing,
      ...workerEnv,
      AETHERIUM_WORKER__SERVERS: JSON.stringify(servers.map((s) => s.agent)),
      AETHERIUM_WORKER__JOIN_TOKEN: joinToken,
      ...options.workerEnv,
      WORKER_ID: spec.id,
      WORKER_ZONE: spec.zone,
      AETHERIUM_WORKER__ADDRESS: host.address,
      AETHERIUM_WORKER__DRIVERS__STATE_DIR: stateDir,
      AETHERIUM_WORKER__RESOURCES__CPU_CORES: '16',
      AETHERIUM_WORKER__RESOURCES__MEMORY_MB: '16384',
      AETHERIUM_WORKER__RESOURCES__DISK_GB: '100',
      AETHERIUM_WORKER__RESOURCES__MAX_VMS: '50',
      // On the host's bridge address (its own namespace), behind a token, as a Prometheus would scrape it.
      AETHERIUM_WORKER__METRICS__HOST: host.address,
      AETHERIUM_WORKER__METRICS__PORT: '9464',
      AETHERIUM_WORKER__METRICS__TOKEN: workerMetricsToken,
      ...Object.fromEntries(
        Object.entries(spec.labels ?? {}).map(([k, v]) => [`AETHERIUM_WORKER__LABELS__${k.toUpperCase()}`, v]),
      ),
    };
    const worker = Object.assign(
      new ManagedProcess(spec.id, () =>
        host.spawn(process.execPath, [CLI, 'worker'], { env, stdio: ['ignore', 'pipe', 'pipe'] }),
      ),
      { stateDir, spec, env, metricsUrl: `http://${host.address}:9464/metrics` },
    );
    worker.start();
    workers.set(spec.id, worker);
  });

  const cluster: Cluster = {
    network,
    postgres,
    redis,
    etcd,
    databaseUrl,
    servers,
    pki,
    adminKey,
    workers,
    workerMetricsToken,
    async waitForWorkers(ids, timeoutMs = 60_000) {
      await waitForHttp<{ workers: { id: string; status: string; is_healthy: boolean }[] }>(
        `${servers[0]!.url}/api/v1/workers`,
        (body) => ids.every((id) => body.workers.some((w) => w.id === id && w.status === 'active' && w.is_healthy)),
        timeoutMs,
        () => [...servers, ...workers.values()].map((p) => `--- ${p.name}\n${p.output().slice(-3000)}`).join('\n'),
        { authorization: `Bearer ${adminKey}` },
      );
    },
    async stop() {
      await Promise.all([...workers.values()].map((w) => w.kill('SIGTERM').catch(() => w.kill('SIGKILL'))));
      await Promise.all(servers.map((s) => s.kill('SIGTERM').catch(() => s.kill('SIGKILL'))));
      // Sandboxes outlive their agent by design (so a restarted worker can reattach): remove them.
      for (const worker of workers.values()) {
        const driver = createDriver('sandbox', { stateDir: join(worker.stateDir, 'sandbox') });
        for (const vm of await driver.list().catch(() => [])) await driver.delete(vm.id).catch(() => undefined);
        await driver.close();
      }
      await Promise.allSettled([postgres.stop(), redis.stop(), etcd.stop()]);
      network.destroy();
      rmSync(stateRoot, { recursive: true, force: true });
    },
  };
  for (const server of servers) {
    await waitForHttp(
      `${server.url}/health`,
      () => true,
      60_000,
      () => server.output(),
    );
  }
  await cluster.waitForWorkers(options.workers.map((w) => w.id));
  return cluster;
}

/** `AETHERIUM_WORKER__*` settings go to the workers, everything else to the servers. */
function splitEnv(env: Record<string, string>): {
  serverEnv: Record<string, string>;
  workerEnv: Record<string, string>;
} {
  const serverEnv: Record<string, string> = {};
  const workerEnv: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (key.startsWith('AETHERIUM_WORKER__') || key.startsWith('WORKER_')) workerEnv[key] = value;
    else serverEnv[key] = value;
  }
  return { serverEnv, workerEnv };
}

/** One JSON call to a replica's API as the cluster's admin; the body parsed (null when empty). */
export async function apiCall<T = unknown>(
  base: string,
  key: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const response = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: {
      authorization: `Bearer ${key}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : null) as T };
}
