/**
 * The optional jailer: Firecracker's own launcher that chroots, drops to an unprivileged uid/gid,
 * puts the VMM in cgroups and (optionally) a network namespace, then execs firecracker in the same
 * process (no --daemonize, no --new-pid-ns: the pid we spawn is the VMM's pid).
 *
 *   jailer --id <jail-id> --exec-file <firecracker> --uid <uid> --gid <gid>
 *          --chroot-base-dir <base> [--cgroup-version 1|2] [--netns <path>]
 *          -- --api-sock /run/firecracker.socket
 *
 * The jail is `<base>/<basename(firecracker)>/<jail-id>/root`; every path Firecracker is given
 * (API socket, kernel, rootfs, vsock socket) is a path inside it, which on the host is that path
 * under the jail root.
 */
import { createHash } from 'node:crypto';
import { basename, join } from 'node:path';

export interface JailerOptions {
  /** Path of the `jailer` binary (default: `jailer` on PATH). */
  binary?: string;
  uid: number;
  gid: number;
  /** Default /srv/jailer (the jailer's own default). */
  chrootBaseDir?: string;
  cgroupVersion?: 1 | 2;
  /** Path of a network namespace to join (e.g. /var/run/netns/<name>). */
  netns?: string;
  /** More arguments for the jailer, placed before `--`. */
  extraArgs?: string[];
}

export const DEFAULT_CHROOT_BASE = '/srv/jailer';
/** Paths inside the jail (Firecracker sees these). */
export const JAIL_API_SOCKET = '/run/firecracker.socket';
export const JAIL_KERNEL = '/vmlinux';
export const JAIL_ROOTFS = '/rootfs.ext4';
export const JAIL_VSOCK = '/vsock.sock';

const JAIL_ID = /^[A-Za-z0-9-]{1,64}$/;

/** The jailer accepts ids of letters, digits and '-', at most 64: VM ids that are not are mapped (stably) to one that is. */
export function jailId(vmId: string): string {
  if (JAIL_ID.test(vmId)) return vmId;
  const hash = createHash('sha256').update(vmId).digest('hex').slice(0, 12);
  const cleaned = vmId.replace(/[^A-Za-z0-9-]/g, '-').slice(0, 64 - hash.length - 1);
  return `${cleaned}-${hash}`;
}

export interface JailLayout {
  id: string;
  /** `<base>/<exec name>/<id>`: removed as a whole on delete. */
  jailDir: string;
  /** `<jailDir>/root`: the chroot. */
  rootDir: string;
}

export function jailLayout(
  vmId: string,
  firecrackerBinary: string,
  chrootBaseDir: string = DEFAULT_CHROOT_BASE,
): JailLayout {
  const id = jailId(vmId);
  const jailDir = join(chrootBaseDir, basename(firecrackerBinary), id);
  return { id, jailDir, rootDir: join(jailDir, 'root') };
}

/** Host path of a path inside the jail. */
export function hostPathInJail(layout: JailLayout, jailPath: string): string {
  return join(layout.rootDir, jailPath);
}

export function buildJailerArgs(options: {
  vmId: string;
  firecrackerBinary: string;
  jailer: JailerOptions;
  firecrackerArgs: string[];
}): string[] {
  const { jailer } = options;
  for (const [name, value] of [
    ['uid', jailer.uid],
    ['gid', jailer.gid],
  ] as const) {
    if (!Number.isInteger(value) || value < 0)
      throw new Error(`jailer ${name} must be a non-negative integer, got ${String(value)}`);
  }
  const args = [
    '--id',
    jailId(options.vmId),
    '--exec-file',
    options.firecrackerBinary,
    '--uid',
    String(jailer.uid),
    '--gid',
    String(jailer.gid),
    '--chroot-base-dir',
    jailer.chrootBaseDir ?? DEFAULT_CHROOT_BASE,
  ];
  if (jailer.cgroupVersion !== undefined) args.push('--cgroup-version', String(jailer.cgroupVersion));
  if (jailer.netns) args.push('--netns', jailer.netns);
  args.push(...(jailer.extraArgs ?? []));
  args.push('--', ...options.firecrackerArgs);
  return args;
}

/** Where the jailer puts the VMM's cgroups (both versions), to remove them on delete. */
export function jailCgroupDirs(firecrackerBinary: string, id: string): string[] {
  const exec = basename(firecrackerBinary);
  const dirs = [join('/sys/fs/cgroup', exec, id)];
  for (const controller of ['cpu', 'cpuset', 'cpuacct', 'memory', 'pids'])
    dirs.push(join('/sys/fs/cgroup', controller, exec, id));
  return dirs;
}
