/**
 * cgroup v1 helpers: per-VM groups for the `memory`, `cpu` and `pids` controllers, created under the
 * agent's own group in each hierarchy (`<mount>/<own path>/aetherium-<vmId>`), so that an agent that
 * was itself put in a nested group (a container, a systemd slice) stays inside it.
 *
 * A process cannot be placed in a cgroup by its parent before it execs, so a command joins its
 * groups through a tiny shell wrapper (`joinCgroupsArgv`): the shell writes its own pid to each
 * `cgroup.procs`, then execs the real program, which inherits the membership, as do its children.
 *
 * cgroup v2 is not handled here: on a pure v2 host (or when nothing is writable) the drivers run
 * without limits and say so in `info.warnings`.
 */
import { accessSync, constants as fsConstants, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { mkdir, readFile, readdir, rmdir, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { sleep } from './procfs.ts';

export const CONTROLLERS = ['memory', 'cpu', 'pids'] as const;
export type Controller = (typeof CONTROLLERS)[number];

/** Absolute directories of one VM's groups, by controller (only the controllers in use). */
export type CgroupSet = Partial<Record<Controller, string>>;

export interface CgroupLimits {
  memory_mb: number;
  vcpus: number;
  pids_max: number;
}

export interface CgroupHost {
  /** Per usable controller: the directory under which per-VM groups are made (the agent's own group). */
  parents: CgroupSet;
  /** What is not available, in words for operators. */
  warnings: string[];
}

const LIMIT_FILE: Record<Controller, string> = {
  memory: 'memory.limit_in_bytes',
  cpu: 'cpu.cfs_quota_us',
  pids: 'pids.max',
};

interface MountInfo {
  root: string;
  mountPoint: string;
}

/** Finds writable v1 hierarchies for memory/cpu/pids and the agent's place in each. Synchronous. */
export function detectCgroupsV1(procSelf = '/proc/self'): CgroupHost {
  const parents: CgroupSet = {};
  const warnings: string[] = [];
  let ownPaths: Map<string, string>;
  let mounts: Map<string, MountInfo>;
  try {
    ownPaths = parseProcCgroup(readFileSync(`${procSelf}/cgroup`, 'utf8'));
    mounts = parseCgroupMounts(readFileSync(`${procSelf}/mountinfo`, 'utf8'));
  } catch (err) {
    return {
      parents,
      warnings: [
        `cgroups: cannot read ${procSelf}/cgroup or mountinfo (${(err as Error).message}); no resource limits`,
      ],
    };
  }
  for (const controller of CONTROLLERS) {
    const mount = mounts.get(controller);
    const own = ownPaths.get(controller);
    if (!mount || own === undefined) {
      warnings.push(
        `cgroups: no cgroup v1 '${controller}' hierarchy on this host; ${describe(controller)} is not limited`,
      );
      continue;
    }
    let rel = posix.relative(mount.root, own);
    if (rel.startsWith('..')) rel = ''; // our group is outside the mounted subtree: use the mount's root
    const parent = join(mount.mountPoint, rel);
    const probe = join(parent, `aetherium-probe-${process.pid}-${randomBytes(3).toString('hex')}`);
    try {
      mkdirSync(probe);
      try {
        accessSync(join(probe, LIMIT_FILE[controller]), fsConstants.W_OK);
        accessSync(join(probe, 'cgroup.procs'), fsConstants.W_OK);
      } finally {
        rmdirSync(probe);
      }
      parents[controller] = parent;
    } catch (err) {
      warnings.push(
        `cgroups: cannot create groups under ${parent} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); ${describe(controller)} is not limited`,
      );
    }
  }
  return { parents, warnings };
}

function describe(controller: Controller): string {
  return controller === 'memory' ? 'memory' : controller === 'cpu' ? 'CPU time' : 'the number of processes';
}

/** `/proc/self/cgroup` → controller name → path (v1 lines only; `name=` hierarchies are skipped). */
export function parseProcCgroup(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const controllers = line.slice(first + 1, second);
    const path = line.slice(second + 1);
    if (controllers === '') continue; // the v2 line
    for (const c of controllers.split(',')) out.set(c, path);
  }
  return out;
}

/** `/proc/self/mountinfo` → v1 controller name → where its hierarchy is mounted. */
export function parseCgroupMounts(text: string): Map<string, MountInfo> {
  const out = new Map<string, MountInfo>();
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    if (right[0] !== 'cgroup') continue;
    const root = left[3];
    const mountPoint = left[4];
    if (root === undefined || mountPoint === undefined) continue;
    for (const opt of (right[2] ?? '').split(',')) {
      if (!out.has(opt)) out.set(opt, { root: unescapeMount(root), mountPoint: unescapeMount(mountPoint) });
    }
  }
  return out;
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * Where a VM's groups go (nothing is created yet): `aetherium-<scope>-<vmId>`, where `scope` tells
 * apart drivers with different state dirs on one host, so that they never share (or sweep) a group.
 */
export function vmCgroupPaths(host: CgroupHost, scope: string, vmId: string): CgroupSet {
  const out: CgroupSet = {};
  for (const controller of CONTROLLERS) {
    const parent = host.parents[controller];
    if (parent) out[controller] = join(parent, `aetherium-${scope}-${vmId}`);
  }
  return out;
}

/** A short, stable name for a state directory, for `vmCgroupPaths`. */
export function cgroupScope(stateDir: string): string {
  return createHash('sha256').update(stateDir).digest('hex').slice(0, 8);
}

/** Creates (or re-creates) the VM's groups and writes their limits. Returns warnings for what failed. */
export async function applyCgroupLimits(groups: CgroupSet, limits: CgroupLimits): Promise<string[]> {
  const warnings: string[] = [];
  for (const controller of CONTROLLERS) {
    const dir = groups[controller];
    if (!dir) continue;
    await mkdir(dir, { recursive: true });
    try {
      if (controller === 'memory') {
        const bytes = String(limits.memory_mb * 1024 * 1024);
        await writeFile(join(dir, 'memory.limit_in_bytes'), bytes);
        // Without this the limit could be dodged by swapping (a no-op on a host without swap).
        await writeFile(join(dir, 'memory.memsw.limit_in_bytes'), bytes).catch(() => {});
      } else if (controller === 'cpu') {
        const period = Number((await readFile(join(dir, 'cpu.cfs_period_us'), 'utf8')).trim()) || 100_000;
        const quota = Math.max(1_000, Math.round(limits.vcpus * period));
        await writeFile(join(dir, 'cpu.cfs_quota_us'), String(quota));
      } else {
        await writeFile(join(dir, 'pids.max'), String(limits.pids_max));
      }
    } catch (err) {
      warnings.push(`cgroups: could not set the ${controller} limit in ${dir}: ${(err as Error).message}`);
    }
  }
  return warnings;
}

export function procsFiles(groups: CgroupSet): string[] {
  return CONTROLLERS.flatMap((c) => (groups[c] ? [join(groups[c], 'cgroup.procs')] : []));
}

/**
 * `sh -c '<join>; exec "$@"'`: joins every group of `procs`, then execs `file args`. Exit code 125
 * (and the shell's message on stderr) when a group cannot be joined. With no groups, runs `file` as is.
 */
export function joinCgroupsArgv(
  sh: string,
  procs: readonly string[],
  file: string,
  args: readonly string[],
): { file: string; args: string[] } {
  if (procs.length === 0) return { file, args: [...args] };
  // `unset PWD`: sh exports its own (host) working directory as PWD, which means nothing to the command.
  const script = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; unset PWD; exec "$@"';
  return { file: sh, args: ['-c', script, 'aetherium-cgroup-join', ...procs, '--', file, ...args] };
}

/** Every pid in the group and its descendants. */
export async function cgroupPids(dir: string): Promise<number[]> {
  const pids: number[] = [];
  let text = '';
  try {
    text = await readFile(join(dir, 'cgroup.procs'), 'utf8');
  } catch {
    return pids;
  }
  for (const line of text.split('\n')) if (line.trim() !== '') pids.push(Number(line));
  for (const child of await subgroups(dir)) pids.push(...(await cgroupPids(child)));
  return pids;
}

/** SIGKILLs every process in the group tree until it is empty. Returns false if some survived the deadline. */
export async function killCgroupTree(dir: string, timeoutMs = 5_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pids = await cgroupPids(dir);
    if (pids.length === 0) return true;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (Date.now() >= deadline) return false;
    await sleep(15);
  }
}

