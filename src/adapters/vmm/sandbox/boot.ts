/**
 * Starting a sandbox's init: `sh` joins the VM's cgroups and execs bwrap, spawned detached with its
 * output going to a log file, so that it survives the agent. Two pipes tell us when it is up:
 * bwrap's --info-fd gives the host pid of the sandbox's pid 1, and the init writes "ready" on the
 * other once it runs inside the finished sandbox. Then the pipes are closed and the child unref'd.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { AetheriumError } from '../../../domain/index.ts';
import { joinCgroupsArgv } from '../cgroups.ts';
import { abortError, killProcessGroup } from '../process-tree.ts';
import { readProcStat } from '../procfs.ts';
import { DEFAULT_PATH } from '../validation.ts';
import type { ExitStatus } from '../vm-watch.ts';
import { INFO_FD, READY_FD } from './bwrap-args.ts';
import type { InitRecord } from './init-record.ts';

export interface BootOptions {
  bwrap: string;
  sh: string;
  bwrapArgs: string[];
  /** `cgroup.procs` files the init joins before bwrap runs. */
  cgroupProcs: string[];
  logFile: string;
  /** Where bwrap's --json-status-fd output goes (STATUS_FD), when the args ask for it. */
  statusFile?: string;
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface BootedSandbox {
  init: InitRecord;
  /** The outer bwrap's exit (it waits for the init and passes its status on, 128 + n for signal n). */
  exited: Promise<ExitStatus>;
}

export async function bootSandbox(options: BootOptions): Promise<BootedSandbox> {
  const { signal } = options;
  if (signal?.aborted) throw abortError(signal);
  const started = performance.now();
  const { file, args } = joinCgroupsArgv(options.sh, options.cgroupProcs, options.bwrap, options.bwrapArgs);
  const logFd = openSync(options.logFile, 'a', 0o600);
  const statusFd = options.statusFile === undefined ? null : openSync(options.statusFile, 'w', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(file, args, {
      cwd: '/',
      env: { PATH: DEFAULT_PATH },
      detached: true,
      stdio: ['ignore', logFd, logFd, 'pipe', 'pipe', ...(statusFd === null ? [] : [statusFd])],
    });
  } finally {
    closeSync(logFd);
    if (statusFd !== null) closeSync(statusFd);
  }
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, sig) => resolve({ code, signal: sig }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  const infoPipe = child.stdio[INFO_FD] as Readable;
  const readyPipe = child.stdio[READY_FD] as Readable;
  let infoText = '';
  let readyText = '';
  let childPid: number | undefined;

  try {
    await new Promise<void>((resolve, reject) => {
      const fail = (err: Error): void => {
        cleanup();
        reject(err);
      };
      const check = (): void => {
        if (childPid === undefined) {
          const match = /"child-pid"\s*:\s*(\d+)/.exec(infoText);
          if (match) childPid = Number(match[1]);
        }
        if (childPid !== undefined && readyText.includes('ready')) {
          cleanup();
          resolve();
        }
      };
      const onAbort = (): void => fail(abortError(signal as AbortSignal));
      const onExit = (code: number | null, sig: NodeJS.Signals | null): void =>
        fail(
          new AetheriumError(
            'driver_failed',
            `bwrap exited during boot (${sig ?? `exit code ${String(code)}`}): ${logTail(options.logFile)}`,
          ),
        );
      const onError = (err: Error): void =>
        fail(new AetheriumError('driver_failed', `cannot start bwrap: ${err.message}`));
      const timer = setTimeout(
        () =>
          fail(
            new AetheriumError(
              'driver_failed',
              `sandbox did not become ready within ${options.timeoutMs} ms: ${logTail(options.logFile)}`,
            ),
          ),
        options.timeoutMs,
      );
      const onInfo = (chunk: Buffer): void => {
        infoText += chunk.toString('utf8');
        check();
      };
      const onReady = (chunk: Buffer): void => {
        readyText += chunk.toString('utf8');
        check();
      };
      function cleanup(): void {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        child.off('exit', onExit);
        child.off('error', onError);
        infoPipe.off('data', onInfo);
        readyPipe.off('data', onReady);
      }
      infoPipe.on('data', onInfo);
      readyPipe.on('data', onReady);
      child.once('exit', onExit);
      child.once('error', onError);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  } catch (err) {
    // The init has its own session (--new-session), so kill it by pid as well as the outer group.
    if (childPid !== undefined) {
      try {
        process.kill(childPid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    if (child.pid !== undefined) killProcessGroup(child.pid);
    infoPipe.destroy();
    readyPipe.destroy();
    throw err;
  }

  infoPipe.destroy();
  readyPipe.destroy();
  child.unref();
  const pid = childPid as number;
  const stat = readProcStat(pid);
  if (!stat)
    throw new AetheriumError(
      'driver_failed',
      `sandbox pid 1 (host pid ${pid}) vanished right after boot: ${logTail(options.logFile)}`,
    );
  return {
    init: {
      pid,
      start_time: stat.startTime,
      monitor_pid: child.pid ?? 0,
      started_at: new Date().toISOString(),
      boot_ms: Math.round(performance.now() - started),
    },
    exited,
  };
}

function logTail(file: string): string {
  try {
    const text = readFileSync(file, 'utf8').trim();
    return text === '' ? '(no output)' : text.slice(-2_000);
  } catch {
    return '(no log)';
  }
}
