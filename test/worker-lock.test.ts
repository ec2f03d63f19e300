/**
 * The worker lock: one process per state dir. Against a real second process holding it (a child
 * that takes the lock through tsx, as `aetherium worker` does), a stale lock left by a killed
 * process, hand-written locks, and the wiring in startWorker (taken before anything else, released
 * by a failed start).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.ts';
import type { Config } from '../src/config/schema.ts';
import { startWorker } from '../src/runtime/cluster.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { acquireWorkerLock, LOCK_FILE, WorkerLockHeld } from '../src/runtime/worker-lock.ts';

const LOCK_MODULE = fileURLToPath(new URL('../src/runtime/worker-lock.ts', import.meta.url));

/** Another process holding the lock of `dir` until it is killed. */
async function holderProcess(dir: string, workerId: string): Promise<ChildProcess> {
  const script = `const { acquireWorkerLock } = await import(${JSON.stringify(LOCK_MODULE)});
await acquireWorkerLock(${JSON.stringify(dir)}, ${JSON.stringify(workerId)});
process.stdout.write('held\\n');
setInterval(() => {}, 60_000);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      output += d;
      if (output.includes('held')) resolve();
    });
    child.stderr!.on('data', (d) => (output += d));
    child.once('exit', (code) => reject(new Error(`the lock holder exited with ${code}: ${output}`)));
  });
  return child;
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** A pid that existed and is gone now. */
async function deadPid(): Promise<number> {
  const child = spawn('true');
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid as number;
}

function capturingLog() {
  const lines: { obj: Record<string, unknown>; msg: string }[] = [];
  const log = {
    warn: (obj: Record<string, unknown>, msg: string) => lines.push({ obj, msg }),
  } as unknown as typeof silentLogger;
  return { log, lines };
}

const children: ChildProcess[] = [];
let dir: string;

afterEach(async () => {
  for (const child of children.splice(0)) await kill(child);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('acquireWorkerLock', () => {
  const fresh = () => {
    dir = mkdtempSync(join(tmpdir(), 'aetherium-lock-'));
    return dir;
  };

  it('refuses a second holder while the first process lives, naming its pid and the dir', async () => {
    const stateDir = fresh();
    const holder = await holderProcess(stateDir, 'w-1');
    const lock = JSON.parse(readFileSync(join(stateDir, LOCK_FILE), 'utf8'));
    expect(lock).toMatchObject({ pid: holder.pid, worker_id: 'w-1' });

    const same = await acquireWorkerLock(stateDir, 'w-1').catch((err: unknown) => err);
    expect(same).toBeInstanceOf(WorkerLockHeld);
    expect((same as Error).message).toContain(`worker "w-1" is already running on this host (pid ${holder.pid}`);
    expect((same as Error).message).toContain(stateDir);
    // Another worker id on the same dir is refused too: workers must not share a state dir.
    const other = await acquireWorkerLock(stateDir, 'w-2').catch((err: unknown) => err);
    expect((other as Error).message).toMatch(
      /state dir .* is in use by another worker process \(pid \d+, worker "w-1"\)/,
    );
    // The holder's lock is untouched by the refusals.
    expect(JSON.parse(readFileSync(join(stateDir, LOCK_FILE), 'utf8')).pid).toBe(holder.pid);
  });

  it('takes over the lock of a process that died without releasing it, with a log line', async () => {
    const stateDir = fresh();
    const holder = await holderProcess(stateDir, 'w-1');
    await kill(holder); // SIGKILL: no release
    expect(existsSync(join(stateDir, LOCK_FILE))).toBe(true);

    const { log, lines } = capturingLog();
    const lock = await acquireWorkerLock(stateDir, 'w-1', log);
    expect(JSON.parse(readFileSync(lock.path, 'utf8'))).toMatchObject({ pid: process.pid, worker_id: 'w-1' });
    expect(lines).toEqual([
      {
        obj: expect.objectContaining({ stale_pid: holder.pid, stale_worker: 'w-1' }),
        msg: expect.stringMatching(/stale/),
      },
    ]);
    await lock.release();
  });

  it('is released by release(), once, and then free for the next process', async () => {
    const stateDir = fresh();
    const lock = await acquireWorkerLock(stateDir, 'w-1');
    // This very process holding it counts as live: a second start in one process is refused too.
    await expect(acquireWorkerLock(stateDir, 'w-1')).rejects.toThrow(/this very process/);
    await lock.release();
    await lock.release();
    expect(existsSync(join(stateDir, LOCK_FILE))).toBe(false);
    const holder = await holderProcess(stateDir, 'w-1');
    expect(JSON.parse(readFileSync(join(stateDir, LOCK_FILE), 'utf8')).pid).toBe(holder.pid);
  });

  it('release() leaves alone a lock that is no longer its own', async () => {
    const stateDir = fresh();
    const lock = await acquireWorkerLock(stateDir, 'w-1');
    const someoneElse = `${JSON.stringify({ pid: 1, worker_id: 'w-1' })}\n`;
    writeFileSync(lock.path, someoneElse); // taken over meanwhile
    await lock.release();
    expect(readFileSync(lock.path, 'utf8')).toBe(someoneElse);
  });

  it('reads hand-written locks: a bare live pid holds, a dead pid or garbage is stale', async () => {
    const stateDir = fresh();
    const path = join(stateDir, LOCK_FILE);
    const sleeper = spawn('sleep', ['60']);
    children.push(sleeper);
    writeFileSync(path, `${sleeper.pid}\n`);
    await expect(acquireWorkerLock(stateDir, 'w-1')).rejects.toThrow(`pid ${sleeper.pid}`);

    writeFileSync(path, `${await deadPid()}\n`);
    await (await acquireWorkerLock(stateDir, 'w-1')).release();
    writeFileSync(path, 'not a lock');
    await (await acquireWorkerLock(stateDir, 'w-1')).release();
  });
});

describe('startWorker takes the lock before anything else', () => {
  const workerConfig = (stateDir: string): Config =>
    loadConfig({
      env: {},
      overrides: {
        log: { level: 'silent' },
        // Nothing listens there, and the worker has no identity: a start that fails after the lock.
        worker: { id: 'locked', servers: ['127.0.0.1:1'], drivers: { state_dir: stateDir } },
      },
    });

  it('refuses to start while another holder has the state dir', async () => {
    dir = mkdtempSync(join(tmpdir(), 'aetherium-lock-'));
    const holder = await holderProcess(dir, 'locked');
    const err = await startWorker(workerConfig(dir), silentLogger).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkerLockHeld);
    expect((err as Error).message).toContain(`pid ${holder.pid}`);
  });

  it('releases the lock when the start fails', async () => {
    dir = mkdtempSync(join(tmpdir(), 'aetherium-lock-'));
    const err = await startWorker(workerConfig(dir), silentLogger).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(WorkerLockHeld);
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
  }, 60_000);
});
