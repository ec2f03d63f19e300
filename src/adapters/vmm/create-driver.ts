/** Builds a VM driver by name. Only the drivers this build has; the others fail with a clear message. */
import { AetheriumError } from '../../domain/index.ts';
import type { DriverName } from '../../domain/index.ts';
import type { VmDriver } from '../../ports/vm-driver.ts';
import { FirecrackerDriver, type FirecrackerDriverOptions } from './firecracker/firecracker-driver.ts';
import { ProcessDriver } from './process/process-driver.ts';
import { QemuDriver } from './qemu/qemu-driver.ts';
import { SandboxDriver } from './sandbox/sandbox-driver.ts';

export interface CreateDriverOptions {
  /** Directory the driver keeps its VMs in (one sub-directory per VM). */
  stateDir: string;
  /** The worker id the driver records in the VMs it creates; it leaves other workers' VMs alone. */
  owner?: string;
  /** Settings of the firecracker driver (kernel, rootfs, jailer, network, guest agent...); its stateDir is the one above. */
  firecracker?: Omit<FirecrackerDriverOptions, 'stateDir' | 'owner'>;
  /** Settings of the qemu driver: where its guest image is (built by image/build.sh when missing; default .aetherium/images/default). */
  qemu?: { imageDir?: string };
}

export function createDriver(name: DriverName, options: CreateDriverOptions): VmDriver {
  switch (name) {
    case 'sandbox':
      return new SandboxDriver({ stateDir: options.stateDir, owner: options.owner });
    case 'process':
      return new ProcessDriver({ stateDir: options.stateDir, owner: options.owner });
    case 'firecracker':
      return new FirecrackerDriver({
        ...(options.firecracker ?? {}),
        stateDir: options.stateDir,
        owner: options.owner,
      });
    case 'qemu':
      return new QemuDriver({ stateDir: options.stateDir, owner: options.owner, imageDir: options.qemu?.imageDir });
    default:
      throw new AetheriumError(
        'validation_failed',
        `unknown driver ${JSON.stringify(name as string)}; known drivers: sandbox, process, qemu, firecracker`,
      );
  }
}
