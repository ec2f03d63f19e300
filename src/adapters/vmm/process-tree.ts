/**
 * Running one command as its own process group, with a timeout, an abort signal, streamed and
 * capped output, and a kill that reaches the whole tree. Shared by every driver that execs host
 * processes (the `process` driver runs the command itself, the `sandbox` driver runs nsenter).
 *
 * Semantics, the same for every driver:
 *  - the command runs in a new session / process group (spawned detached); killing means SIGKILL
 *    to the whole group, then the caller's `sweep` (e.g. every process left in a cgroup);
 *  - a timeout kills the tree and resolves with `timed_out: true` and exit code 124
 *    (TIMEOUT_EXIT_CODE, as GNU `timeout` does) whatever signal the processes died of;
 *  - an abort kills the tree, waits (briefly) for the command to be gone, then rejects with an
 *    error whose name is 'AbortError';
 *  - a command killed by a signal for any other reason resolves with exit code 128 + signal number
 *    (137 for SIGKILL, e.g. the OOM killer or a VM stop), as a shell reports it;
 *  - a command that cannot be started resolves with 127 (not found) or 126 (not executable) and
 *    the reason on stderr, like a shell;
 *  - stdout and stderr are kept up to MAX_OUTPUT_BYTES each (see OutputBuffer).
 */
import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { type ExecResult, outputFields } from '../../domain/index.ts';
import { MAX_OUTPUT_BYTES, OutputBuffer } from './output-buffer.ts';
import { isProcessAlive, sleep } from './procfs.ts';

export { MAX_OUTPUT_BYTES };

export const TIMEOUT_EXIT_CODE = 124;
/** After the main process exits, how long to wait for its pipes to close (a background child may hold them). */
const STDIO_DRAIN_GRACE_MS = 300;
/** After a kill, how long an abort waits for the process to be reaped before rejecting anyway. */
const KILL_SETTLE_MS = 1_500;

export interface CommandOptions {
  file: string;
  args: readonly string[];
  env: Record<string, string>;
  cwd: string;
  stdin?: string;
  stdinStream?: AsyncIterable<string | Buffer>;
  timeout_ms?: number;
  signal?: AbortSignal;
  onStdout?: (chunk: string) => void;
  onStderr?: (chunk: string) => void;
  maxOutputBytes?: number;
  /** Kill what is left of the process group once the main process has exited. */
  killGroupOnExit?: boolean;
  /** Runs after the process group was killed (timeout, abort, kill()): e.g. empties a cgroup. */
  sweep?: () => Promise<void>;
}

export interface RunningCommand {
  readonly pid: number | undefined;
  /** SIGKILLs the command's tree; `result` then resolves (exit code 137), it does not reject. */
  kill(): Promise<void>;
  readonly result: Promise<ExecResult>;
}

export function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error && reason.name === 'AbortError') return reason;
  const err = new Error('The operation was aborted', { cause: reason }) as Error & { code: string };
  err.name = 'AbortError';
  err.code = 'ABORT_ERR';
  return err;
}

export function isAbortError(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError';
}

