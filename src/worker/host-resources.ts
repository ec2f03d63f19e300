/** What this host has, and what it uses right now, read from the kernel through Node's os module. */
import { mkdirSync, statfsSync } from 'node:fs';
import os from 'node:os';
import type { Vm, WorkerResources } from '../domain/index.ts';

export interface ConfiguredResources {
  cpu_cores: number;
  memory_mb: number;
  disk_gb: number;
  max_vms: number;
}

/** Configured values win; a 0 means "take it from the host". */
export function detectResources(configured: ConfiguredResources, stateDir: string): WorkerResources {
  mkdirSync(stateDir, { recursive: true });
  const disk = statfsSync(stateDir);
  return {
    cpu_cores: configured.cpu_cores || os.cpus().length,
    memory_mb: configured.memory_mb || Math.floor(os.totalmem() / 1024 / 1024),
    disk_gb: configured.disk_gb || Math.floor((disk.blocks * disk.bsize) / 1024 ** 3),
    max_vms: configured.max_vms,
  };
}

export interface HostUsage {
  cpu_usage: number;
  memory_usage: number;
  disk_usage: number;
}

/** Samples CPU use between two calls (percent of all cores), memory and disk use in percent. */
export class UsageSampler {
  private last = cpuTimes();

  constructor(private readonly stateDir: string) {}

  sample(): HostUsage {
    const now = cpuTimes();
    const busy = now.busy - this.last.busy;
    const total = now.total - this.last.total;
    this.last = now;
    const disk = statfsSync(this.stateDir);
    return {
      cpu_usage: percent(total > 0 ? busy / total : 0),
      memory_usage: percent(1 - os.freemem() / os.totalmem()),
      disk_usage: percent(disk.blocks > 0 ? 1 - disk.bavail / disk.blocks : 0),
    };
  }
}

function cpuTimes(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const cpu of os.cpus()) {
    const t = cpu.times;
    const sum = t.user + t.nice + t.sys + t.idle + t.irq;
    total += sum;
    busy += sum - t.idle;
  }
  return { busy, total };
}

function percent(fraction: number): number {
  return Math.round(Math.min(1, Math.max(0, fraction)) * 10_000) / 100;
}

/**
 * The host's own word on a create: the scheduler's ledger says the VM fits, but the host may have
 * less memory available than it advertised (other tenants, a leak). Then the worker refuses and the
 * VM is placed elsewhere, rather than boot into an out-of-memory kill.
 */
export function hostAdmission(vm: Pick<Vm, 'memory_mb'>): string | null {
  const availableMb = Math.floor(os.freemem() / 1024 / 1024);
  return availableMb < vm.memory_mb
    ? `the host has ${availableMb} MiB of memory available and the VM needs ${vm.memory_mb} MiB`
    : null;
}
