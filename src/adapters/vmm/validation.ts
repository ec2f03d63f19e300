/**
 * Input checks shared by the drivers. A VM id becomes a directory name and a cgroup name, so it is
 * held to a strict alphabet; everything else is checked only as far as the drivers depend on it.
 */
import { type DriverName, belowDriverMinimum, invalid } from '../../domain/index.ts';
import type { ExecRequest, VmSpec } from '../../ports/vm-driver.ts';

const VM_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const ENV_NAME = /^[^=\0]+$/;

/** The PATH every command gets unless the request (or the VM spec) sets its own. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function validateVmId(id: unknown): string {
  if (typeof id !== 'string' || !VM_ID.test(id)) {
    throw invalid(
      `VM id must be 1-128 characters of letters, digits, '.', '_' or '-' (starting with a letter or digit), got ${JSON.stringify(id)}`,
    );
  }
  return id;
}

export function validateSpec(spec: VmSpec): VmSpec {
  if (typeof spec !== 'object' || spec === null) throw invalid('VM spec must be an object');
  validateVmId(spec.id);
  if (typeof spec.name !== 'string' || spec.name.trim() === '' || spec.name.length > 253 || spec.name.includes('\0')) {
    throw invalid('VM name must be a non-empty string of at most 253 characters');
  }
  if (typeof spec.vcpus !== 'number' || !Number.isFinite(spec.vcpus) || spec.vcpus <= 0 || spec.vcpus > 1024) {
    throw invalid(`vcpus must be a number in (0, 1024], got ${String(spec.vcpus)}`);
  }
  if (!Number.isInteger(spec.memory_mb) || spec.memory_mb < 4 || spec.memory_mb > 16 * 1024 * 1024) {
    throw invalid(`memory_mb must be an integer of at least 4, got ${String(spec.memory_mb)}`);
  }
  if (typeof spec.disk_gb !== 'number' || !Number.isFinite(spec.disk_gb) || spec.disk_gb < 0) {
    throw invalid(`disk_gb must be a number >= 0, got ${String(spec.disk_gb)}`);
  }
  if (spec.env !== undefined) validateEnv(spec.env, 'spec.env');
  return spec;
}

/** A VM smaller than the driver can boot is refused up front, not left to time out (or spin) in its boot. */
export function validateMinimum(spec: VmSpec, driver: DriverName): void {
  const shortfall = belowDriverMinimum(driver, spec);
  if (shortfall) throw invalid(`VM ${JSON.stringify(spec.id)}: ${shortfall}`);
}

export function validateExecRequest(request: ExecRequest): void {
  if (typeof request !== 'object' || request === null) throw invalid('exec request must be an object');
  if (typeof request.command !== 'string' || request.command.trim() === '')
    throw invalid('command must be a non-empty string');
  if (request.command.includes('\0')) throw invalid('command must not contain NUL bytes');
  if (request.args !== undefined) {
    if (!Array.isArray(request.args) || request.args.some((a) => typeof a !== 'string' || a.includes('\0'))) {
      throw invalid('args must be an array of strings without NUL bytes');
    }
  }
  if (request.env !== undefined) validateEnv(request.env, 'env');
  if (
    request.cwd !== undefined &&
    (typeof request.cwd !== 'string' || request.cwd === '' || request.cwd.includes('\0'))
  ) {
    throw invalid('cwd must be a non-empty string');
  }
  if (request.timeout_ms !== undefined) {
    if (
      typeof request.timeout_ms !== 'number' ||
      !Number.isFinite(request.timeout_ms) ||
      request.timeout_ms <= 0 ||
      request.timeout_ms > 2 ** 31 - 1
    ) {
      throw invalid(`timeout_ms must be a positive number of milliseconds, got ${String(request.timeout_ms)}`);
    }
  }
  if (request.stdin !== undefined && typeof request.stdin !== 'string') throw invalid('stdin must be a string');
}

function validateEnv(env: Record<string, string>, label: string): void {
  if (typeof env !== 'object' || env === null || Array.isArray(env))
    throw invalid(`${label} must be an object of strings`);
  for (const [key, value] of Object.entries(env)) {
    if (!ENV_NAME.test(key)) throw invalid(`${label}: invalid variable name ${JSON.stringify(key)}`);
    if (typeof value !== 'string' || value.includes('\0'))
      throw invalid(`${label}.${key} must be a string without NUL bytes`);
  }
}

/** A clean environment: the driver's base (PATH, HOME), then the VM's env, then the request's. */
export function commandEnv(
  base: Record<string, string>,
  specEnv?: Record<string, string>,
  requestEnv?: Record<string, string>,
): Record<string, string> {
  return { PATH: DEFAULT_PATH, ...base, ...(specEnv ?? {}), ...(requestEnv ?? {}) };
}
