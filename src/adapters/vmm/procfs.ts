/** Small readers for /proc/<pid>: liveness that ignores zombies, start time (against pid reuse), argv. */
import { readFileSync } from 'node:fs';

export interface ProcStat {
  state: string;
  ppid: number;
  /** The process group: a VM's init or VMM started detached leads its own. */
  pgrp: number;
  /** Field 22 of /proc/<pid>/stat: clock ticks since boot. With the pid it names one process for good. */
  startTime: string;
}

export function readProcStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) is in parentheses and may itself contain spaces or parentheses.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const ppid = fields[1];
  const pgrp = fields[2];
  const startTime = fields[19];
  if (state === undefined || ppid === undefined || startTime === undefined) return null;
  return { state, ppid: Number(ppid), pgrp: Number(pgrp), startTime };
}

/** Alive = exists and is neither a zombie nor dead. */
export function isProcessAlive(pid: number, startTime?: string): boolean {
  const stat = readProcStat(pid);
  if (!stat || stat.state === 'Z' || stat.state === 'X' || stat.state === 'x') return false;
  return startTime === undefined || stat.startTime === startTime;
}

export function readCmdline(pid: number): string[] | null {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (raw === '') return [];
    return raw.replace(/\0$/, '').split('\0');
  } catch {
    return null;
  }
}

/** Polls until the process is gone (or a zombie). Returns false when it is still alive at the deadline. */
export async function waitForExit(pid: number, timeoutMs: number, startTime?: string): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!isProcessAlive(pid, startTime)) return true;
    if (Date.now() >= deadline) return false;
    await sleep(15);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
