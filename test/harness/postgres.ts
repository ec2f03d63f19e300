/**
 * Starts a real, throwaway PostgreSQL server for tests: `initdb` into a fresh temp folder, `postgres`
 * on a free loopback port, and `stop()` to kill it and remove the folder.
 *
 * Binaries: `$PG_BIN`, else the highest `/usr/lib/postgresql/<version>/bin` (Debian's `postgresql`
 * package), else `initdb`/`postgres` on PATH. Postgres refuses to run as root, so when the tests run
 * as root the server runs as the `postgres` system user (or `nobody` if there is none).
 *
 * `tls` starts it with `ssl=on` and a pg_hba that refuses every connection without TLS; the URL it
 * returns then says `sslmode=verify-full` with the test CA (and the `postgres` client certificate
 * when the server asks for one), as a production URL would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { trackChild, waitForExit } from './child-processes.ts';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { appendFile, chmod, chown, copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import pg from 'pg';
import type { TestCertificates } from './test-certs.ts';

export interface PostgresServer {
  /** Superuser URL on the `postgres` database, e.g. `postgres://postgres@127.0.0.1:54321/postgres`. */
  url: string;
  port: number;
  stop(): Promise<void>;
  /** Stops the server (fast shutdown) and starts it again on the same port and data. */
  restart(downMs?: number): Promise<void>;
  /**
   * A crash: SIGKILL to the postmaster and every backend at once, nothing flushed, nobody told.
   * `start()` brings it back on the same port and data (it runs crash recovery first).
   */
  crash(): Promise<void>;
  /** Starts a crashed server again; does nothing while it runs. */
  start(): Promise<void>;
}

interface RunAs {
  uid: number;
  gid: number;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The folder holding `initdb` and `postgres`. */
export function findPostgresBin(): string {
  const fromEnv = process.env.PG_BIN;
  if (fromEnv) {
    if (!isExecutable(join(fromEnv, 'initdb'))) throw new Error(`PG_BIN=${fromEnv} has no executable initdb`);
    return fromEnv;
  }
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => /^\d+(\.\d+)?$/.test(v) && isExecutable(join(root, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0] !== undefined) return join(root, versions[0], 'bin');
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && isExecutable(join(dir, 'initdb')) && isExecutable(join(dir, 'postgres'))) return dir;
  }
  throw new Error(
    'PostgreSQL binaries not found: set PG_BIN, or install them (Debian: apt-get install postgresql) so that /usr/lib/postgresql/*/bin exists',
  );
}

/** uid/gid of a user from /etc/passwd, or null when there is none. */
function lookupUser(name: string): RunAs | null {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const [user, , uid, gid] = line.split(':');
      if (user === name && uid !== undefined && gid !== undefined) return { uid: Number(uid), gid: Number(gid) };
    }
  } catch {
    // no /etc/passwd: fall through
  }
  return null;
}

function runAsForRoot(): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const user = lookupUser('postgres') ?? lookupUser('nobody');
  if (!user)
    throw new Error('running as root, but there is neither a "postgres" nor a "nobody" user to run PostgreSQL as');
  return user;
}

/** os.tmpdir(), unless the server's other user could not reach into it (then /tmp). */
function tempRoot(runAs: RunAs | undefined): string {
  const dir = tmpdir();
  if (!runAs) return dir;
  try {
    return (statSync(dir).mode & 0o001) !== 0 ? dir : '/tmp';
  } catch {
    return '/tmp';
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

const childEnv = () => ({ ...process.env, LC_ALL: 'C', LANG: 'C', PGTZ: 'UTC' });

function run(command: string, args: string[], runAs: RunAs | undefined, cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'], ...runAs });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`${command} exited with ${code ?? signal}:\n${output}`)),
    );
  });
}

