/**
 * Chooses the VM drivers a worker runs: every driver this host can run (or the ones the config
 * enables), and the unisolated `process` driver only when asked for — or, in `aetherium dev`, as a
 * loud fallback when bubblewrap is missing, the way Nomad enables raw_exec only in dev mode.
 * Each driver keeps its VMs in `<worker state dir>/<driver>` and records the worker id in them.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createDriver } from '../adapters/vmm/create-driver.ts';
import { detectDrivers } from '../adapters/vmm/detect.ts';
import { DRIVERS, type Config } from '../config/schema.ts';
import type { DriverName } from '../domain/index.ts';
import type { VmDriver } from '../ports/vm-driver.ts';
import type { Logger } from './logger.ts';
import { workerId, workerStateDir } from './worker-options.ts';

export interface DriverSet {
  drivers: Map<DriverName, VmDriver>;
  warnings: string[];
}

export const INSTALL_BUBBLEWRAP =
  'install bubblewrap for namespace isolation (Debian/Ubuntu: sudo apt-get install -y bubblewrap; Fedora: sudo dnf install bubblewrap)';

export async function buildDrivers(config: Config, mode: 'dev' | 'worker', log: Logger): Promise<DriverSet> {
  const settings = config.worker.drivers;
  const stateDir = workerStateDir(config);
  const owner = workerId(config);
  const detected = await detectDrivers();
  const warnings: string[] = [];
  if (mode === 'worker') warnings.push(...legacyStateDirWarning(config, stateDir));
  const wanted = new Set<DriverName>(settings.enabled.length > 0 ? settings.enabled : detected.available);
  const drivers = new Map<DriverName, VmDriver>();

  for (const name of wanted) {
    if (name === 'process') continue;
    if (!detected.available.includes(name)) {
      warnings.push(
        `driver ${name} is enabled in the config but cannot run on this host: ${detected.notes[name] ?? 'not detected'}`,
      );
      continue;
    }
    try {
      drivers.set(name, createDriver(name, { stateDir: join(stateDir, name), owner }));
    } catch (err) {
      // A driver this build does not have yet (e.g. qemu) is reported, not fatal.
      log.info({ driver: name, reason: (err as Error).message }, 'driver not used');
    }
  }

  const fallback = mode === 'dev' && !drivers.has('sandbox');
  if (settings.allow_process || wanted.has('process') || fallback) {
    drivers.set('process', createDriver('process', { stateDir: join(stateDir, 'process'), owner }));
    const why = fallback
      ? `bubblewrap is not available (${detected.notes.sandbox ?? 'bwrap not found'}), so dev mode falls back to it; ${INSTALL_BUBBLEWRAP}`
      : 'the config enables it';
    warnings.push(`the "process" driver runs VMs as plain host processes with NO isolation: ${why}`);
  }
  for (const driver of drivers.values()) warnings.push(...driver.info.warnings.map((w) => `${driver.info.name}: ${w}`));
  if (drivers.size === 0) {
    throw new Error(
      `no VM driver can run on this host (${Object.entries(detected.notes)
        .map(([d, n]) => `${d}: ${n}`)
        .join('; ')}); ${INSTALL_BUBBLEWRAP}, or set worker.drivers.allow_process: true to run without isolation`,
    );
  }
  return { drivers, warnings };
}

/** Where every worker kept its VMs before each got its own state dir. */
const SHARED_STATE_DIR = join('.aetherium', 'vms');

/**
 * A worker that used the old shared default finds its VMs no longer where it looks: they keep
 * running, unmanaged, and the control plane reports them lost. Said once at start, with the way back.
 */
function legacyStateDirWarning(config: Config, stateDir: string): string[] {
  if (config.worker.drivers.state_dir !== null) return [];
  const left = DRIVERS.filter((d) => {
    try {
      return readdirSync(join(SHARED_STATE_DIR, d)).some((entry) => !entry.startsWith('.'));
    } catch {
      return false;
    }
  });
  if (left.length === 0) return [];
  return [
    `${SHARED_STATE_DIR} holds ${left.join(', ')} VMs, and this worker keeps its VMs in ${stateDir} now: it leaves those alone. They are \`aetherium dev\`'s (which still uses that dir) or were this worker's before each worker got its own state dir; for the latter, set worker.drivers.state_dir: ${SHARED_STATE_DIR} to manage them again (one worker per state dir)`,
  ];
}
