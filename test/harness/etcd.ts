/**
 * Starts a real, throwaway single-member etcd for tests: Debian's `etcd` (package `etcd-server`) on
 * two free loopback ports (client + peer), with its own temp data directory, and resolves once
 * `GET /health` answers `{"health":"true"}`.
 *
 * `restart()` kills the process (SIGKILL: a crash, not a clean shutdown) and starts it again on the
 * SAME ports and data directory, so clients can reconnect and keys and leases survive (etcd renews
 * every lease to its full TTL when a member becomes leader). `stop()` kills it and removes the folder.
 * Servers still running when the test process exits are killed.
 *
 * `tls` serves clients over https only (`--cert-file`, `--key-file`, `--trusted-ca-file`), and with
 * `clientCertAuth` demands a client certificate signed by the test CA (`--client-cert-auth`). The
 * peer port stays plain: a single member has no peers to talk to.
 *
 * Binary: `$ETCD_BIN`, else `etcd` on PATH (Debian installs /usr/bin/etcd).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { trackChild, waitForExit } from './child-processes.ts';
import { accessSync, constants, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { freePort } from './processes.ts';
import type { TestCertificates } from './test-certs.ts';

export interface EtcdServer {
  /** Client URL, e.g. `http://127.0.0.1:23791` (`https://` with `tls`). */
  endpoint: string;
  /** The client port (on 127.0.0.1 and every `extraListen` address). */
  port: number;
  /** Kills the server and removes its data directory. */
  stop(): Promise<void>;
  /** Kills the server and starts it again on the same ports and data directory; resolves when healthy. */
  restart(): Promise<void>;
  /** Kills the server without starting it again (for outage tests); `restart()` brings it back. */
  kill(): Promise<void>;
}

export function findEtcd(): string {
  const fromEnv = process.env.ETCD_BIN;
  const candidates = fromEnv
    ? [fromEnv]
    : (process.env.PATH ?? '')
        .split(delimiter)
        .filter(Boolean)
        .map((dir) => join(dir, 'etcd'));
  for (const path of candidates) {
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // next
    }
  }
  throw new Error(
    fromEnv
      ? `ETCD_BIN=${fromEnv} is not executable`
      : 'etcd not found on PATH: install it (Debian: apt-get install etcd-server) or set ETCD_BIN',
  );
}

/** etcd 3.4 refuses to start on arm64 unless told it may (ETCD_UNSUPPORTED_ARCH). */
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  if (process.arch === 'arm64' && !env.ETCD_UNSUPPORTED_ARCH) env.ETCD_UNSUPPORTED_ARCH = 'arm64';
  return env;
}

