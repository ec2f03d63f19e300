/**
 * Where a Firecracker VM's things are: the paths on the host, and the same paths as Firecracker sees
 * them (inside the jailer's chroot they differ). Pure: computed from the VM's folder and options.
 */
import { join } from 'node:path';
import { invalid } from '../../../domain/index.ts';
import {
  hostPathInJail,
  JAIL_API_SOCKET,
  JAIL_KERNEL,
  JAIL_ROOTFS,
  JAIL_VSOCK,
  jailLayout,
  type JailLayout,
} from './jailer.ts';

/** A Unix socket path must fit in sockaddr_un (108 bytes with the terminating NUL). */
const MAX_SOCKET_PATH = 107;

/** Where a VM's things are: host paths, and the same paths as Firecracker sees them. */
export interface Layout {
  jail: JailLayout | null;
  /** The resolved firecracker binary at create time (names the jail directory). */
  firecracker: string;
  rootDir: string;
  api_socket: string;
  vsock_host: string;
  vsock_vmm: string;
  rootfs_host: string;
  rootfs_vmm: string;
  kernel_host: string | null;
  kernel_vmm: string;
}

export interface LayoutInput {
  vmDir: string;
  vmId: string;
  /** The resolved firecracker binary (names the jail directory). */
  firecracker: string;
  kernel: string;
  /** The jailer's chroot base, or null without the jailer. */
  chrootBaseDir: string | null;
}

export function vmLayout(input: LayoutInput): Layout {
  const { vmDir, firecracker } = input;
  let layout: Layout;
  if (input.chrootBaseDir !== null) {
    const jail = jailLayout(input.vmId, firecracker, input.chrootBaseDir);
    layout = {
      jail,
      firecracker,
      rootDir: jail.rootDir,
      api_socket: hostPathInJail(jail, JAIL_API_SOCKET),
      vsock_host: hostPathInJail(jail, JAIL_VSOCK),
      vsock_vmm: JAIL_VSOCK,
      rootfs_host: hostPathInJail(jail, JAIL_ROOTFS),
      rootfs_vmm: JAIL_ROOTFS,
      kernel_host: hostPathInJail(jail, JAIL_KERNEL),
      kernel_vmm: JAIL_KERNEL,
    };
  } else {
    layout = {
      jail: null,
      firecracker,
      rootDir: '/',
      api_socket: join(vmDir, 'api.sock'),
      vsock_host: join(vmDir, 'vsock.sock'),
      vsock_vmm: join(vmDir, 'vsock.sock'),
      rootfs_host: join(vmDir, 'rootfs.ext4'),
      rootfs_vmm: join(vmDir, 'rootfs.ext4'),
      kernel_host: null,
      kernel_vmm: input.kernel,
    };
  }
  for (const socket of [layout.api_socket, layout.vsock_host]) {
    if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
      throw invalid(
        `the Unix socket path ${socket} is longer than ${MAX_SOCKET_PATH} bytes; use a shorter state directory${input.chrootBaseDir !== null ? ' or chroot base directory' : ''}`,
      );
    }
  }
  return layout;
}
