/**
 * Bodies of the Firecracker API requests this driver sends, one builder per request, shaped exactly
 * as the definitions of Firecracker's API description (firecracker.yaml, Swagger 2.0, v1.17):
 * the field names, the required fields and the types. Firecracker's deserialisers reject unknown
 * fields, so a builder never adds a field the definition does not have, and leaves optional fields
 * out rather than sending them as null.
 *
 * `REQUEST_DEFINITIONS` names the definition each builder produces; the tests check every builder's
 * output against that definition of the spec.
 */
import { invalid } from '../../../domain/index.ts';

/** definitions/BootSource */
export interface BootSource {
  kernel_image_path: string;
  boot_args?: string;
  initrd_path?: string;
}

/** definitions/Drive (the virtio-block variant; the vhost-user `socket` variant is not used). */
export interface Drive {
  drive_id: string;
  is_root_device: boolean;
  is_read_only?: boolean;
  path_on_host?: string;
  partuuid?: string;
  cache_type?: 'Unsafe' | 'Writeback';
  io_engine?: 'Sync' | 'Async';
}

/** definitions/MachineConfiguration */
export interface MachineConfiguration {
  vcpu_count: number;
  mem_size_mib: number;
  smt?: boolean;
  track_dirty_pages?: boolean;
  huge_pages?: 'None' | 'Transparent' | '2M';
}

/** definitions/NetworkInterface */
export interface NetworkInterface {
  iface_id: string;
  host_dev_name: string;
  guest_mac?: string;
  mtu?: number;
}

/** definitions/Vsock */
export interface Vsock {
  guest_cid: number;
  uds_path: string;
}

export type InstanceActionType = 'FlushMetrics' | 'InstanceStart' | 'SendCtrlAltDel';

/** definitions/InstanceActionInfo */
export interface InstanceActionInfo {
  action_type: InstanceActionType;
}

/** definitions/InstanceInfo: the answer to `GET /`. */
export interface InstanceInfo {
  app_name: string;
  id: string;
  state: 'Not started' | 'Running' | 'Paused';
  vmm_version: string;
}

/** definitions/Error: the body of every 4xx/5xx answer. */
export interface FirecrackerError {
  fault_message?: string;
}

/** The kernel command line when the operator gives none: serial console, reboot on ctrl-alt-del / panic. */
export const DEFAULT_BOOT_ARGS = 'console=ttyS0 reboot=k panic=1 pci=off';
/** Firecracker: "The vCPU count is restricted to the [1, 32] range." */
export const MAX_VCPUS = 32;
/** Guest CIDs 0-2 are reserved (hypervisor, local, host). Firecracker's vsock is backed by per-VM Unix sockets, so every VM can use the same CID. */
export const GUEST_CID = 3;
export const ROOT_DRIVE_ID = 'rootfs';
export const DEFAULT_IFACE_ID = 'eth0';

const ID = /^[A-Za-z0-9_]{1,64}$/;
const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

export function bootSourceBody(options: {
  kernelImagePath: string;
  bootArgs?: string;
  initrdPath?: string;
}): BootSource {
  nonEmpty(options.kernelImagePath, 'kernel image path');
  return {
    kernel_image_path: options.kernelImagePath,
    boot_args: options.bootArgs ?? DEFAULT_BOOT_ARGS,
    ...(options.initrdPath ? { initrd_path: options.initrdPath } : {}),
  };
}

export function rootDriveBody(options: { pathOnHost: string; readOnly?: boolean; driveId?: string }): Drive {
  nonEmpty(options.pathOnHost, 'root drive path');
  const driveId = options.driveId ?? ROOT_DRIVE_ID;
  checkId(driveId, 'drive id');
  return {
    drive_id: driveId,
    path_on_host: options.pathOnHost,
    is_root_device: true,
    is_read_only: options.readOnly ?? false,
  };
}

/**
 * Aetherium's vcpus may be fractional (a share of a host core); a Firecracker vCPU is a whole
 * thread, so it is rounded up. Memory is whole MiB already.
 */
