/**
 * Finding a driver's VM processes on the host by what marks them (a path of the driver's state dir
 * on the command line or in the environment), whether or not any record still names them: what
 * recover() kills when no VM owns them, and what a failed boot sweeps so that nothing is left.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { isAbsolute, relative, sep } from 'node:path';
import { isProcessAlive, readCmdline, readProcStat, waitForExit } from './procfs.ts';

export interface HostProcess {
  pid: number;
  startTime: string;
  argv: string[];
}

/** A VM's process, as found on the host. */
export interface VmProcess extends HostProcess {
  vmId: string;
}

/** Every live process for which `match` names a VM id (zombies and kernel threads are skipped). */
export function findVmProcesses(match: (argv: string[], pid: number) => string | null): VmProcess[] {
  const out: VmProcess[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const argv = readCmdline(pid);
    if (!argv || argv.length === 0) continue;
    const vmId = match(argv, pid);
    if (vmId === null) continue;
    const stat = readProcStat(pid);
    if (!stat || stat.state === 'Z' || stat.state === 'X') continue;
    out.push({ pid, startTime: stat.startTime, argv, vmId });
  }
  return out;
}

/** The process's environment (readable for the agent's own user and for root), or null. */
export function readEnviron(pid: number): Map<string, string> | null {
  let raw: string;
  try {
    raw = readFileSync(`/proc/${pid}/environ`, 'utf8');
  } catch {
    return null;
  }
  const env = new Map<string, string>();
  for (const entry of raw.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) env.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  return env;
}

/** `<stateDir>/<id>` or `<stateDir>/<id>/<name>` → id; anything else → null. */
export function vmIdOfPath(stateDir: string, path: string, name?: string): string | null {
  if (!isAbsolute(path)) return null;
  const rel = relative(stateDir, path);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return null;
  const parts = rel.split(sep);
  if (name === undefined ? parts.length !== 1 : parts.length !== 2 || parts[1] !== name) return null;
  const id = parts[0] as string;
  return /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(id) ? id : null;
}

/** SIGKILLs each process that is still the one found (pid and start time), and waits for it to go. */
export async function killHostProcesses(procs: readonly HostProcess[], timeoutMs = 5_000): Promise<void> {
  for (const p of procs) {
    if (!isProcessAlive(p.pid, p.startTime)) continue;
    try {
      // A process leading its own group (started detached) goes with its group: a child it forked
      // a moment ago still carries its command line until it execs, and would outlive it.
      if (readProcStat(p.pid)?.pgrp === p.pid) process.kill(-p.pid, 'SIGKILL');
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  await Promise.all(procs.map((p) => waitForExit(p.pid, timeoutMs, p.startTime)));
}
