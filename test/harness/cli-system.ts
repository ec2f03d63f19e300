/**
 * For the CLI's tests: `aetherium dev` as a real process on a free loopback port, in its own
 * temporary directory, and the CLI run against it as a user runs it, with an environment that
 * holds nothing of the machine's (no token, no context, a client configuration of its own).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trackChild } from './child-processes.ts';
import { CLI, type CliResult, exited, freePort, runCli, waitForHttp } from './processes.ts';

export type Run = CliResult;

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  /** Written to its stdin, then closed (default: no stdin at all). */
  input?: string;
  cwd?: string;
  timeoutMs?: number;
}

/** The variables a CLI run must not inherit from the machine running the tests. */
export function isolatedEnv(dir: string): NodeJS.ProcessEnv {
  return {
    AETHERIUM_API: '',
    AETHERIUM_TOKEN: '',
    AETHERIUM_CA_FILE: '',
    AETHERIUM_CONTEXT: '',
    AETHERIUM_CLIENT_CONFIG: '',
    AETHERIUM_KEY_FILE: join(dir, 'no-such.key'),
    AETHERIUM_DEBUG: '',
    AETHERIUM_CONFIG: '',
    XDG_CONFIG_HOME: join(dir, 'xdg'),
    NO_COLOR: '',
  };
}

/** Runs `aetherium …` to completion (in `cwd`, default the system's directory). */
export function run(args: string[], options: RunOptions & { cwd: string }): Promise<Run> {
  return runCli(args, options.env, options.timeoutMs, {
    cwd: options.cwd,
    ...(options.input === undefined ? {} : { input: options.input }),
  });
}

export interface CliSystem {
  dir: string;
  api: string;
  port: number;
  adminKey: string;
  keyFile: string;
  /** The CLI against this system with its admin key (through AETHERIUM_API and AETHERIUM_KEY_FILE). */
  cli(args: string[], options?: RunOptions): Promise<Run>;
  /** The API itself, for comparing: the parsed JSON answer of `GET /api/v1<path>`. */
  get(path: string): Promise<unknown>;
  stop(): Promise<void>;
}

/** `env`: more of the process's environment (configuration such as `AETHERIUM_API_GATEWAY__TRUST_PROXY`). */
export async function startCliSystem(options: { env?: Record<string, string> } = {}): Promise<CliSystem> {
  const dir = mkdtempSync(join(tmpdir(), 'aetherium-cli-'));
  const port = await freePort();
  const api = `http://127.0.0.1:${port}`;
  let output = '';
  const child: ChildProcess = spawn(
    process.execPath,
    [CLI, 'dev', '--port', String(port), '--host', '127.0.0.1', '--data-dir', join(dir, 'data')],
    {
      cwd: dir,
      // Room for the tests' VMs whatever the host: a worker reserves whole vCPUs, without overcommit.
      env: {
        ...process.env,
        ...isolatedEnv(dir),
        AETHERIUM_LOG__LEVEL: 'warn',
        AETHERIUM_WORKER__RESOURCES__CPU_CORES: '16',
        ...options.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  trackChild(child);
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited(child, 20_000).catch(() => child.kill('SIGKILL'));
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForHttp(
      `${api}/health`,
      () => true,
      90_000,
      () => output,
    );
    const keyFile = join(dir, 'data', 'admin.key');
    const adminKey = readFileSync(keyFile, 'utf8').trim();
    const headers = { authorization: `Bearer ${adminKey}` };
    await waitForHttp<{ healthy_workers: number }>(
      `${api}/api/v1/cluster/stats`,
      (s) => s.healthy_workers === 1,
      60_000,
      () => output,
      headers,
    );
    const env = { ...isolatedEnv(dir), AETHERIUM_API: api, AETHERIUM_KEY_FILE: keyFile };
    return {
      dir,
      api,
      port,
      adminKey,
      keyFile,
      cli: (args, options = {}) => run(args, { cwd: dir, ...options, env: { ...env, ...options.env } }),
      get: async (path) => (await fetch(`${api}/api/v1${path}`, { headers })).json(),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