async function waitUntilReady(url: string, child: ChildProcess, log: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `postgres exited (${child.exitCode ?? child.signalCode}) before accepting connections:\n${log()}`,
      );
    }
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query('SELECT 1');
      await client.end();
      return;
    } catch (err) {
      lastError = err;
      await client.end().catch(() => {});
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`postgres did not accept connections within ${timeoutMs} ms: ${String(lastError)}\n${log()}`);
}

export interface StartOptions {
  /** How long to wait for the server to accept connections (default 30 s). */
  readyTimeoutMs?: number;
  /** Addresses to listen on besides 127.0.0.1 (e.g. a bridge for test network namespaces); trusted. */
  extraListen?: string[];
  /**
   * Server settings over the defaults (which favour speed: fsync, synchronous_commit and
   * full_page_writes off). `{ synchronous_commit: 'on' }` makes a commit survive `crash()`:
   * with it off the last commits of a killed server are lost, acknowledged or not.
   */
  settings?: Record<string, string>;
  /** TLS only (see the header); without it, plain TCP as before. */
  tls?: {
    /** The server presents `certs.server`; client certificates must be signed by `certs.ca`. */
    certs: TestCertificates;
    /**
     * 'verify-full': every connection must present a client certificate for its user (pg_hba
     * `cert`: signed by the CA, CN = the user name). 'none' (default): TLS, no client certificate.
     */
    clientCert?: 'none' | 'verify-full';
  };
}

/**
 * Copies the server's certificate, key and CA next to its data (Postgres wants its key owned by
 * the server's user and private), replaces pg_hba.conf with TLS-only rules, and returns the
 * `-c` settings and the query string clients need.
 */
async function setUpTls(
  tls: NonNullable<StartOptions['tls']>,
  base: string,
  dataDir: string,
  runAs: RunAs | undefined,
): Promise<{ settings: string[]; query: string }> {
  const dir = join(base, 'tls');
  await mkdir(dir, { mode: 0o700 });
  const files = { ssl_cert_file: tls.certs.server.cert, ssl_key_file: tls.certs.server.key, ssl_ca_file: tls.certs.ca };
  const settings = ['ssl=on'];
  for (const [setting, source] of Object.entries(files)) {
    const target = join(dir, setting);
    await copyFile(source, target);
    await chmod(target, 0o600);
    if (runAs) await chown(target, runAs.uid, runAs.gid);
    settings.push(`${setting}=${target}`);
  }
  if (runAs) await chown(dir, runAs.uid, runAs.gid);
  const needCert = tls.clientCert === 'verify-full';
  // First match wins: TLS connections are let in (with a certificate for their user when asked),
  // anything else over TCP is turned away, so a client that skipped TLS cannot pass by accident.
  await writeFile(
    join(dataDir, 'pg_hba.conf'),
    [
      'local all all trust',
      `hostssl all all 0.0.0.0/0 ${needCert ? 'cert' : 'trust'}`,
      'hostnossl all all 0.0.0.0/0 reject',
      '',
    ].join('\n'),
  );
  const query = new URLSearchParams({ sslmode: 'verify-full', sslrootcert: tls.certs.ca });
  if (needCert) {
    const client = tls.certs.clients.postgres;
    if (!client)
      throw new Error('clientCert: verify-full needs a client certificate for "postgres" in the certificates');
    query.set('sslcert', client.cert);
    query.set('sslkey', client.key);
  }
  return { settings: settings.flatMap((setting) => ['-c', setting]), query: `?${query}` };
}