/** The TLS material the harness itself uses to ask `/health`: the test CA and a client certificate. */
interface HealthTls {
  ca: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** `GET /health` over https (fetch cannot be told which CA to trust). */
function httpsHealth(endpoint: string, tls: HealthTls): Promise<{ ok: boolean; body: { health?: string } }> {
  return new Promise((resolve, reject) => {
    const req = request(`${endpoint}/health`, { ...tls, timeout: 1000 }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => {
        try {
          resolve({ ok: res.statusCode === 200, body: JSON.parse(text) as { health?: string } });
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

async function health(endpoint: string, tls: HealthTls | null): Promise<{ ok: boolean; body: { health?: string } }> {
  if (tls) return httpsHealth(endpoint, tls);
  const response = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
  return { ok: response.ok, body: (await response.json()) as { health?: string } };
}

async function waitUntilHealthy(
  endpoint: string,
  tls: HealthTls | null,
  child: ChildProcess,
  log: () => string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`etcd exited (${child.exitCode ?? child.signalCode}) before it was healthy:\n${log()}`);
    }
    try {
      const { ok, body } = await health(endpoint, tls);
      last = JSON.stringify(body);
      if (ok && body.health === 'true') return;
    } catch (err) {
      last = String(err);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`etcd at ${endpoint} not healthy within ${timeoutMs} ms (last: ${last}):\n${log()}`);
}

export interface StartEtcdOptions {
  /** How long to wait for `/health` (default 30 s). */
  readyTimeoutMs?: number;
  /** Addresses to serve clients on besides 127.0.0.1 (e.g. a bridge for test network namespaces). */
  extraListen?: string[];
  /** Clients over https only (see the header); without it, plain http as before. */
  tls?: {
    /** The server presents `certs.server`; the harness checks health with the first client certificate. */
    certs: TestCertificates;
    /** `--client-cert-auth`: a client without a certificate signed by `certs.ca` is refused. */
    clientCertAuth?: boolean;
  };
}

function tlsArgs(tls: NonNullable<StartEtcdOptions['tls']>): string[] {
  return [
    '--cert-file',
    tls.certs.server.cert,
    '--key-file',
    tls.certs.server.key,
    '--trusted-ca-file',
    tls.certs.ca,
    ...(tls.clientCertAuth ? ['--client-cert-auth'] : []),
  ];
}

function healthTls(tls: StartEtcdOptions['tls']): HealthTls | null {
  if (!tls) return null;
  const client = Object.values(tls.certs.clients)[0];
  if (tls.clientCertAuth && !client) throw new Error('clientCertAuth needs a client certificate in the certificates');
  return {
    ca: readFileSync(tls.certs.ca),
    ...(client ? { cert: readFileSync(client.cert), key: readFileSync(client.key) } : {}),
  };
}

export async function startEtcd(options: StartEtcdOptions = {}): Promise<EtcdServer> {
  const bin = findEtcd();
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  const dir = await mkdtemp(join(tmpdir(), 'aetherium-etcd-'));
  const dataDir = join(dir, 'data');
  const scheme = options.tls ? 'https' : 'http';
  const checkTls = healthTls(options.tls);

  let clientPort = 0;
  let peerPort = 0;
  let child: ChildProcess | null = null;
  let log = '';
  let stopped = false;

  const launch = async (): Promise<void> => {
    const client = `${scheme}://127.0.0.1:${clientPort}`;
    const clients = [
      client,
      ...(options.extraListen ?? []).map((address) => `${scheme}://${address}:${clientPort}`),
    ].join(',');
    const peer = `http://127.0.0.1:${peerPort}`;
    log = '';
    const proc = spawn(
      bin,
      [
        '--name',
        'test',
        '--data-dir',
        dataDir,
        '--listen-client-urls',
        clients,
        '--advertise-client-urls',
        clients,
        '--listen-peer-urls',
        peer,
        '--initial-advertise-peer-urls',
        peer,
        '--initial-cluster',
        `test=${peer}`,
        '--initial-cluster-state',
        'new',
        '--initial-cluster-token',
        `aetherium-test-${peerPort}`,
        '--logger',
        'zap',
        '--log-outputs',
        'stderr',
        '--log-level',
        'warn',
        ...(options.tls ? tlsArgs(options.tls) : []),
      ],
      { cwd: dir, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    proc.stdout?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-20_000)));
    proc.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-20_000)));
    trackChild(proc);
    child = proc;
    try {
      await waitUntilHealthy(client, checkTls, proc, () => log, readyTimeoutMs);
    } catch (err) {
      proc.kill('SIGKILL');
      await waitForExit(proc, 5000);
      throw err;
    }
  };

  const kill = async (): Promise<void> => {
    const proc = child;
    child = null;
    if (!proc) return;
    proc.kill('SIGKILL');
    await waitForExit(proc, 10_000);
  };

  try {
    for (let attempt = 1; ; attempt++) {
      clientPort = await freePort();
      peerPort = await freePort();
      if (clientPort === peerPort) continue;
      try {
        await launch();
        break;
      } catch (err) {
        // Another process may have taken a port between freePort() and bind: try other ones.
        if (attempt < 3 && /address already in use|bind/i.test(String(err))) {
          await rm(dataDir, { recursive: true, force: true });
          continue;
        }
        throw err;
      }
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    endpoint: `${scheme}://127.0.0.1:${clientPort}`,
    port: clientPort,
    kill,
    async restart() {
      if (stopped) throw new Error('etcd was stopped');
      await kill();
      await launch();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
