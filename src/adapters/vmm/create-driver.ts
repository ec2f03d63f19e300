/** Builds a VM driver by name. Only the drivers this build has; the others fail with a clear message. */
import { AetheriumError } from '../../domain/index.ts';
import type { DriverName } from '../../domain/index.ts';
import type { VmDriver } from '../../ports/vm-driver.ts';
import { ProcessDriver } from './process/process-driver.ts';
import { SandboxDriver } from './sandbox/sandbox-driver.ts';

export interface CreateDriverOptions {
  /** Directory the driver keeps its VMs in (one sub-directory per VM). */
  stateDir: string;
}

export function createDriver(name: DriverName, options: CreateDriverOptions): VmDriver {
  switch (name) {
    case 'sandbox':
      return new SandboxDriver({ stateDir: options.stateDir });
    case 'process':
      return new ProcessDriver({ stateDir: options.stateDir });
    case 'qemu':
    case 'firecracker':
      throw new AetheriumError('validation_failed', `the ${name} driver is not implemented in this build; available drivers: sandbox, process`);
    default:
      throw new AetheriumError('validation_failed', `unknown driver ${JSON.stringify(name as string)}; known drivers: sandbox, process, qemu, firecracker`);
  }
}
