/**
 * What really ran on the hosts, seen from outside the system under test: every sandbox init a
 * worker launched, and which inits are alive at each moment.
 *
 * Launches: the workers get a `bwrap` first on their PATH that writes one line per sandbox init
 * (`--info-fd` in its arguments) and then becomes the real bwrap (same pid, so the driver sees
 * no difference). Before it does, it lists every live process that binds the same VM's root
 * directory on any host (hosts share one process table; only networks are per host): a second
 * init of a VM that still runs shows there. The sandbox driver runs bwrap with a clean
 * environment, so the log's path is written into the script itself.
 *
 * Live inits: a sampler reads /proc every few hundred ms and groups the bwrap processes binding
 * `<worker state dir>/sandbox/<vm id>/root` by VM (an init is an outer bwrap and its pid 1 child;
 * it counts once). A VM with two inits at once, or on two hosts at once, is recorded.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { readCmdline, readProcStat } from '../../src/adapters/vmm/procfs.ts';
import { findOnPath } from '../../src/adapters/vmm/which.ts';

export interface Launch {
  at: number;
  pid: number;
  /** The worker whose state dir holds the root (null: not one of ours). */
  host: string | null;
  vmId: string;
  /** Pids that bound the same VM's root when this init was launched (another live init, or a launch racing this one). */
  alongside: number[];
}

export interface LaunchRecorder {
  /** Put this directory first on the workers' PATH. */
  pathDir: string;
  /** Every launch so far; `hosts` maps a worker's state dir to its id. */
  read(hosts: Map<string, string>): Launch[];
}

const shim = (log: string, real: string) => `#!/bin/sh
# The fault suite's bwrap: one line per sandbox init launched, then the real bwrap (same pid).
case " $* " in
*" --info-fd "*)
  root=
  prev=
  for arg in "$@"; do
    if [ "$prev" = --bind ] && [ -z "$root" ]; then root=$arg; fi
    prev=$arg
  done
  vm=$(basename "$(dirname "$root")")
  others=$(grep -laP "^[^\\x00]*bwrap\\x00.*\\x00--bind\\x00[^\\x00]*/\\Q$vm\\E/root\\x00" /proc/[0-9]*/cmdline 2>/dev/null | grep -v "^/proc/$$/" | sed 's|^/proc/\\([0-9]*\\)/cmdline$|\\1|' | tr '\\n' ',')
  echo "$(date +%s%3N) $$ $root \${others:--}" >> '${log}'
  ;;
esac
exec '${real}' "$@"
`;

export function installLaunchRecorder(dir: string): LaunchRecorder {
  const real = findOnPath('bwrap');
  if (!real) throw new Error('the fault suite needs bubblewrap (`bwrap` on PATH) for the sandbox driver');
  const pathDir = join(dir, 'bin');
  const log = join(dir, 'launches.log');
  mkdirSync(pathDir, { recursive: true });
  writeFileSync(join(pathDir, 'bwrap'), shim(log, real));
  chmodSync(join(pathDir, 'bwrap'), 0o755);
  return {
    pathDir,
    read(hosts) {
      if (!existsSync(log)) return [];
      const launches: Launch[] = [];
      for (const line of readFileSync(log, 'utf8').split('\n')) {
        const [at, pid, root, others] = line.split(' ');
        if (!at || !pid || !root || !others) continue;
        launches.push({
          at: Number(at),
          pid: Number(pid),
          host: hostOf(root, hosts),
          vmId: basename(join(root, '..')),
          alongside: others === '-' ? [] : others.split(',').filter(Boolean).map(Number),
        });
      }
      return launches;
    },
  };
}

/** `<state dir>/sandbox/<vm>/root` → the worker owning that state dir. */
function hostOf(root: string, hosts: Map<string, string>): string | null {
  for (const [stateDir, worker] of hosts) if (root.startsWith(`${stateDir}/sandbox/`)) return worker;
  return null;
}

export interface LiveInit {
  vmId: string;
  host: string;
  pid: number;
}

export interface Overlap {
  at: number;
  vmId: string;
  inits: LiveInit[];
}

/** The sandbox inits alive right now under the given state dirs. */
export function liveInits(hosts: Map<string, string>): LiveInit[] {
  const found = new Map<number, { vmId: string; host: string; ppid: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const argv = readCmdline(pid);
    if (!argv || basename(argv[0] ?? '') !== 'bwrap') continue;
    const root = argv[argv.indexOf('--bind') + 1];
    if (!root?.endsWith('/root')) continue;
    const host = hostOf(root, hosts);
    const stat = readProcStat(pid);
    if (!host || !stat || stat.state === 'Z' || stat.state === 'X') continue;
    found.set(pid, { vmId: basename(join(root, '..')), host, ppid: stat.ppid });
  }
  const inits: LiveInit[] = [];
  for (const [pid, p] of found) {
    // pid 1 of a sandbox is the outer bwrap's child with the same arguments: one init, not two.
    if (found.get(p.ppid)?.vmId === p.vmId) continue;
    inits.push({ vmId: p.vmId, host: p.host, pid });
  }
  return inits;
}

/** Samples the live inits until stopped; keeps every moment a VM had more than one. */
export class InitSampler {
  readonly overlaps: Overlap[] = [];
  /** Every host each VM was seen alive on. */
  readonly seenOn = new Map<string, Set<string>>();
  samples = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly hosts: Map<string, string>) {}

  start(intervalMs = 300): void {
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  sample(): LiveInit[] {
    const inits = liveInits(this.hosts);
    this.samples++;
    const byVm = new Map<string, LiveInit[]>();
    for (const init of inits) {
      byVm.set(init.vmId, [...(byVm.get(init.vmId) ?? []), init]);
      const hosts = this.seenOn.get(init.vmId) ?? new Set<string>();
      hosts.add(init.host);
      this.seenOn.set(init.vmId, hosts);
    }
    for (const [vmId, list] of byVm) if (list.length > 1) this.overlaps.push({ at: Date.now(), vmId, inits: list });
    return inits;
  }
}
