/**
 * One worker process per state dir: `<state_dir>/worker.lock` names the process that holds it.
 * Two processes on one dir (two workers with one id, or two workers pointed at one state_dir)
 * would each reconcile, clean up and report the other's VMs, so the second one refuses to start.
 *
 * The lock file appears complete and only if absent (written aside, then hard-linked into place:
 * exclusive like O_EXCL, and never seen half-written). A lock whose process is gone (crash,
 * SIGKILL, reboot) is stale and taken over; the process is named by its pid and its start time,
 * so a recycled pid does not keep a dead worker's lock alive.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { isProcessAlive, readProcStat } from '../adapters/vmm/procfs.ts';
import type { Logger } from './logger.ts';

export const LOCK_FILE = 'worker.lock';
const HAS_PROCFS = readProcStat(process.pid) !== null;

interface LockRecord {
  pid: number;
  /** /proc/<pid>/stat start time: with the pid it names one process for good. */
  start_time: string | null;
  /** Null in a lock that does not say (a bare pid). */
  worker_id: string | null;
  acquired_at: string;
}

export interface WorkerLock {
  readonly path: string;
  /** Removes the lock if it is still this process's. Safe to call more than once. */
  release(): Promise<void>;
}

/** The start was refused: another live process holds the state dir. */
export class WorkerLockHeld extends Error {
  constructor(
    message: string,
    readonly holderPid: number,
  ) {
    super(message);
    this.name = 'WorkerLockHeld';
  }
}

export async function acquireWorkerLock(stateDir: string, workerId: string, log?: Logger): Promise<WorkerLock> {
  const dir = resolve(stateDir);
  const path = join(dir, LOCK_FILE);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const record: LockRecord = {
    pid: process.pid,
    start_time: readProcStat(process.pid)?.startTime ?? null,
    worker_id: workerId,
    acquired_at: new Date().toISOString(),
  };
  const content = `${JSON.stringify(record)}\n`;
  // A few rounds: each one either takes the lock, finds it live, or removes a stale one and retries.
  for (let attempt = 0; attempt < 5; attempt++) {
    if (await createExclusive(path, content)) return heldLock(path, content);
    const holder = await readHolder(path);
    if (holder === 'gone') continue; // released between our try and our look
    if (holder && isAlive(holder)) throw held(holder, workerId, dir);
    if (await removeStale(path)) {
      log?.warn(
        { lock: path, stale_pid: holder?.pid ?? null, stale_worker: holder?.worker_id ?? null },
        'took over a stale worker lock: the process that held it is gone',
      );
    }
  }
  throw new Error(`could not take the worker lock ${path}: it kept changing hands; is another worker starting here?`);
}

/** Writes `content` aside, then links it to `path`, which fails if `path` exists. */
async function createExclusive(path: string, content: string): Promise<boolean> {
  const aside = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
  await writeFile(aside, content, { mode: 0o600 });
  try {
    await link(aside, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(aside).catch(() => undefined);
  }
}

/** The holder on record; null when the file says nothing usable (a stale lock); 'gone' when there is no file. */
async function readHolder(path: string): Promise<LockRecord | null | 'gone'> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw err;
  }
  try {
    const parsed = JSON.parse(text) as Partial<LockRecord> | number;
    // A bare pid is accepted too: a lock written by hand, or by an older tool.
    const record = typeof parsed === 'number' ? { pid: parsed } : parsed;
    if (!Number.isInteger(record.pid) || (record.pid as number) <= 0) return null;
    return {
      pid: record.pid as number,
      start_time: typeof record.start_time === 'string' ? record.start_time : null,
      worker_id: typeof record.worker_id === 'string' ? record.worker_id : null,
      acquired_at: typeof record.acquired_at === 'string' ? record.acquired_at : '',
    };
  } catch {
    return null;
  }
}

function isAlive(holder: LockRecord): boolean {
  if (HAS_PROCFS) return isProcessAlive(holder.pid, holder.start_time ?? undefined);
  try {
    process.kill(holder.pid, 0); // no /proc (not Linux): the pid alone
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Moves the stale lock out of the way. Two starters may both find it stale: the lock is renamed to
 * a private name first and checked there, so that neither removes a lock the other just took.
 */
async function removeStale(path: string): Promise<boolean> {
  const aside = `${path}.stale.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    await rename(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false; // someone else moved it
    throw err;
  }
  const moved = await readHolder(aside);
  if (moved !== 'gone' && moved !== null && isAlive(moved)) {
    // Not the stale lock we looked at but a live one taken meanwhile: put it back.
    await link(aside, path).catch(() => undefined);
    await unlink(aside).catch(() => undefined);
    return false;
  }
  await unlink(aside).catch(() => undefined);
  return true;
}

function held(holder: LockRecord, workerId: string, dir: string): WorkerLockHeld {
  const who = holder.pid === process.pid ? `pid ${holder.pid}, this very process` : `pid ${holder.pid}`;
  if (holder.worker_id === workerId) {
    return new WorkerLockHeld(
      `worker ${JSON.stringify(workerId)} is already running on this host (${who}, state dir ${dir}); two processes with one worker id would manage each other's VMs: stop that one first, or give this one another worker.id`,
      holder.pid,
    );
  }
  const other = holder.worker_id === null ? '' : `, worker ${JSON.stringify(holder.worker_id)}`;
  return new WorkerLockHeld(
    `state dir ${dir} is in use by another worker process (${who}${other}); workers must not share one: leave worker.drivers.state_dir unset (each worker then uses .aetherium/workers/<its id>) or give each worker its own`,
    holder.pid,
  );
}

function heldLock(path: string, content: string): WorkerLock {
  let released = false;
  return {
    path,
    async release() {
      if (released) return;
      released = true;
      // Only our own lock: if it was taken over (we looked dead, e.g. a frozen process), it is not ours to remove.
      const now = await readFile(path, 'utf8').catch(() => null);
      if (now === content) await unlink(path).catch(() => undefined);
    },
  };
}
