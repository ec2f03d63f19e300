/**
 * A new sandbox's root directory: the skeleton bwrap mounts over (/usr, /proc, …) and the few /etc
 * files that belong to the VM rather than the host (users, hostname, hosts). Everything else a
 * command writes lands here too, on the host disk, and survives stop/start until the VM is deleted.
 */
import { chmod, lstat, mkdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { HostLayout } from './bwrap-args.ts';

const DIRS: Array<[string, number]> = [
  ['etc', 0o755],
  ['root', 0o700],
  ['home', 0o755],
  ['var', 0o755],
  ['var/tmp', 0o1777],
  ['tmp', 0o1777],
  ['run', 0o755],
  ['proc', 0o555],
  ['dev', 0o755],
  ['usr', 0o755],
  ['mnt', 0o755],
  ['opt', 0o755],
  ['srv', 0o755],
];

export async function prepareRootfs(rootDir: string, hostname: string): Promise<void> {
  await mkdir(rootDir, { recursive: true, mode: 0o755 });
  for (const [dir, mode] of DIRS) {
    const path = join(rootDir, dir);
    await mkdir(path, { recursive: true });
    await chmod(path, mode);
  }
  const etc = join(rootDir, 'etc');
  await writeFile(
    join(etc, 'passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n',
  );
  await writeFile(join(etc, 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  await writeFile(join(etc, 'hostname'), `${hostname}\n`);
  await writeFile(
    join(etc, 'hosts'),
    `127.0.0.1\tlocalhost\n127.0.1.1\t${hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`,
  );
  await writeFile(join(etc, 'nsswitch.conf'), 'passwd: files\ngroup: files\nshadow: files\nhosts: files\n');
  if (existsSync('/usr/lib/os-release') && !existsSync(join(etc, 'os-release'))) {
    await symlink('../usr/lib/os-release', join(etc, 'os-release'));
  }
}

/**
 * Before each boot: the host's top-level symlinks (/bin -> usr/bin, …) exist in the root directory,
 * pointing where the host's do. The root is writable from inside, so whatever a VM put in their
 * place is replaced.
 */
export async function linkHostEntries(rootDir: string, layout: HostLayout): Promise<void> {
  for (const entry of layout.entries) {
    if (entry.kind !== 'symlink') continue;
    const path = join(rootDir, entry.name);
    const current = await lstat(path).catch(() => null);
    if (current?.isSymbolicLink() && (await readlink(path)) === entry.target) continue;
    if (current) await rm(path, { recursive: true, force: true });
    await symlink(entry.target, path);
  }
}
