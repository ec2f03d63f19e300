/**
 * Which VM drivers this host can run, checked for real where it is cheap (bubblewrap is run once).
 * `process` is never listed: it isolates nothing, so the caller decides whether to enable it.
 */
import { spawn } from 'node:child_process';
import { constants, promises as fs } from 'node:fs';
import type { DriverName } from '../../domain/index.ts';
import { findOnPath } from './which.ts';

export interface DriverDetection {
  available: DriverName[];
  /** Per driver name, why it is or is not available, in words for operators. */
  notes: Record<string, string>;
}

export async function detectDrivers(): Promise<DriverDetection> {
  const available: DriverName[] = [];
  const notes: Record<string, string> = {};

  const kvm = await kvmUsable();
  const firecracker = findOnPath('firecracker');
  if (kvm && firecracker) {
    available.push('firecracker');
    notes.firecracker = `${firecracker} with /dev/kvm`;
  } else {
    notes.firecracker = [
      kvm ? null : '/dev/kvm is missing or not read/writable',
      firecracker ? null : 'no `firecracker` binary on PATH',
    ]
      .filter(Boolean)
      .join('; ');
  }

  const qemu = findOnPath('qemu-system-x86_64');
  if (qemu) {
    available.push('qemu');
    notes.qemu = `${qemu}${kvm ? ' with KVM' : ' without KVM (software emulation: slow)'}`;
  } else {
    notes.qemu = 'no `qemu-system-x86_64` on PATH';
  }

  const bwrap = findOnPath('bwrap');
  if (!bwrap) {
    notes.sandbox = 'no `bwrap` on PATH (Debian/Ubuntu package: bubblewrap)';
  } else {
    const probe = await run(bwrap, ['--ro-bind', '/', '/', 'true'], 10_000);
    const helpers = ['nsenter', 'setpriv'].filter((tool) => !findOnPath(tool));
    if (probe.ok && helpers.length === 0) {
      available.push('sandbox');
      notes.sandbox = `${bwrap} works`;
    } else if (!probe.ok) {
      notes.sandbox = `${bwrap} is installed but cannot create a sandbox here: ${probe.detail}`;
    } else {
      notes.sandbox = `${bwrap} works but ${helpers.join(' and ')} (util-linux) missing from PATH`;
    }
  }

  notes.process = 'always possible, never chosen automatically: commands run as plain host processes with no isolation';
  return { available, notes };
}

async function kvmUsable(): Promise<boolean> {
  try {
    await fs.access('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function run(file: string, args: string[], timeoutMs: number): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    let stderr = '';
    const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: timeoutMs });
    child.stderr?.on('data', (chunk: Buffer) => {
      if (stderr.length < 2_000) stderr += chunk.toString('utf8');
    });
    child.on('error', (err) => resolve({ ok: false, detail: err.message }));
    child.on('close', (code, signal) =>
      resolve({
        ok: code === 0,
        detail: stderr.trim() || (signal ? `killed by ${signal}` : `exit code ${String(code)}`),
      }),
    );
  });
}
