/**
 * The engines and the control plane every scenario runs against: one Postgres and one Redis for
 * the whole suite (started by the test harnesses, on loopback, in temp folders), and per scenario
 * a fresh database and a real `aetherium server` process in cluster mode with its agent port
 * (mutual TLS, and the CA key so that workers can join with a token). The server is a process of
 * its own so that its CPU and memory can be read from /proc apart from the load generator's.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { type CertificateAuthority, createCa, parseCa } from '../../src/adapters/pki/ca.ts';
import { issueServerCert } from '../../src/adapters/pki/certificates.ts';
import { createDatabase, type PostgresServer, startPostgres } from '../../test/harness/postgres.ts';
import { CLI, exited, freePort, waitForHttp } from '../../test/harness/processes.ts';
import { type RedisServer, startRedis } from '../../test/harness/redis.ts';
import type { Scope } from './scope.ts';

export interface Engines {
  postgres: PostgresServer;
  redis: RedisServer;
}

export async function startEngines(scope: Scope): Promise<Engines> {
  const postgres = await startPostgres();
  scope.defer('postgres', () => postgres.stop());
  const redis = await startRedis();
  scope.defer('redis', () => redis.stop());
  return { postgres, redis };
}

export interface ControlPlane {
  url: string;
  /** The agent port, `host:port`. */
  agent: string;
  pid: number;
  adminKey: string;
  ca: CertificateAuthority;
  caKeyPem: string;
  /** One API call as the admin; the parsed body (null when empty). */
  api<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
  /** A join token for `uses` workers. */
  joinToken(uses: number): Promise<string>;
  /** The server's last output lines, for errors. */
  output(): string;
}

export interface ControlPlaneOptions {
  /** Extra `AETHERIUM_*` settings of the server. */
  env?: Record<string, string>;
}

export async function startControlPlane(
  engines: Engines,
  scope: Scope,
  options: ControlPlaneOptions = {},
): Promise<ControlPlane> {
  // A clean slate in Redis too: the last scenario's queues and streams are not this one's.
  const redis = new Redis(engines.redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  await redis.flushall();
  await redis.quit();

  const dir = mkdtempSync(join(tmpdir(), 'aetherium-load-cp-'));
  scope.defer('control plane files', () => rmSync(dir, { recursive: true, force: true }));
  const pems = await createCa();
  const ca = await parseCa(pems.certPem, pems.keyPem);
  const server = await issueServerCert(ca);
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text, { mode: 0o600 });
    return path;
  };
  const port = await freePort();
  const agentPort = await freePort();
  const env: Record<string, string> = {
    AETHERIUM_STORE__KIND: 'postgres',
    DATABASE_URL: await createDatabase(engines.postgres.url, 'aetherium_load'),
    AETHERIUM_QUEUE__KIND: 'redis',
    AETHERIUM_EVENTS__KIND: 'redis',
    REDIS_URL: engines.redis.url,
    AETHERIUM_API_GATEWAY__HOST: '127.0.0.1',
    AETHERIUM_API_GATEWAY__PORT: String(port),
    // The limiter stays on, as in production, with room for any load: its cost is measured too.
    AETHERIUM_API_GATEWAY__RATE_LIMIT__MAX: '1000000000',
    AETHERIUM_AGENT__HOST: '127.0.0.1',
    AETHERIUM_AGENT__PORT: String(agentPort),
    AETHERIUM_AGENT__TLS__CA_FILE: file('ca.pem', pems.certPem),
    AETHERIUM_AGENT__TLS__CA_KEY_FILE: file('ca-key.pem', pems.keyPem),
    AETHERIUM_AGENT__TLS__CERT_FILE: file('server.pem', server.certPem),
    AETHERIUM_AGENT__TLS__KEY_FILE: file('server-key.pem', server.keyPem),
    AETHERIUM_LOG__LEVEL: 'warn',
    ...options.env,
  };
  // LOAD_CP_NODE_OPTIONS: node flags for the control plane only, e.g. `--cpu-prof --cpu-prof-dir=…`.
  const nodeOptions = process.env.LOAD_CP_NODE_OPTIONS;
  const child = spawn(process.execPath, [CLI, 'server'], {
    env: { ...process.env, ...env, ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  scope.defer('control plane', () => stopChild(child));
  // Should this process die before its scope closes (a crash, a closed stdout), the server must
  // not outlive it: the engines' harnesses do the same for theirs.
  const orphanGuard = () => child.kill('SIGKILL');
  process.once('exit', orphanGuard);
  child.once('exit', () => process.off('exit', orphanGuard));
  let output = '';
  const keep = (d: Buffer) => (output = (output + d.toString()).slice(-20_000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(
    `${url}/health`,
    () => true,
    120_000,
    () => output,
  );
  const bootstrap = await fetch(`${url}/api/v1/tokens/bootstrap`, { method: 'POST' });
  if (!bootstrap.ok) throw new Error(`bootstrap answered ${bootstrap.status}: ${await bootstrap.text()}`);
  const adminKey = ((await bootstrap.json()) as { token: string }).token;

  const api = async <T>(method: string, path: string, body?: unknown) => {
    const response = await fetch(`${url}/api/v1${path}`, {
      method,
      headers: {
        authorization: `Bearer ${adminKey}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: (text ? JSON.parse(text) : null) as T };
  };
  return {
    url,
    agent: `127.0.0.1:${agentPort}`,
    pid: child.pid!,
    adminKey,
    ca,
    caKeyPem: pems.keyPem,
    api,
    async joinToken(uses) {
      const answer = await api<{ token: string }>('POST', '/tokens/join', {
        max_uses: uses,
        ttl: '1h',
        description: 'load suite',
      });
      if (answer.status !== 201 && answer.status !== 200)
        throw new Error(`POST /tokens/join answered ${answer.status}: ${JSON.stringify(answer.body)}`);
      return answer.body.token;
    },
    output: () => output,
  };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  await exited(child, 15_000).catch(async () => {
    child.kill('SIGKILL');
    await exited(child, 5000).catch(() => undefined);
  });
}

/** CPU seconds (user + system) a process has used so far, from /proc (clock ticks of 10 ms). */