/** Removes the (empty) child groups of `dir`, keeping `dir` itself. */
export async function removeSubgroups(dir: string): Promise<void> {
  for (const child of await subgroups(dir)) await removeCgroupTree(child);
}

/** Removes the group and its descendants, deepest first. A missing group is fine. */
export async function removeCgroupTree(dir: string): Promise<void> {
  for (const child of await subgroups(dir)) await removeCgroupTree(child);
  for (let attempt = 0; ; attempt++) {
    try {
      await rmdir(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || attempt >= 50) throw err;
      await sleep(20); // the last processes are still being torn down
    }
  }
}

async function subgroups(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => join(dir, e.name));
  } catch {
    return [];
  }
}

/**
 * How many processes of the group the kernel's OOM killer has killed (`oom_kill` in cgroup v1's
 * memory.oom_control, kernel 4.13+), or null when the group or the counter is not there.
 * Synchronous: the exit watcher samples it on every poll.
 */
export function readOomKills(memoryDir: string | undefined): number | null {
  if (!memoryDir) return null;
  let text: string;
  try {
    text = readFileSync(join(memoryDir, 'memory.oom_control'), 'utf8');
  } catch {
    return null;
  }
  const match = /^oom_kill (\d+)$/m.exec(text);
  return match ? Number(match[1]) : null;
}

