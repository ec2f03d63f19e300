/**
 * CPU and memory of the processes a phase loads, read from /proc: the control plane, this process
 * (the load generator, and the workers when they run in it), and the engines (Postgres with its
 * backends, Redis).
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { Engines } from './control-plane.ts';

export interface PhaseUsage {
  seconds: number;
  /** The control plane's CPU, percent of one core. */
  cpu_percent: number;
  peak_rss_mb: number;
  rss_mb: number;
  /** This process's CPU: the load generator, and the workers when they run in it. */
  suite_cpu_percent: number;
  postgres_cpu_percent: number;
  redis_cpu_percent: number;
}

export function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN; // the process is gone
  }
}

export function rssMb(pid: number): number {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('VmRSS:'));
    return line ? Math.round(Number(line.split(/\s+/)[1]) / 1024) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

interface ProcInfo {
  pid: number;
  ppid: number;
  comm: string;
  cpu: number;
}

function processes(): ProcInfo[] {
  const list: ProcInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      list.push({
        pid: Number(entry),
        ppid: Number(fields[1]),
        comm,
        cpu: (Number(fields[11]) + Number(fields[12])) / 100,
      });
    } catch {
      // gone since the listing
    }
  }
  return list;
}

/**
 * CPU seconds so far of each engine this suite started, by pid: Postgres (the postmaster and its
 * backends) and Redis, found as children of this process listening on their ports. A backend
 * that exits during a phase takes its CPU with it: a slight undercount.
 */
function engineCpu(engines: Engines): { postgres: Map<number, number>; redis: Map<number, number> } {
  const all = processes();
  const cmdline = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      return [];
    }
  };
  const mine = all.filter((p) => p.ppid === process.pid);
  const postmaster = mine.find((p) => p.comm === 'postgres' && cmdline(p.pid).includes(String(engines.postgres.port)));
  const redis = mine.find(
    (p) => p.comm.startsWith('redis-server') && cmdline(p.pid).some((a) => a.includes(String(engines.redis.port))),
  );
  const postgres = new Map<number, number>();
  if (postmaster) {
    postgres.set(postmaster.pid, postmaster.cpu);
    for (const p of all) if (p.ppid === postmaster.pid) postgres.set(p.pid, p.cpu);
  }
  return { postgres, redis: new Map(redis ? [[redis.pid, redis.cpu]] : []) };
}

function cpuSince(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, cpu] of after) total += cpu - (before.get(pid) ?? 0);
  return total;
}

/**
 * The CPU share (percent of one core) and peak RSS of a process over a phase, and beside it the
 * CPU of this process (the load generator and any in-process workers) and, given the engines,
 * of Postgres and Redis.
 */
export class ProcessSampler {
  private readonly cpuAtStart: number;
  private readonly selfAtStart = process.cpuUsage();
  private readonly enginesAtStart: ReturnType<typeof engineCpu> | null;
  private readonly startedAt = performance.now();
  private peak: number;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pid: number,
    private readonly engines?: Engines,
  ) {
    this.enginesAtStart = engines ? engineCpu(engines) : null;
    this.cpuAtStart = cpuSeconds(pid);
    this.peak = rssMb(pid);
    this.timer = setInterval(() => {
      const rss = rssMb(pid);
      if (Number.isFinite(rss)) this.peak = Math.max(this.peak, rss);
    }, 250);
    this.timer.unref();
  }

  stop(): PhaseUsage {
    clearInterval(this.timer);
    const seconds = (performance.now() - this.startedAt) / 1000;
    const rss = rssMb(this.pid);
    const self = process.cpuUsage(this.selfAtStart);
    const percent = (cpu: number) => Math.round((cpu / seconds) * 1000) / 10;
    const engines = this.engines && this.enginesAtStart ? engineCpu(this.engines) : null;
    return {
      postgres_cpu_percent: engines ? percent(cpuSince(this.enginesAtStart!.postgres, engines.postgres)) : Number.NaN,
      redis_cpu_percent: engines ? percent(cpuSince(this.enginesAtStart!.redis, engines.redis)) : Number.NaN,
      cpu_percent: percent(cpuSeconds(this.pid) - this.cpuAtStart),
      suite_cpu_percent: percent((self.user + self.system) / 1e6),
      peak_rss_mb: Math.max(this.peak, rss),
      rss_mb: rss,
      seconds,
    };
  }
}
