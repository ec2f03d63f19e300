/**
 * The guest image the qemu driver boots, built by image/build.sh from Debian packages. The script
 * is idempotent (it returns at once when manifest.json matches its inputs), so this always runs it.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { AetheriumError } from '../../../domain/index.ts';
import { packagePath } from '../../package-root.ts';

export const DEFAULT_IMAGE_DIR = '.aetherium/images/default';
export const BUILD_SCRIPT = packagePath('image', 'build.sh');

export interface GuestImageManifest {
  format: number;
  inputs_sha256: string;
  kernel: { package: string; version: string; release: string };
  busybox: { package: string; version: string };
  agent: { source_sha256: string; protocol_version: number };
  files: Record<string, { sha256: string; bytes: number }>;
  built_at: string;
}

export interface GuestImage {
  dir: string;
  kernel: string;
  initramfs: string;
  /** Base root disk (raw ext4); VMs get qcow2 overlays on top of it. */
  rootfs: string;
  manifest: GuestImageManifest;
}

const inflight = new Map<string, Promise<GuestImage>>();

export function ensureGuestImage(options: { dir?: string; log?: (line: string) => void } = {}): Promise<GuestImage> {
  const dir = resolve(options.dir ?? DEFAULT_IMAGE_DIR);
  let promise = inflight.get(dir);
  if (!promise) {
    promise = build(dir, options.log).finally(() => inflight.delete(dir));
    inflight.set(dir, promise);
  }
  return promise;
}

/** The image in `dir` as it is, without building (null when incomplete). */
export async function readGuestImage(dir: string): Promise<GuestImage | null> {
  const abs = resolve(dir);
  const image = {
    dir: abs,
    kernel: join(abs, 'vmlinux'),
    initramfs: join(abs, 'initramfs.cpio.gz'),
    rootfs: join(abs, 'rootfs.ext4'),
  };
  if (![image.kernel, image.initramfs, image.rootfs].every((f) => existsSync(f))) return null;
  try {
    const manifest = JSON.parse(await readFile(join(abs, 'manifest.json'), 'utf8')) as GuestImageManifest;
    return { ...image, manifest };
  } catch {
    return null;
  }
}

async function build(dir: string, log?: (line: string) => void): Promise<GuestImage> {
  const output = await new Promise<string>((resolvePromise, reject) => {
    const child = spawn('sh', [BUILD_SCRIPT, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    const collect = (chunk: Buffer): void => {
      const s = chunk.toString('utf8');
      text = (text + s).slice(-20_000);
      if (log) for (const line of s.split('\n')) if (line) log(line);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('error', (err) =>
      reject(new AetheriumError('driver_unavailable', `cannot run ${BUILD_SCRIPT}: ${err.message}`)),
    );
    child.on('close', (code) => {
      if (code === 0) resolvePromise(text);
      else
        reject(
          new AetheriumError(
            'driver_unavailable',
            `guest image build failed (exit ${String(code)}): ${text.trim().split('\n').slice(-10).join('\n')}`,
          ),
        );
    });
  });
  const image = await readGuestImage(dir);
  if (!image)
    throw new AetheriumError(
      'driver_unavailable',
      `guest image build reported success but ${dir} is incomplete: ${output.slice(-2_000)}`,
    );
  return image;
}
