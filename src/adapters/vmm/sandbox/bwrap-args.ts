/**
 * The bubblewrap command line of a sandbox's init: every namespace unshared, the VM's own writable
 * root directory as `/`, the host's programs and libraries read-only, a fresh /proc, /dev, /tmp and
 * /run, the VM name as hostname, no capabilities. Kept pure (the host layout is an input) so that
 * it can be read and tested on its own.
 */
import { lstatSync, readlinkSync } from 'node:fs';

/** fd on which bwrap writes `{"child-pid": …}` (the host pid of the sandbox's pid 1). */
export const INFO_FD = 3;
/** fd on which the init writes "ready" once it runs inside the finished sandbox. */
export const READY_FD = 4;
/**
 * fd of the VM's `status.json`, on which bwrap (>= 0.5, `--json-status-fd`) writes the exit status
 * of the sandbox's init when it ends: how a worker that restarted since still learns why it died.
 * bwrap does not pass the fd on into the sandbox.
 */
export const STATUS_FD = 5;

/**
 * The sandbox's long-lived process. bwrap itself is pid 1 (it reaps orphans); this runs as pid 2,
 * says it is ready (the mounts are done by then), closes the pipe and sleeps for ever.
 */
export const INIT_SCRIPT = `echo ready >&${READY_FD}; exec ${READY_FD}>&-; exec sleep infinity`;

export type HostEntry = { name: string; kind: 'symlink'; target: string } | { name: string; kind: 'dir' };

export interface HostLayout {
  /** Top-level host entries mirrored into every sandbox besides /usr: symlinks recreated (rootfs.ts), directories bound read-only. */
  entries: HostEntry[];
}

const TOP_LEVEL = ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32'];

/** /etc entries bound read-only when the host has them: program alternatives and the dynamic linker's cache. */
export const ETC_BINDS = [
  '/etc/alternatives',
  '/etc/ld.so.cache',
  '/etc/ld.so.conf',
  '/etc/ld.so.conf.d',
  '/etc/localtime',
];

export function probeHostLayout(): HostLayout {
  const entries: HostEntry[] = [];
  for (const name of TOP_LEVEL) {
    try {
      const st = lstatSync(`/${name}`);
      if (st.isSymbolicLink()) entries.push({ name, kind: 'symlink', target: readlinkSync(`/${name}`) });
      else if (st.isDirectory()) entries.push({ name, kind: 'dir' });
    } catch {
      // not on this host
    }
  }
  return { entries };
}

/** A valid hostname from a VM name: letters, digits, '-' and '.', at most 63 characters. */
export function toHostname(name: string): string {
  const cleaned = name
    .replace(/[^A-Za-z0-9.-]+/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '')
    .slice(0, 63)
    .replace(/[-.]+$/g, '');
  return cleaned === '' ? 'vm' : cleaned;
}

export interface BwrapArgsInput {
  /** Host directory that becomes the sandbox's `/` (writable). */
  rootDir: string;
  hostname: string;
  layout: HostLayout;
  /** bwrap >= 0.5 knows --perms (gives /tmp mode 1777); older ones get a root-only /tmp. */
  perms: boolean;
  /** Write the init's exit status on STATUS_FD (bwrap >= 0.5). */
  jsonStatus?: boolean;
}

export function buildBwrapArgs({ rootDir, hostname, layout, perms, jsonStatus }: BwrapArgsInput): string[] {
  const args = [
    '--unshare-all', // pid, mount, net (loopback only), ipc, uts, cgroup; no user namespace when run as root
    '--bind',
    rootDir,
    '/',
    '--ro-bind',
    '/usr',
    '/usr',
  ];
  for (const entry of layout.entries) {
    // Symlinks (/bin -> usr/bin on merged-/usr hosts) are made in the root directory itself by
    // linkHostEntries(): bwrap 0.8's --symlink fails when the link is already there from a former boot.
    if (entry.kind === 'dir') args.push('--ro-bind', `/${entry.name}`, `/${entry.name}`);
  }
  for (const path of ETC_BINDS) args.push('--ro-bind-try', path, path);
  args.push(
    '--proc',
    '/proc',
    '--dev',
    '/dev',
    ...(perms ? ['--perms', '1777'] : []),
    '--tmpfs',
    '/tmp',
    '--tmpfs',
    '/run',
    '--hostname',
    hostname,
    '--cap-drop',
    'ALL',
    '--new-session',
    '--chdir',
    '/',
    '--info-fd',
    String(INFO_FD),
    ...(jsonStatus ? ['--json-status-fd', String(STATUS_FD)] : []),
    // Deliberately no --die-with-parent: the sandbox outlives the agent, recover() reattaches.
    '--',
    '/bin/sh',
    '-c',
    INIT_SCRIPT,
  );
  return args;
}

/** "bubblewrap 0.8.0" → [0, 8, 0]. */
export function parseBwrapVersion(text: string): [number, number, number] | null {
  const match = /(\d+)\.(\d+)\.(\d+)/.exec(text);
  return match ? [Number(match[1]), Number(match[2]), Number(match[3])] : null;
}