/**
 * The VM groups of one scope present under the host's parents (`aetherium-<scope>-<vmId>`), by VM
 * id: what recover() looks at to find groups whose VM no longer exists.
 */
export async function listVmCgroups(host: CgroupHost, scope: string): Promise<Map<string, CgroupSet>> {
  const out = new Map<string, CgroupSet>();
  const prefix = `aetherium-${scope}-`;
  for (const controller of CONTROLLERS) {
    const parent = host.parents[controller];
    if (!parent) continue;
    for (const dir of await subgroups(parent)) {
      const name = dir.slice(parent.length + 1);
      if (!name.startsWith(prefix)) continue;
      const id = name.slice(prefix.length);
      const set = out.get(id) ?? {};
      set[controller] = dir;
      out.set(id, set);
    }
  }
  return out;
}

/**
 * A memory group's OOM-kill count over time, to tell whether a death was the OOM killer's. A
 * sandbox's init stays alive for some 100 ms after the OOM killer took it (its pid namespace is
 * torn down first), so a poll in between already counts the kill: the death is compared with the
 * count of at least `lagMs` before it. A command OOM-killed longer ago does not count against it.
 */
export class OomKillHistory {
  private samples: { at: number; kills: number }[] = [];

  constructor(
    private readonly memoryDir: string | undefined,
    private readonly lagMs = 2_000,
  ) {
    const kills = readOomKills(memoryDir);
    if (kills !== null) this.samples.push({ at: Number.NEGATIVE_INFINITY, kills });
  }

  sample(now = Date.now()): void {
    const kills = readOomKills(this.memoryDir);
    if (kills === null) return;
    this.samples.push({ at: now, kills });
    // Keep the newest sample older than the lag, and the ones after it.
    let oldEnough = 0;
    for (let i = 0; i < this.samples.length; i++)
      if ((this.samples[i] as { at: number }).at <= now - this.lagMs) oldEnough = i;
    this.samples = this.samples.slice(oldEnough);
  }

  /** The group counted an OOM kill in the last `lagMs` (or since it was first read, if that is more recent). */
  rose(now = Date.now()): boolean {
    const kills = readOomKills(this.memoryDir);
    let baseline: number | null = null;
    for (const s of this.samples) if (s.at <= now - this.lagMs) baseline = s.kills;
    baseline ??= this.samples[0]?.kills ?? null;
    return kills !== null && baseline !== null && kills > baseline;
  }
}
