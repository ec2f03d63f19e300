/**
 * Starts a real, throwaway Redis server for tests: Debian's `redis-server` (package `redis-server`)
 * on a free loopback port with a temp folder of its own, `stop()` to kill it and remove the folder,
 * and `restart()` to stop it and start it again on the same port and folder.
 *
 * Persistence: by default the server keeps an append-only file (`--appendonly yes`, fsync every
 * second, no RDB snapshots). `restart()` shuts the server down gracefully (SIGTERM), which flushes
 * the AOF, so the data is still there afterwards, as on a production Redis with persistence on.
 * `persistence: 'none'` (`--appendonly no --save ''`) gives a server that comes back empty.
 *
 * `tls` serves TLS only (`--port 0 --tls-port <port>`) with the test CA's server certificate, and
 * asks clients for a certificate as `authClients` says (`--tls-auth-clients`); the URL is then
 * `rediss://`. The harness's own PING then goes over TLS with the first client certificate.
 *
 * Binary: `$REDIS_SERVER`, else `redis-server` on PATH.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { trackChild, waitForExit } from './child-processes.ts';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { connect as connectTls, type ConnectionOptions } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './processes.ts';
import type { TestCertificates } from './test-certs.ts';

export interface RedisServer {
  /** e.g. `redis://127.0.0.1:45123` (`rediss://` with `tls`) */
  url: string;
  port: number;
  /** The server's working directory (AOF files live here). */
  dir: string;
  /** Kills the server and removes its folder. Idempotent. */
  stop(): Promise<void>;
  /**
   * Stops the server (gracefully: the AOF is flushed) and starts it again on the same port and
   * folder, after `downMs` (default 0) of outage.
   */
  restart(downMs?: number): Promise<void>;
  /**
   * Stops the server without removing its folder; `start()` brings it back (outage tests).
   * SIGTERM (default) flushes the AOF first; SIGKILL is a crash: the last second of writes
   * (`appendfsync everysec`) may be lost.
   */
  kill(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  start(): Promise<void>;
}

export interface StartRedisOptions {
  /** 'aof' (default): `--appendonly yes`, data survives restart(). 'none': the server comes back empty. */
  persistence?: 'aof' | 'none';
  /** How long to wait for PING to answer (default 10 s). */
  readyTimeoutMs?: number;
  /** Addresses to listen on besides 127.0.0.1 (e.g. a bridge for test network namespaces). */
  extraListen?: string[];
  /** TLS only (see the header); without it, plain TCP as before. */
  tls?: {
    /** The server presents `certs.server` and accepts client certificates signed by `certs.ca`. */
    certs: TestCertificates;
    /** `--tls-auth-clients`: 'yes' (Redis's default) refuses clients without a certificate. */
    authClients?: 'yes' | 'optional' | 'no';
  };
}

function tlsArgs(tls: NonNullable<StartRedisOptions['tls']>): string[] {
  return [
    '--tls-cert-file',
    tls.certs.server.cert,
    '--tls-key-file',
    tls.certs.server.key,
    '--tls-ca-cert-file',
    tls.certs.ca,
    '--tls-auth-clients',
    tls.authClients ?? 'yes',
  ];
}

/**
 * One PING over a raw socket (a TLS one when `tls` is given): true when the server answers +PONG.
 */
export function ping(port: number, timeoutMs = 1000, tls?: ConnectionOptions): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tls ? connectTls({ host: '127.0.0.1', port, ...tls }) : connect({ host: '127.0.0.1', port });
    let answer = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on(tls ? 'secureConnect' : 'connect', () => socket.write('PING\r\n'));
    socket.on('data', (d) => {
      answer += d.toString();
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'));
    });
    socket.on('error', () => done(false));
  });
}

export async function startRedis(options: StartRedisOptions = {}): Promise<RedisServer> {
  const binary = process.env.REDIS_SERVER ?? 'redis-server';
  const persistence = options.persistence ?? 'aof';
  const readyTimeoutMs = options.readyTimeoutMs ?? 10_000;
  const dir = await mkdtemp(join(tmpdir(), 'aetherium-redis-'));
  let child: ChildProcess | null = null;
  let log = '';
  let removed = false;
  const client = options.tls ? Object.values(options.tls.certs.clients)[0] : undefined;
  const pingTls: ConnectionOptions | undefined = options.tls
    ? {
        ca: readFileSync(options.tls.certs.ca),
        ...(client ? { cert: readFileSync(client.cert), key: readFileSync(client.key) } : {}),
      }
    : undefined;

  const args = (port: number) => [
    ...(options.tls ? ['--port', '0', '--tls-port', String(port), ...tlsArgs(options.tls)] : ['--port', String(port)]),
    '--bind',
    '127.0.0.1',
    ...(options.extraListen ?? []),
    '--dir',
    dir,
    '--daemonize',
    'no',
    '--save',
    '',
    ...(persistence === 'aof' ? ['--appendonly', 'yes', '--appendfsync', 'everysec'] : ['--appendonly', 'no']),
    '--protected-mode',
    'no',
    '--logfile',
    '',
    '--loglevel',
    'warning',
  ];

  async function launch(port: number): Promise<void> {
    log = '';
    const proc = spawn(binary, args(port), { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    proc.stdout?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-20_000)));
    proc.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-20_000)));
    let spawnError: Error | null = null;
    proc.on('error', (err) => (spawnError = err));
    trackChild(proc);

    const deadline = Date.now() + readyTimeoutMs;
    while (Date.now() < deadline) {
      if (spawnError)
        throw new Error(`could not run ${binary} (Debian: apt-get install redis-server): ${String(spawnError)}`);
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`redis-server exited (${proc.exitCode ?? proc.signalCode}) before answering PING:\n${log}`);
      }
      if (await ping(port, 500, pingTls)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    proc.kill('SIGKILL');
    await waitForExit(proc, 5000);
    throw new Error(`redis-server did not answer PING within ${readyTimeoutMs} ms:\n${log}`);
  }

  async function halt(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const proc = child;
    child = null;
    if (!proc) return;
    proc.kill(signal); // SIGTERM is graceful: it flushes the AOF
    if (!(await waitForExit(proc, 10_000))) {
      proc.kill('SIGKILL');
      await waitForExit(proc, 5000);
    }
  }

  let port = 0;
  try {
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      try {
        await launch(port);
        break;
      } catch (err) {
        // Another process may have taken the port between freePort() and bind: try another one.
        if (attempt < 3 && /address already in use/i.test(log)) continue;
        throw err;
      }
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    url: `${options.tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    port,
    dir,
    async stop() {
      await halt();
      if (!removed) {
        removed = true;
        await rm(dir, { recursive: true, force: true });
      }
    },
    async restart(downMs = 0) {
      if (removed) throw new Error('the Redis server was stopped for good');
      await halt();
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      await launch(port);
    },
    async kill(signal = 'SIGTERM') {
      await halt(signal);
    },
    async start() {
      if (removed) throw new Error('the Redis server was stopped for good');
      if (child) return;
      await launch(port);
    },
  };
}
