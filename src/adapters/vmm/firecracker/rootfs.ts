/**
 * Each VM boots from its own copy of the base root filesystem image. `cp --reflink=auto` makes the
 * copy a copy-on-write clone (instant, no extra space) on filesystems that support it (btrfs, XFS
 * with reflink, bcachefs) and a plain copy elsewhere; `--sparse=always` keeps holes as holes.
 */
import { spawn } from 'node:child_process';
import { access, chown, constants, stat } from 'node:fs/promises';
import { AetheriumError } from '../../../domain/index.ts';

export async function copyRootfs(
  source: string,
  destination: string,
  owner?: { uid: number; gid: number },
): Promise<void> {
  const info = await stat(source).catch(() => null);
  if (!info?.isFile()) {
    throw new AetheriumError(
      'driver_unavailable',
      `the root filesystem image ${source} does not exist or is not a file`,
    );
  }
  await access(source, constants.R_OK);
  const result = await run('cp', ['--reflink=auto', '--sparse=always', '--', source, destination]);
  if (result.code !== 0) {
    throw new AetheriumError(
      'driver_failed',
      `copying the root filesystem ${source} to ${destination} failed: ${result.stderr.trim() || `exit code ${String(result.code)}`}`,
    );
  }
  if (owner) await chown(destination, owner.uid, owner.gid);
}

function run(file: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    let stderr = '';
    const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 4_000) stderr += chunk.toString('utf8');
    });
    child.on('error', (err) => resolve({ code: null, stderr: err.message }));
    child.on('close', (code) => resolve({ code, stderr }));
  });
}