export function machineConfigBody(options: { vcpus: number; memoryMb: number }): MachineConfiguration {
  const vcpuCount = Math.ceil(options.vcpus);
  if (!Number.isInteger(vcpuCount) || vcpuCount < 1 || vcpuCount > MAX_VCPUS) {
    throw invalid(`firecracker supports 1 to ${MAX_VCPUS} vCPUs per VM, got vcpus=${String(options.vcpus)}`);
  }
  if (!Number.isInteger(options.memoryMb) || options.memoryMb < 1) {
    throw invalid(`memory_mb must be a positive integer for firecracker, got ${String(options.memoryMb)}`);
  }
  return { vcpu_count: vcpuCount, mem_size_mib: options.memoryMb, smt: false };
}

export function networkInterfaceBody(options: {
  hostDevName: string;
  ifaceId?: string;
  guestMac?: string;
  mtu?: number;
}): NetworkInterface {
  nonEmpty(options.hostDevName, 'tap device name');
  const ifaceId = options.ifaceId ?? DEFAULT_IFACE_ID;
  checkId(ifaceId, 'network interface id');
  if (options.guestMac !== undefined && !MAC.test(options.guestMac))
    throw invalid(`guest MAC must look like 06:00:ac:10:00:02, got ${JSON.stringify(options.guestMac)}`);
  if (options.mtu !== undefined && (!Number.isInteger(options.mtu) || options.mtu < 68 || options.mtu > 65535)) {
    throw invalid(`MTU must be an integer in [68, 65535], got ${String(options.mtu)}`);
  }
  return {
    iface_id: ifaceId,
    host_dev_name: options.hostDevName,
    ...(options.guestMac ? { guest_mac: options.guestMac.toLowerCase() } : {}),
    ...(options.mtu !== undefined ? { mtu: options.mtu } : {}),
  };
}

export function vsockBody(options: { udsPath: string; guestCid?: number }): Vsock {
  nonEmpty(options.udsPath, 'vsock socket path');
  const cid = options.guestCid ?? GUEST_CID;
  if (!Number.isInteger(cid) || cid < 3 || cid > 0xffff_fffe)
    throw invalid(`guest CID must be an integer >= 3, got ${String(cid)}`);
  return { guest_cid: cid, uds_path: options.udsPath };
}

export function actionBody(action: InstanceActionType): InstanceActionInfo {
  return { action_type: action };
}

/** Path of the per-id resources; ids are checked so that they need no escaping. */
export function drivePath(driveId: string): string {
  return `/drives/${checkId(driveId, 'drive id')}`;
}

export function networkInterfacePath(ifaceId: string): string {
  return `/network-interfaces/${checkId(ifaceId, 'network interface id')}`;
}

/** A locally administered unicast MAC derived from the VM id (stable across restarts). */
export function macForVm(vmId: string): string {
  let h = 0x811c9dc5;
  for (const ch of Buffer.from(vmId, 'utf8')) h = Math.imul(h ^ ch, 0x01000193) >>> 0;
  const bytes = [0x06, 0x00, (h >>> 24) & 0xff, (h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** Which definition of the spec each builder's body must satisfy (used by the spec tests). */
export const REQUEST_DEFINITIONS = {
  bootSourceBody: 'BootSource',
  rootDriveBody: 'Drive',
  machineConfigBody: 'MachineConfiguration',
  networkInterfaceBody: 'NetworkInterface',
  vsockBody: 'Vsock',
  actionBody: 'InstanceActionInfo',
} as const;

function nonEmpty(value: string, label: string): void {
  if (typeof value !== 'string' || value === '' || value.includes('\0'))
    throw invalid(`${label} must be a non-empty string`);
}

function checkId(id: string, label: string): string {
  if (!ID.test(id)) throw invalid(`${label} must be 1-64 letters, digits or '_', got ${JSON.stringify(id)}`);
  return id;
}