/** initdb + start a private server; resolves once it accepts connections. */
export async function startPostgres(options: StartOptions = {}): Promise<PostgresServer> {
  const bin = findPostgresBin();
  const runAs = runAsForRoot();
  const base = await mkdtemp(join(tempRoot(runAs), 'aetherium-pg-'));
  const dataDir = join(base, 'data');
  try {
    if (runAs) {
      // The server's user must own the folder; the temp root above it must let it through.
      await chown(base, runAs.uid, runAs.gid);
      await chmod(base, 0o700);
    }
    await run(
      join(bin, 'initdb'),
      ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
      runAs,
      base,
    );

    const tls = options.tls ? await setUpTls(options.tls, base, dataDir, runAs) : null;
    if (options.extraListen?.length && !tls) {
      // Test hosts in their own network namespaces connect over the bridge: trust them like loopback.
      await appendFile(
        join(dataDir, 'pg_hba.conf'),
        options.extraListen.map((a) => `host all all ${a}/24 trust\n`).join(''),
      );
    }
    const listen = ['127.0.0.1', ...(options.extraListen ?? [])].join(',');

    const launch = (port: number) => {
      let log = '';
      const child = spawn(
        join(bin, 'postgres'),
        [
          '-D',
          dataDir,
          '-p',
          String(port),
          '-k',
          base,
          '-c',
          `listen_addresses=${listen}`,
          '-c',
          'fsync=off',
          '-c',
          'synchronous_commit=off',
          '-c',
          'full_page_writes=off',
          '-c',
          'max_connections=300',
          '-c',
          'log_min_messages=warning',
          ...(tls?.settings ?? []),
          // Given last: a repeated -c wins.
          ...Object.entries(options.settings ?? {}).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
        ],
        { cwd: base, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'], ...runAs },
      );
      child.stdout?.on('data', (d: Buffer) => (log += d.toString()));
      child.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-20_000)));
      trackChild(child);
      return { child, log: () => log };
    };
    const halt = async (child: ChildProcess) => {
      child.kill('SIGINT'); // fast shutdown: disconnect clients, no checkpoint wait worth mentioning
      if (!(await waitForExit(child, 10_000))) {
        child.kill('SIGKILL');
        await waitForExit(child, 5000);
      }
    };

    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      let current = launch(port);
      const url = `postgres://postgres@127.0.0.1:${port}/postgres${tls?.query ?? ''}`;
      try {
        await waitUntilReady(url, current.child, current.log, options.readyTimeoutMs ?? 30_000);
      } catch (err) {
        current.child.kill('SIGKILL');
        await waitForExit(current.child, 5000);
        // Another process may have taken the port between freePort() and bind: try another one.
        if (attempt < 3 && /could not bind|address already in use/i.test(current.log())) continue;
        throw err;
      }

      let stopped = false;
      const running = () => current.child.exitCode === null && current.child.signalCode === null;
      return {
        url,
        port,
        async stop() {
          if (stopped) return;
          stopped = true;
          await halt(current.child);
          await rm(base, { recursive: true, force: true });
        },
        async restart(downMs = 0) {
          await halt(current.child);
          if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
          current = launch(port);
          await waitUntilReady(url, current.child, current.log, options.readyTimeoutMs ?? 30_000);
        },
        async crash() {
          const postmaster = current.child.pid;
          if (postmaster === undefined || !running()) return;
          // The backends are the postmaster's children: all of them die together, as with the host.
          const backends = childrenOf(postmaster);
          for (const pid of [postmaster, ...backends]) {
            try {
              process.kill(pid, 'SIGKILL');
            } catch {
              // gone already
            }
          }
          await waitForExit(current.child, 5000);
          const deadline = Date.now() + 5000;
          while (backends.some(isAlive) && Date.now() < deadline) await sleep(20);
        },
        async start() {
          if (stopped) throw new Error('the Postgres server was stopped for good');
          if (running()) return;
          current = launch(port);
          await waitUntilReady(url, current.child, current.log, options.readyTimeoutMs ?? 30_000);
        },
      };
    }
  } catch (err) {
    await rm(base, { recursive: true, force: true });
    throw err;
  }
}

/** Pids whose parent is `parent` (from /proc). */
function childrenOf(parent: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/** Alive and not a zombie. */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZXx]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

/** Creates a fresh, empty database on the server and returns its URL (one per test file or store). */
export async function createDatabase(serverUrl: string, prefix = 'aetherium_test'): Promise<string> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE "${name}"`);
  } finally {
    await client.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