/** SIGKILL (or `signal`) to every process of the group; a group that is already gone is fine. */
export function killProcessGroup(pgid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (!Number.isInteger(pgid) || pgid <= 1) return;
  try {
    process.kill(-pgid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

export function runCommand(options: CommandOptions): Promise<ExecResult> {
  return startCommand(options).result;
}

export function startCommand(options: CommandOptions): RunningCommand {
  const { signal } = options;
  if (signal?.aborted) {
    return { pid: undefined, kill: async () => {}, result: Promise.reject(abortError(signal)) };
  }

  const child = spawn(options.file, [...options.args], {
    cwd: options.cwd,
    env: options.env,
    detached: true,
    stdio: [options.stdin === undefined && options.stdinStream === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  const pgid = child.pid;
  const cap = options.maxOutputBytes ?? MAX_OUTPUT_BYTES;
  const stdout = new OutputBuffer('stdout', cap, options.onStdout);
  const stderr = new OutputBuffer('stderr', cap, options.onStderr);
  child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
  if (options.stdin !== undefined && child.stdin) {
    child.stdin.on('error', () => {}); // EPIPE when the command does not read its input
    child.stdin.end(options.stdin);
  } else if (options.stdinStream && child.stdin) {
    const input = child.stdin;
    input.on('error', () => {});
    void (async () => {
      for await (const chunk of options.stdinStream!) {
        if (input.destroyed) break;
        // Respect the pipe's back-pressure: a command that reads slowly slows the sender, not memory.
        if (!input.write(chunk)) await new Promise((resolve) => input.once('drain', resolve));
      }
      input.end();
    })().catch(() => input.destroy());
  }

  let killing: Promise<void> | undefined;
  const killTree = (): Promise<void> => {
    killing ??= (async () => {
      if (pgid !== undefined) killProcessGroup(pgid);
      await options.sweep?.();
    })().catch(() => {});
    return killing;
  };

  let timedOut = false;
  let aborted = false;
  let spawnError: NodeJS.ErrnoException | undefined;
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  const result = new Promise<ExecResult>((resolve, reject) => {
    let settled = false;
    const timers: NodeJS.Timeout[] = [];

    const settle = (): void => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      signal?.removeEventListener('abort', onAbort);
      child.stdout?.destroy();
      child.stderr?.destroy();
      void (async () => {
        if (killing) await killing;
        if (aborted && signal) {
          // Rejecting only once the command is really gone (or after a bounded wait).
          if (pgid !== undefined && exit === undefined) await waitGone(pgid, KILL_SETTLE_MS);
          reject(abortError(signal));
          return;
        }
        const out = stdout.finish();
        const err = stderr.finish();
        let exitCode: number;
        if (timedOut) exitCode = TIMEOUT_EXIT_CODE;
        else if (spawnError && exit === undefined) {
          exitCode = spawnError.code === 'ENOENT' ? 127 : 126;
          err.text += `aetherium: cannot run ${JSON.stringify(options.file)}: ${spawnError.code ?? spawnError.message}\n`;
        } else if (exit?.code !== null && exit?.code !== undefined) exitCode = exit.code;
        else exitCode = 128 + signalNumber(exit?.signal ?? 'SIGKILL');
        resolve({ exit_code: exitCode, ...outputFields(out, err), ...(timedOut ? { timed_out: true } : {}) });
      })();
    };

    const onAbort = (): void => {
      if (settled) return;
      aborted = true;
      void killTree();
      timers.push(setTimeout(settle, KILL_SETTLE_MS));
    };

    child.on('error', (err: NodeJS.ErrnoException) => {
      spawnError = err;
      if (pgid === undefined) settle(); // never started: no 'exit' will follow
    });
    child.on('exit', (code, sig) => {
      exit = { code, signal: sig };
      if (options.killGroupOnExit || aborted || timedOut) void killTree();
      // The pipes normally close right after the exit; a background child may keep them open.
      timers.push(setTimeout(settle, STDIO_DRAIN_GRACE_MS));
    });
    child.on('close', settle);

    if (options.timeout_ms !== undefined) {
      timers.push(
        setTimeout(() => {
          if (settled || exit) return;
          timedOut = true;
          void killTree();
        }, options.timeout_ms),
      );
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });

  return {
    pid: pgid,
    kill: async () => {
      await killTree();
    },
    result,
  };
}

function signalNumber(sig: NodeJS.Signals): number {
  return (osConstants.signals as Record<string, number>)[sig] ?? 9;
}

async function waitGone(pid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (isProcessAlive(pid) && Date.now() < deadline) await sleep(10);
}

/** The commands currently running per VM, so that stop/delete/close can kill them. */
export class CommandRegistry {
  private readonly byVm = new Map<string, Set<RunningCommand>>();

  track(vmId: string, command: RunningCommand): void {
    let set = this.byVm.get(vmId);
    if (!set) this.byVm.set(vmId, (set = new Set()));
    set.add(command);
    const untrack = (): void => {
      set.delete(command);
      if (set.size === 0 && this.byVm.get(vmId) === set) this.byVm.delete(vmId);
    };
    command.result.then(untrack, untrack);
  }

  async killVm(vmId: string): Promise<void> {
    const set = this.byVm.get(vmId);
    if (!set) return;
    const commands = [...set];
    await Promise.all(commands.map((c) => c.kill()));
    await Promise.allSettled(commands.map((c) => c.result));
  }

  async killAll(): Promise<void> {
    await Promise.all([...this.byVm.keys()].map((id) => this.killVm(id)));
  }
}
